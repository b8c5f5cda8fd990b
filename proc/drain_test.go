package proc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/console"
	runcshim "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/runc"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"golang.org/x/sys/unix"
)

// A terminal's output must be in containerd's FIFO, and the FIFO closed,
// once DrainOutput returns: containerd's client stops reading as soon as it
// sees the exit (Task.Delete's cio.Cancel closes its end).
func TestDrainOutputCopiesTerminalOutputBeforeExit(t *testing.T) {
	platform, err := runcshim.NewPlatform()
	if err != nil {
		t.Fatal(err)
	}
	defer platform.Close()
	m, slaveName, err := console.NewPty()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	slave, err := os.OpenFile(slaveName, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	stdout := filepath.Join(t.TempDir(), "stdout")
	if err := unix.Mkfifo(stdout, 0o600); err != nil {
		t.Fatal(err)
	}
	// containerd's end, opened first as cio does; read only after the exit.
	client, err := unix.Open(stdout, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(client)

	const id = "drain"
	p := NewInit(InitConfig{ID: id, Platform: platform, Stdio: stdio.Stdio{Stdout: stdout, Terminal: true}})
	if p.console, err = platform.CopyConsole(context.Background(), m, id, "", stdout, "", &p.wg); err != nil {
		t.Fatal(err)
	}
	defer p.console.Close()

	// The process writes and exits before the copier has run: its end of
	// the pty is closed with the output still in the pty.
	want := strings.Repeat("line of output\n", 200) + "hi\n"
	if _, err := slave.Write([]byte(want)); err != nil {
		t.Fatal(err)
	}
	slave.Close()

	p.DrainOutput()
	p.SetExited(0)

	var got []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(client, buf)
		if errors.Is(err, unix.EAGAIN) {
			t.Fatalf("the shim still holds the stdout FIFO open after the exit (copier not drained); read so far %d bytes", len(got))
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		got = append(got, buf[:n]...)
	}
	// The pty turns \n into \r\n.
	if g := strings.ReplaceAll(string(got), "\r\n", "\n"); g != want {
		t.Errorf("client read %d bytes before EOF, want %d; tail %q", len(g), len(want), g[max(0, len(g)-40):])
	}
}

// waitRead returns once containerd's reader has taken everything out of
// the FIFO (not when the shim has written it), and gives up at its bound
// when nobody reads.
func TestWaitReadWaitsForTheReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stdout")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(client)
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("output\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()

	// Nobody reads: the bound.
	begin := time.Now()
	waitRead(stdio.Stdio{Stdout: path}, 50*time.Millisecond)
	if d := time.Since(begin); d < 50*time.Millisecond {
		t.Fatalf("returned after %v with the output unread", d)
	}

	done := make(chan struct{})
	go func() {
		waitRead(stdio.Stdio{Stdout: path, Stderr: path}, time.Minute)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("returned with the output unread")
	case <-time.After(50 * time.Millisecond):
	}
	buf := make([]byte, 64)
	if n, err := unix.Read(client, buf); err != nil || string(buf[:n]) != "output\n" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("did not return once the output was read")
	}
}
