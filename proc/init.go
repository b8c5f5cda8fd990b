package proc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/oci"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// InitPidFile is the pid file of the init process in the bundle.
const InitPidFile = "init.pid"

// InitConfig describes a container's init process.
type InitConfig struct {
	ID       string
	Bundle   string
	Runsc    *runsc.Runsc
	Platform stdio.Platform
	Stdio    stdio.Stdio
	// Rootfs is mounted at <bundle>/rootfs before runsc create.
	Rootfs []mount.Mount
	// Spec is the bundle's config.json; the shim rewrites it only to drop
	// capabilities runsc does not know and to express masked and read-only
	// paths as mounts.
	Spec *specs.Spec
	// Subcontainer is set for a container that joins its pod's existing
	// sandbox. Its pid file holds the sandbox's pid, so its exit comes from
	// `runsc wait`, not from reaping.
	Subcontainer bool
	// Cgroup, when set, is the cgroup the shim creates for the sandbox
	// itself (the systemd driver's scope); nil: runsc makes the sandbox's
	// cgroup from the spec.
	Cgroup SandboxCgroup
	// Checkpoint, when set, is the directory of a checkpoint image: Create
	// restores the sandbox from it (`runsc restore`, which also starts it)
	// instead of creating a fresh one, and Start only reports it running.
	Checkpoint string
}

// SandboxCgroup is a cgroup the shim creates for a sandbox, rather than
// runsc.
type SandboxCgroup interface {
	// Place puts the held `runsc create` process pid there before it runs
	// runsc (runsc.CreateOpts.Place).
	Place(ctx context.Context, pid int) error
	// Remove removes it once the sandbox is gone. Removing one that is
	// already gone is not an error.
	Remove(ctx context.Context) error
}

// Init is a container's init process: the container itself.
type Init struct {
	exitState
	cfg InitConfig

	// join, for a container joining a pod, puts its held `runsc start`
	// process into the sandbox's cgroup (JoinSandboxCgroup).
	join func(ctx context.Context, pid int) error

	io      *processIO
	console console.Console
	// consoleIn is stdin copied to the console.
	consoleIn stdinFIFO
	wg        sync.WaitGroup // output copying
}

// NewInit returns an Init that has not been created yet.
func NewInit(cfg InitConfig) *Init {
	return &Init{exitState: newExitState(), cfg: cfg}
}

// ID is the container id.
func (p *Init) ID() string { return p.cfg.ID }

// Stdio is the process's stdio as containerd sent it.
func (p *Init) Stdio() stdio.Stdio { return p.cfg.Stdio }

// JoinSandboxCgroup makes the `runsc start` of a container joining a pod
// run in the sandbox's cgroup, so that the gofer runsc starts from it for
// the container is there in every hierarchy, not only where runsc moves it:
// place puts the held process there. Call it before Start.
func (p *Init) JoinSandboxCgroup(place func(ctx context.Context, pid int) error) { p.join = place }

// Subcontainer reports whether the container joined an existing sandbox.
func (p *Init) Subcontainer() bool { return p.cfg.Subcontainer }

func (p *Init) rootfs() string { return filepath.Join(p.cfg.Bundle, "rootfs") }

// Create mounts the rootfs, sets up stdio and runs `runsc create`. On failure
// nothing is left behind.
func (p *Init) Create(ctx context.Context) (retErr error) {
	if len(p.cfg.Rootfs) > 0 {
		if err := os.MkdirAll(p.rootfs(), 0o711); err != nil {
			return fmt.Errorf("create rootfs dir: %w", err)
		}
		defer func() {
			if retErr != nil {
				p.unmountRootfs(ctx)
			}
		}()
		if err := mount.All(p.cfg.Rootfs, p.rootfs()); err != nil {
			return fmt.Errorf("mount rootfs: %w", err)
		}
	}
	if p.cfg.Subcontainer && oci.RenameSandbox(p.cfg.Spec, p.cfg.Runsc.ID) {
		// runsc finds the sandbox by the id it knows it by.
		if err := oci.SaveSpec(p.cfg.Bundle, p.cfg.Spec); err != nil {
			return fmt.Errorf("name the sandbox by its runsc id in the spec: %w", err)
		}
	}
	if err := applyPathMounts(ctx, p.cfg.ID, p.cfg.Bundle, p.cfg.Spec); err != nil {
		return err
	}
	dropKnownUnknownCaps(ctx, p.cfg.Bundle, p.cfg.Spec)
	for attempt := 0; ; attempt++ {
		err := p.create(ctx)
		if err == nil {
			return nil
		}
		// runsc may have left a half-made sandbox behind.
		if derr := p.cfg.Runsc.Delete(context.WithoutCancel(ctx), p.cfg.ID, true); derr != nil && !isNotExist(derr) {
			log.G(ctx).WithError(derr).Warn("delete failed sandbox")
		}
		if p.cfg.Cgroup != nil {
			if rerr := p.cfg.Cgroup.Remove(context.WithoutCancel(ctx)); rerr != nil {
				log.G(ctx).WithError(rerr).Warn("remove the failed sandbox's cgroup")
			}
		}
		name := unknownCapability(err)
		if name == "" || attempt >= maxCapRetries || !dropCap(ctx, p.cfg.Bundle, p.cfg.Spec, name) {
			return err
		}
	}
}

// create runs `runsc create` with fresh stdio.
func (p *Init) create(ctx context.Context) (retErr error) {
	opts := &runsc.CreateOpts{PidFile: filepath.Join(p.cfg.Bundle, InitPidFile)}
	if cg := p.cfg.Cgroup; cg != nil && !p.cfg.Subcontainer {
		opts.Place = func(pid int) error { return cg.Place(ctx, pid) }
	}
	var socket *runc.Socket
	if p.cfg.Stdio.Terminal {
		s, err := runc.NewTempConsoleSocket()
		if err != nil {
			return fmt.Errorf("create console socket: %w", err)
		}
		defer s.Close()
		socket = s
		opts.ConsoleSocket = s
	} else {
		pio, err := newProcessIO(ctx, p.cfg.ID, p.cfg.Stdio)
		if err != nil {
			return fmt.Errorf("set up stdio: %w", err)
		}
		defer func() {
			if retErr != nil {
				pio.Close()
				p.io = nil
			}
		}()
		p.io = pio
		if !p.cfg.Subcontainer {
			// A container joining a sandbox gets its stdio at start.
			opts.IO = pio.io
		}
	}
	if err := p.createOrRestore(ctx, opts); err != nil {
		return err
	}
	if socket != nil {
		c, err := socket.ReceiveMaster()
		if err != nil {
			return fmt.Errorf("receive console master from runsc: %w", err)
		}
		if p.console, err = copyConsole(ctx, p.cfg.Platform, c, p.cfg.ID, p.cfg.Stdio, &p.wg, &p.consoleIn); err != nil {
			c.Close()
			return err
		}
	} else if err := p.io.start(ctx, &p.wg); err != nil {
		return err
	}
	pid, err := runc.ReadPidFile(opts.PidFile)
	if err != nil {
		return fmt.Errorf("read pid file of runsc create: %w", err)
	}
	p.mu.Lock()
	p.pid = pid
	p.mu.Unlock()
	return nil
}

// createOrRestore runs `runsc create`, or `runsc restore` for a container
// created from a checkpoint.
func (p *Init) createOrRestore(ctx context.Context, opts *runsc.CreateOpts) error {
	if p.cfg.Checkpoint == "" {
		return p.cfg.Runsc.Create(ctx, p.cfg.ID, opts)
	}
	return p.cfg.Runsc.Restore(ctx, p.cfg.ID, &runsc.RestoreOpts{ImagePath: p.cfg.Checkpoint, CreateOpts: *opts})
}

// Restored reports whether the container was restored from a checkpoint.
func (p *Init) Restored() bool { return p.cfg.Checkpoint != "" }

// Start runs `runsc start`. A restored container already runs (runsc
// restore started it): Start only reports it running.
func (p *Init) Start(ctx context.Context) error {
	if st := p.Status(); st != Created {
		return fmt.Errorf("cannot start a %s container: %w", st, errdefs.ErrFailedPrecondition)
	}
	if p.Restored() {
		_ = p.transition("start", Running, Created)
		return nil
	}
	for attempt := 0; ; attempt++ {
		var startIO runc.IO
		if p.cfg.Subcontainer && p.io != nil {
			startIO = p.io.io
		}
		var place func(pid int) error
		if p.join != nil {
			place = func(pid int) error { return p.join(ctx, pid) }
		}
		err := p.cfg.Runsc.Start(ctx, p.cfg.ID, startIO, place)
		if err == nil {
			break
		}
		// runsc checks the capabilities of a container joining a sandbox
		// only at start: make it again without the one runsc rejected.
		name := unknownCapability(err)
		if !p.cfg.Subcontainer || p.cfg.Stdio.Terminal || name == "" || attempt >= maxCapRetries ||
			!dropCap(ctx, p.cfg.Bundle, p.cfg.Spec, name) {
			return err
		}
		if err := p.recreate(ctx); err != nil {
			return err
		}
	}
	// The process may have exited already; only a created one becomes running.
	_ = p.transition("start", Running, Created)
	return nil
}

// recreate removes a created container that joins a sandbox from runsc and
// creates it again. Its stdio is handed over only at start: the same pipes
// (and the copies to containerd's FIFOs) serve the next attempt.
func (p *Init) recreate(ctx context.Context) error {
	if err := p.cfg.Runsc.Delete(context.WithoutCancel(ctx), p.cfg.ID, true); err != nil && !isNotExist(err) {
		return err
	}
	return p.cfg.Runsc.Create(ctx, p.cfg.ID, &runsc.CreateOpts{PidFile: filepath.Join(p.cfg.Bundle, InitPidFile)})
}

// KillCreated removes a container that was created but never started: runsc
// cannot signal it. A root container's sandbox dies with it.
func (p *Init) KillCreated(ctx context.Context) error {
	if st := p.Status(); st != Created {
		return fmt.Errorf("container %s is %s, not created: %w", p.cfg.ID, st, errdefs.ErrFailedPrecondition)
	}
	if err := p.cfg.Runsc.Delete(context.WithoutCancel(ctx), p.cfg.ID, true); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

// DrainOutput copies what is left of the container's output to containerd
// (and ends a terminal's copy), and waits until containerd has read it; see
// drainConsole, drainPipes and waitRead.
func (p *Init) DrainOutput() {
	if p.cfg.Subcontainer && p.Status() == Created {
		// Its stdio goes to runsc at start: nothing was ever written.
		return
	}
	if p.console != nil {
		drainConsole(p.cfg.Platform, p.console, &p.wg)
		waitRead(p.cfg.Stdio, readTimeout)
		return
	}
	if p.io != nil && p.io.copy {
		drainPipes(p.io, &p.wg)
		waitRead(p.io.stdio, readTimeout)
	}
}

// SetExited records the container's exit status.
func (p *Init) SetExited(status int) bool {
	return p.setExited(status)
}

// Kill signals the container (all of its processes with all).
func (p *Init) Kill(ctx context.Context, sig uint32, all bool) error {
	switch p.Status() {
	case Stopped, Deleted:
		return fmt.Errorf("container %s: process already finished: %w", p.cfg.ID, errdefs.ErrNotFound)
	}
	return checkKillError(p.cfg.Runsc.Kill(ctx, p.cfg.ID, int(sig), all))
}

// CheckpointConfig is what Checkpoint saves and how.
type CheckpointConfig struct {
	// ImagePath is the directory the checkpoint image is written into.
	ImagePath string
	// WorkPath is runsc's scratch directory, if set.
	WorkPath string
	// Exit stops the container after the checkpoint; otherwise it keeps
	// running.
	Exit bool
}

// CheckpointsPaused reports whether the container's runsc can checkpoint
// it while it is paused.
func (p *Init) CheckpointsPaused() bool { return p.cfg.Runsc.Features.CheckpointsInPlace() }

// Checkpoint saves the container's sandbox (runsc checkpoints the whole
// sandbox) into a checkpoint image. With Exit, the sandbox stops and its
// exit comes, as any exit, from the reaper.
func (p *Init) Checkpoint(ctx context.Context, cfg CheckpointConfig) error {
	st := p.Status()
	if st != Running && st != Paused {
		return fmt.Errorf("cannot checkpoint a %s container: %w", st, errdefs.ErrFailedPrecondition)
	}
	rs := p.cfg.Runsc
	inPlace := rs.Features.CheckpointsInPlace()
	if !cfg.Exit && !inPlace {
		return fmt.Errorf("runsc checkpoint: %s cannot checkpoint a sandbox and leave it running "+
			"(its --leave-running replaces the sandbox by a restored one and waits for it to exit): "+
			"checkpoint with exit (ctr: --exit), or use a newer runsc: %w", rs.Features, errdefs.ErrNotImplemented)
	}
	if st == Paused && !inPlace {
		return fmt.Errorf("runsc checkpoint: %s cannot checkpoint a paused sandbox (resume it first): %w", rs.Features, errdefs.ErrFailedPrecondition)
	}
	return rs.Checkpoint(ctx, p.cfg.ID, &runsc.CheckpointOpts{
		ImagePath:    cfg.ImagePath,
		WorkPath:     cfg.WorkPath,
		LeaveRunning: !cfg.Exit,
	})
}

// Pause freezes the container.
func (p *Init) Pause(ctx context.Context) error {
	if st := p.Status(); st != Running {
		return fmt.Errorf("cannot pause a %s container: %w", st, errdefs.ErrFailedPrecondition)
	}
	if err := p.cfg.Runsc.Pause(ctx, p.cfg.ID); err != nil {
		return err
	}
	return p.transition("pause", Paused, Running)
}

// Resume thaws a paused container.
func (p *Init) Resume(ctx context.Context) error {
	if st := p.Status(); st != Paused {
		return fmt.Errorf("cannot resume a %s container: %w", st, errdefs.ErrFailedPrecondition)
	}
	if err := p.cfg.Runsc.Resume(ctx, p.cfg.ID); err != nil {
		return err
	}
	return p.transition("resume", Running, Paused)
}

// Delete removes the container from runsc, waits for its output to drain and
// unmounts its rootfs. A running container cannot be deleted.
func (p *Init) Delete(ctx context.Context) error {
	switch st := p.Status(); st {
	case Running, Paused:
		return fmt.Errorf("cannot delete a %s container: %w", st, errdefs.ErrFailedPrecondition)
	case Deleted:
		return fmt.Errorf("container %s: %w", p.cfg.ID, errdefs.ErrNotFound)
	}
	ctx = context.WithoutCancel(ctx)
	if err := p.cfg.Runsc.Delete(ctx, p.cfg.ID, true); err != nil && !isNotExist(err) {
		// Nothing is released: a retry runs runsc delete again.
		return err
	}
	if p.cfg.Cgroup != nil && !p.cfg.Subcontainer {
		// The sandbox is gone: its cgroup goes too (a retry tries again).
		if err := p.cfg.Cgroup.Remove(ctx); err != nil {
			return fmt.Errorf("remove the sandbox's cgroup: %w", err)
		}
	}
	p.cfg.Runsc.RemoveStaleLocks(p.cfg.ID)
	p.consoleIn.close()
	if p.console != nil {
		// The epoll console keeps waiting for a slave that may come back;
		// shut it down so that its copier drains what is left and ends.
		_ = p.cfg.Platform.ShutdownConsole(ctx, p.console)
	}
	waitTimeout(&p.wg, 2*time.Second)
	if p.console != nil {
		p.console.Close()
	}
	if p.io != nil {
		p.io.Close()
	}
	p.unmountRootfs(ctx)
	os.Remove(filepath.Join(p.cfg.Bundle, InitPidFile))
	p.mu.Lock()
	p.status = Deleted
	p.mu.Unlock()
	return nil
}

func (p *Init) unmountRootfs(ctx context.Context) {
	if len(p.cfg.Rootfs) == 0 {
		return
	}
	if err := mount.UnmountRecursive(p.rootfs(), 0); err != nil {
		log.G(ctx).WithError(err).Warn("unmount rootfs")
	}
}

// Resize changes the size of the container's terminal.
func (p *Init) Resize(ws console.WinSize) error {
	if p.console == nil {
		return nil
	}
	return p.console.Resize(ws)
}

// CloseIO closes the container's stdin.
func (p *Init) CloseIO() error {
	p.consoleIn.close()
	if p.io != nil {
		return p.io.CloseStdin()
	}
	return nil
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}
