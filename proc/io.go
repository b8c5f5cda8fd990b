package proc

import (
	"context"

	"fmt"
	"github.com/containerd/console"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	runcshim "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/process"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/fifo"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
)

var bufPool = sync.Pool{
	New: func() any {
		b := make([]byte, 32<<10)
		return &b
	},
}

// processIO is the non-terminal stdio of a process: pipes handed to runsc and
// copied to containerd's FIFOs (or a file), or a logging binary.
type processIO struct {
	io    runc.IO
	copy  bool
	stdio stdio.Stdio
	stdin stdinFIFO
}

// Close releases the pipes and the stdin FIFO.
func (p *processIO) Close() error {
	p.stdin.close()
	if p.io != nil {
		return p.io.Close()
	}
	return nil
}

// CloseStdin is CloseIO: the process's stdin reaches EOF.
func (p *processIO) CloseStdin() error {
	if p.stdin.opened() {
		// The copy closes the process's stdin pipe when the FIFO ends.
		p.stdin.close()
		return nil
	}
	if in := p.io.Stdin(); in != nil {
		return in.Close()
	}
	return nil
}

// stdinFIFO is containerd's stdin FIFO, opened for reading by a copy. Its
// open waits (on an OS thread) until a writer comes, which may be never: a
// client whose own stdin was already at EOF closes its end before opening
// it. Closing the FIFO ends that wait and the copy.
type stdinFIFO struct {
	mu     sync.Mutex
	f      io.Closer
	closed bool
}

// open opens the FIFO at path for reading; it returns nil if the FIFO
// was closed already (CloseIO or Delete came first).
func (s *stdinFIFO) open(path string) (io.ReadCloser, error) {
	in, err := fifo.OpenFifo(context.Background(), path, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open stdin fifo %q: %w", path, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		in.Close()
		return nil, nil
	}
	s.f = in
	return in, nil
}

func (s *stdinFIFO) opened() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f != nil || s.closed
}

// close closes the FIFO once; later calls do nothing.
func (s *stdinFIFO) close() {
	s.mu.Lock()
	f := s.f
	s.f, s.closed = nil, true
	s.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// copyStdin copies containerd's stdin FIFO at path to w until the FIFO ends
// or is closed, then calls done.
func (s *stdinFIFO) copyStdin(path string, w io.Writer, done func()) error {
	in, err := s.open(path)
	if err != nil {
		return err
	}
	if in == nil {
		done()
		return nil
	}
	go func() {
		b := bufPool.Get().(*[]byte)
		defer bufPool.Put(b)
		_, _ = io.CopyBuffer(w, in, *b)
		done()
		s.close()
	}()
	return nil
}

// newProcessIO prepares stdio for a process from containerd's stdio URIs: a
// FIFO path (or fifo://), file://path, or binary://path as the runc shim accepts.
func newProcessIO(ctx context.Context, id string, s stdio.Stdio) (*processIO, error) {
	pio := &processIO{stdio: s}
	if s.IsNull() {
		i, err := runc.NewNullIO()
		if err != nil {
			return nil, fmt.Errorf("create null io: %w", err)
		}
		pio.io = i
		return pio, nil
	}
	u, err := url.Parse(s.Stdout)
	if err != nil {
		return nil, fmt.Errorf("parse stdout uri %q: %w", s.Stdout, err)
	}
	switch u.Scheme {
	case "", "fifo":
		pio.copy = true
		pio.io, err = runc.NewPipeIO(0, 0, withConditionalIO(s))
	case "binary", "binary-v2":
		pio.io, err = runcshim.NewBinaryIO(ctx, id, u)
	case "file":
		if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
			return nil, fmt.Errorf("create log directory for %q: %w", u.Path, err)
		}
		f, ferr := os.OpenFile(u.Path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if ferr != nil {
			return nil, fmt.Errorf("open log file: %w", ferr)
		}
		f.Close()
		pio.stdio.Stdout = u.Path
		pio.stdio.Stderr = u.Path
		pio.copy = true
		pio.io, err = runc.NewPipeIO(0, 0, withConditionalIO(s))
	default:
		return nil, fmt.Errorf("unknown stdio scheme %q in %q", u.Scheme, s.Stdout)
	}
	if err != nil {
		return nil, fmt.Errorf("create %s io: %w", u.Scheme, err)
	}
	return pio, nil
}

func withConditionalIO(c stdio.Stdio) runc.IOOpt {
	return func(o *runc.IOOption) {
		o.OpenStdin = c.Stdin != ""
		o.OpenStdout = c.Stdout != ""
		o.OpenStderr = c.Stderr != ""
	}
}

// start begins copying between the pipes and containerd's FIFOs or files.
// wg is done when stdout and stderr are drained.
func (p *processIO) start(ctx context.Context, wg *sync.WaitGroup) error {
	if !p.copy {
		return nil
	}
	var shared *sharedWriter
	outputs := []struct {
		name string
		src  io.Reader
	}{
		{p.stdio.Stdout, p.io.Stdout()},
		{p.stdio.Stderr, p.io.Stderr()},
	}
	for _, o := range outputs {
		if o.name == "" || o.src == nil {
			continue
		}
		var (
			w io.WriteCloser
			r io.Closer
		)
		isFifo, err := fifo.IsFifo(o.name)
		if err != nil {
			return fmt.Errorf("stat %q: %w", o.name, err)
		}
		switch {
		case isFifo:
			if w, err = fifo.OpenFifo(ctx, o.name, syscall.O_WRONLY, 0); err != nil {
				return fmt.Errorf("open fifo %q for writing: %w", o.name, err)
			}
			// Keep a reader open so writes never fail with EPIPE while the
			// client reconnects.
			if r, err = fifo.OpenFifo(ctx, o.name, syscall.O_RDONLY, 0); err != nil {
				w.Close()
				return fmt.Errorf("open fifo %q for reading: %w", o.name, err)
			}
		case shared != nil:
			shared.add()
			w = shared
		default:
			f, err := os.OpenFile(o.name, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return fmt.Errorf("open %q: %w", o.name, err)
			}
			w = f
			if p.stdio.Stdout == p.stdio.Stderr {
				shared = &sharedWriter{WriteCloser: f, refs: 1}
				w = shared
			}
		}
		wg.Add(1)
		go func(src io.Reader, w io.WriteCloser, r io.Closer) {
			defer wg.Done()
			b := bufPool.Get().(*[]byte)
			defer bufPool.Put(b)
			if _, err := io.CopyBuffer(w, src, *b); err != nil {
				log.G(ctx).WithError(err).Warn("copy container output")
			}
			w.Close()
			if r != nil {
				r.Close()
			}
		}(o.src, w, r)
	}
	if p.stdio.Stdin == "" {
		return nil
	}
	pin := p.io.Stdin()
	return p.stdin.copyStdin(p.stdio.Stdin, pin, func() { pin.Close() })
}

// sharedWriter closes the underlying file when its last user closes it
// (stdout and stderr going to the same file).
type sharedWriter struct {
	io.WriteCloser
	mu   sync.Mutex
	refs int
}

func (s *sharedWriter) add() {
	s.mu.Lock()
	s.refs++
	s.mu.Unlock()
}

func (s *sharedWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.WriteCloser.Write(b)
}

func (s *sharedWriter) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs > 0 {
		return nil
	}
	return s.WriteCloser.Close()
}

// copyConsole copies a terminal's output to containerd's stdout (through the
// platform's epoll console) and containerd's stdin FIFO to the terminal. The
// shim copies stdin itself, not the platform: the FIFO must be closed at
// CloseIO and Delete (a FIFO nobody opens for writing would hold a thread
// forever), and the end of stdin must not shut the terminal down while the
// process still writes to it.
func copyConsole(ctx context.Context, platform stdio.Platform, c console.Console, id string, s stdio.Stdio, wg *sync.WaitGroup, in *stdinFIFO) (console.Console, error) {
	ec, err := platform.CopyConsole(ctx, c, id, "", s.Stdout, s.Stderr, wg)
	if err != nil {
		return nil, fmt.Errorf("copy console: %w", err)
	}
	if s.Stdin != "" {
		if err := in.copyStdin(s.Stdin, ec, func() {}); err != nil {
			return ec, err
		}
	}
	return ec, nil
}
