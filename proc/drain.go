package proc

import (
	"context"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/fifo"
	"golang.org/x/sys/unix"
)

// drainTimeout bounds how long an exit waits for its terminal's output (a
// client that does not read its FIFO must not hold the exit forever).
const drainTimeout = 2 * time.Second

// drainConsole ends the copy of a terminal's output after its process
// exited: it shuts the epoll console down, so that its copier reads what is
// left in the pty and then stops instead of waiting for a slave that may
// come back, and waits (bounded) until the copier has written it all to
// containerd's FIFO and closed it.
//
// It must run before the exit becomes visible (Wait returns, /tasks/exit).
// containerd's client answers an exit with Task.Delete, whose cio.Cancel
// closes the client's end of the FIFOs (containerd#8334) before the Delete
// reaches the shim: whatever the copier writes after that is lost. The
// copier is woken by the platform's edge-triggered epoll loop and, on a
// busy machine, lags the reaper by tens of milliseconds.
func drainConsole(platform stdio.Platform, c console.Console, wg *sync.WaitGroup) {
	if c == nil {
		return
	}
	_ = platform.ShutdownConsole(context.Background(), c)
	waitTimeout(wg, drainTimeout)
}

// drainPipes waits (bounded) until the copies of a process's stdout and
// stderr pipes have reached EOF, i.e. everything the process wrote is in
// containerd's FIFOs, for the same reason. Only a process that left a
// child holding its output open makes the bound expire.
func drainPipes(pio *processIO, wg *sync.WaitGroup) {
	if pio == nil || !pio.copy {
		return
	}
	waitTimeout(wg, drainTimeout)
}

// readTimeout bounds how long an exit waits for containerd to read what the
// shim wrote to its FIFOs (a client that reads nothing must not hold every
// exit for long).
const readTimeout = time.Second

// waitRead waits (bounded) until containerd has read the output the shim
// wrote to the stdout and stderr FIFOs of s. Written is not enough:
// containerd's client closes its end of the FIFOs right after it sees a
// task's exit, or after an exec's Delete (cio.Cancel), and bytes still in
// the FIFO are lost with it. The kernel tells how many bytes of a FIFO are
// unread (FIONREAD) but gives no event when that reaches 0: it is polled.
func waitRead(s stdio.Stdio, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	paths := []string{s.Stdout}
	if s.Stderr != s.Stdout {
		paths = append(paths, s.Stderr)
	}
	for _, path := range paths {
		if path != "" {
			waitFIFORead(path, deadline)
		}
	}
}

// waitFIFORead waits until the FIFO at path holds no unread byte, or until
// deadline. Anything else than a FIFO (a file, a logging binary's URI) is
// not waited for.
func waitFIFORead(path string, deadline time.Time) {
	if ok, err := fifo.IsFifo(path); err != nil || !ok {
		return
	}
	// A reader of our own that never reads: it only asks how much is there.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	for {
		n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
		if err != nil || n == 0 || !time.Now().Before(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
