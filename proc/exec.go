package proc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// Exec is an additional process run in a container with `runsc exec`.
type Exec struct {
	exitState
	id     string
	parent *Init
	spec   *specs.Process
	stdio  stdio.Stdio

	// internalPid is the process's pid inside the sandbox.
	internalPid int
	io          *processIO
	console     console.Console
	consoleIn   stdinFIFO
	wg          sync.WaitGroup
}

// NewExec returns an exec process of parent that has not been started.
func (p *Init) NewExec(id string, spec *specs.Process, s stdio.Stdio) *Exec {
	return &Exec{exitState: newExitState(), id: id, parent: p, spec: spec, stdio: s}
}

// ID is the exec id.
func (e *Exec) ID() string { return e.id }

// Stdio is the process's stdio as containerd sent it.
func (e *Exec) Stdio() stdio.Stdio { return e.stdio }

// InternalPid is the process's pid inside the sandbox (0 before Start).
func (e *Exec) InternalPid() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.internalPid
}

func (e *Exec) pidFile(kind string) string {
	return filepath.Join(e.parent.cfg.Bundle, fmt.Sprintf("exec-%s.%s", e.id, kind))
}

// Start runs the process with `runsc exec`. Its pid is the host pid of that
// runsc process, which waits for the process and exits with its status.
func (e *Exec) Start(ctx context.Context) error {
	if st := e.Status(); st != Created {
		return fmt.Errorf("cannot start a %s exec: %w", st, errdefs.ErrFailedPrecondition)
	}
	if st := e.parent.Status(); st != Running {
		return fmt.Errorf("cannot exec in a %s container: %w", st, errdefs.ErrFailedPrecondition)
	}
	dropKnownUnknownProcessCaps(ctx, e.spec)
	for attempt := 0; ; attempt++ {
		err := e.start(ctx)
		if err == nil {
			return nil
		}
		name := unknownCapability(err)
		if name == "" || attempt >= maxCapRetries || !dropProcessCap(ctx, e.spec, name) {
			// It never ran: a Wait returns now (as with runc, which
			// reports no exit event for it) and Delete releases it.
			e.setExited(StartFailedStatus)
			return err
		}
	}
}

// start is one attempt of `runsc exec`, with fresh stdio.
func (e *Exec) start(ctx context.Context) (retErr error) {
	specFile, err := writeProcessSpec(e.parent.cfg.Bundle, e.spec)
	if err != nil {
		return err
	}
	defer os.Remove(specFile)

	opts := &runsc.ExecOpts{
		ProcessFile:     specFile,
		PidFile:         e.pidFile("pid"),
		InternalPidFile: e.pidFile("ipid"),
	}
	var pty console.Console
	if e.stdio.Terminal {
		// runsc exec uses its own stdio as the terminal when it is one (a
		// console socket is honoured only with --detach): hand it the
		// slave of a pty whose master the shim keeps.
		m, slave, err := newPtyIO()
		if err != nil {
			return err
		}
		defer func() {
			if retErr != nil {
				m.Close()
			}
		}()
		defer slave.Close()
		pty, opts.IO = m, slave
	} else {
		pio, err := newProcessIO(ctx, e.id, e.stdio)
		if err != nil {
			return fmt.Errorf("set up stdio: %w", err)
		}
		defer func() {
			if retErr != nil {
				pio.Close()
				e.io = nil
			}
		}()
		e.io = pio
		opts.IO = pio.io
	}
	pid, err := e.parent.cfg.Runsc.Exec(ctx, e.parent.cfg.ID, opts)
	if err != nil {
		return err
	}
	ipid, err := runc.ReadPidFile(opts.InternalPidFile)
	if err != nil {
		log.G(ctx).WithError(err).Warn("read internal pid of exec")
	}
	if pty != nil {
		e.console, err = copyConsole(ctx, e.parent.cfg.Platform, pty, e.id, e.stdio, &e.wg, &e.consoleIn)
	} else {
		err = e.io.start(ctx, &e.wg)
	}
	if err != nil {
		// The process runs but its stdio cannot reach containerd: end it
		// rather than leave it running untracked.
		e.abort(ctx, pid, ipid)
		e.consoleIn.close()
		if e.console != nil {
			e.console.Close()
			e.console = nil
		}
		return err
	}
	e.mu.Lock()
	e.pid, e.internalPid = pid, ipid
	if e.status == Created {
		e.status = Running
	}
	e.mu.Unlock()
	return nil
}

// abort kills a process that runsc started but the shim cannot serve: in
// the sandbox, and its host `runsc exec` (the reaper collects it).
func (e *Exec) abort(ctx context.Context, pid, ipid int) {
	if ipid > 0 {
		if err := e.parent.cfg.Runsc.KillPid(context.WithoutCancel(ctx), e.parent.cfg.ID, ipid, int(unix.SIGKILL)); err != nil {
			log.G(ctx).WithError(err).WithField("exec", e.id).Warn("kill exec whose stdio failed")
		}
	}
	if pid > 0 {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// writeProcessSpec writes the process spec to a private file in the bundle.
func writeProcessSpec(bundle string, spec *specs.Process) (string, error) {
	f, err := os.CreateTemp(bundle, ".exec-process-*.json")
	if err != nil {
		return "", fmt.Errorf("create exec process file: %w", err)
	}
	if err := json.NewEncoder(f).Encode(spec); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("write exec process file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write exec process file: %w", err)
	}
	return f.Name(), nil
}

// DrainOutput copies what is left of the process's output to containerd
// (and ends a terminal's copy), and waits until containerd has read it; see
// drainConsole, drainPipes and waitRead.
func (e *Exec) DrainOutput() {
	if e.console != nil {
		drainConsole(e.parent.cfg.Platform, e.console, &e.wg)
		waitRead(e.stdio, readTimeout)
		return
	}
	if e.io != nil && e.io.copy {
		drainPipes(e.io, &e.wg)
		waitRead(e.io.stdio, readTimeout)
	}
}

// SetExited records the exit of the process.
func (e *Exec) SetExited(status int) bool {
	return e.setExited(status)
}

// Kill signals the process inside the sandbox.
func (e *Exec) Kill(ctx context.Context, sig uint32, _ bool) error {
	switch e.Status() {
	case Created:
		return fmt.Errorf("exec %s not started: %w", e.id, errdefs.ErrFailedPrecondition)
	case Stopped, Deleted:
		return fmt.Errorf("exec %s: process already finished: %w", e.id, errdefs.ErrNotFound)
	}
	ipid := e.InternalPid()
	if ipid <= 0 {
		return fmt.Errorf("exec %s: runsc did not report its pid in the sandbox: %w", e.id, errdefs.ErrFailedPrecondition)
	}
	return checkKillError(e.parent.cfg.Runsc.KillPid(ctx, e.parent.cfg.ID, ipid, int(sig)))
}

// Delete releases the process's stdio and pid files. A running exec cannot
// be deleted.
func (e *Exec) Delete(ctx context.Context) error {
	switch st := e.Status(); st {
	case Running, Paused:
		return fmt.Errorf("cannot delete a %s exec: %w", st, errdefs.ErrFailedPrecondition)
	case Deleted:
		return fmt.Errorf("exec %s: %w", e.id, errdefs.ErrNotFound)
	}
	e.consoleIn.close()
	if e.console != nil {
		_ = e.parent.cfg.Platform.ShutdownConsole(ctx, e.console)
	}
	waitTimeout(&e.wg, 2*time.Second)
	if e.console != nil {
		e.console.Close()
	}
	if e.io != nil {
		e.io.Close()
	}
	os.Remove(e.pidFile("pid"))
	os.Remove(e.pidFile("ipid"))
	e.mu.Lock()
	e.status = Deleted
	e.mu.Unlock()
	return nil
}

// Resize changes the size of the process's terminal.
func (e *Exec) Resize(ws console.WinSize) error {
	if e.console == nil {
		return nil
	}
	return e.console.Resize(ws)
}

// CloseIO closes the process's stdin.
func (e *Exec) CloseIO() error {
	e.consoleIn.close()
	if e.io != nil {
		return e.io.CloseStdin()
	}
	return nil
}

// ptyIO gives a command the slave of a pty as its stdin, stdout and stderr.
type ptyIO struct{ slave *os.File }

// newPtyIO opens a pty: the master for the shim, the slave for runsc.
func newPtyIO() (console.Console, *ptyIO, error) {
	m, name, err := console.NewPty()
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	f, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pty slave %s: %w", name, err)
	}
	return m, &ptyIO{slave: f}, nil
}

func (p *ptyIO) Set(cmd *exec.Cmd) {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.slave, p.slave, p.slave
}

// CloseAfterStart closes the shim's copy of the slave: runsc holds it now.
func (p *ptyIO) CloseAfterStart() error { return p.slave.Close() }

func (p *ptyIO) Close() error          { return p.slave.Close() }
func (p *ptyIO) Stdin() io.WriteCloser { return nil }
func (p *ptyIO) Stdout() io.ReadCloser { return nil }
func (p *ptyIO) Stderr() io.ReadCloser { return nil }
