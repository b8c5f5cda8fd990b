package proc

import (
	"context"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/pkg/stdio"
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
