package proc

import (
	"context"
	"fmt"
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
}

func (p *processIO) Close() error {
	if p.io != nil {
		return p.io.Close()
	}
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
	in, err := fifo.OpenFifo(context.Background(), p.stdio.Stdin, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open stdin fifo %q: %w", p.stdio.Stdin, err)
	}
	go func() {
		b := bufPool.Get().(*[]byte)
		defer bufPool.Put(b)
		_, _ = io.CopyBuffer(p.io.Stdin(), in, *b)
		p.io.Stdin().Close()
		in.Close()
	}()
	return nil
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
