package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// Buffer is a bytes.Buffer safe for the concurrent writes of cio copiers
// and reads of a test.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// RunOptions describes one container run by Daemon.Run.
type RunOptions struct {
	ID    string
	Image client.Image
	Args  []string
	// Runtime defaults to RuntimeName; RuntimeOptions are passed with it
	// (e.g. &runtimeoptions.Options{ConfigPath: ...}).
	Runtime        string
	RuntimeOptions any
	SpecOpts       []oci.SpecOpts
	TTY            bool
	Stdin          io.Reader
	// AfterStart, if set, runs once the task has started (e.g. to Kill it).
	AfterStart func(ctx context.Context, task client.Task) error
}

// RunResult is what a run produced.
type RunResult struct {
	Stdout     string
	Stderr     string
	ExitStatus uint32
	// ShimAddress is the shim socket read from the bundle while the task
	// existed ("" if unreadable).
	ShimAddress string
}

// Run creates container opts.ID from the image, runs its task to completion
// and deletes task, container and snapshot. An error at NewTask is returned
// as is (wrapped), so tests can inspect runtime errors. Whatever Run
// created is removed before it returns, also on errors and when ctx
// expires (a cleanup context of its own bounds that).
func (d *Daemon) Run(ctx context.Context, opts RunOptions) (res RunResult, retErr error) {
	c := d.Client
	rt := opts.Runtime
	if rt == "" {
		rt = RuntimeName
	}
	specOpts := []oci.SpecOpts{oci.WithImageConfig(opts.Image)}
	if len(opts.Args) > 0 {
		specOpts = append(specOpts, oci.WithProcessArgs(opts.Args...))
	}
	if opts.TTY {
		specOpts = append(specOpts, oci.WithTTY)
	}
	specOpts = append(specOpts, opts.SpecOpts...)

	container, err := c.NewContainer(ctx, opts.ID,
		client.WithImage(opts.Image),
		client.WithNewSnapshot(opts.ID+"-snapshot", opts.Image),
		client.WithRuntime(rt, opts.RuntimeOptions),
		client.WithNewSpec(specOpts...),
	)
	if err != nil {
		return res, fmt.Errorf("NewContainer %s: %w", opts.ID, err)
	}
	cleanupCtx, cancelCleanup := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelCleanup()
	defer func() {
		if err := container.Delete(cleanupCtx, client.WithSnapshotCleanup); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("delete container %s: %w", opts.ID, err))
		}
	}()

	var stdout, stderr Buffer
	var ioOpts []cio.Opt
	if opts.TTY {
		ioOpts = append(ioOpts, cio.WithStreams(opts.Stdin, &stdout, nil), cio.WithTerminal)
	} else {
		ioOpts = append(ioOpts, cio.WithStreams(opts.Stdin, &stdout, &stderr))
	}
	defer func() {
		// Runs after the task is deleted, which waits for the I/O copiers.
		res.Stdout, res.Stderr = stdout.String(), stderr.String()
	}()
	task, err := container.NewTask(ctx, cio.NewCreator(ioOpts...))
	if err != nil {
		return res, fmt.Errorf("NewTask %s: %w", opts.ID, err)
	}
	res.ShimAddress, _ = d.ShimAddress(opts.ID)
	deleted := false
	defer func() {
		if deleted {
			return
		}
		_ = task.Kill(cleanupCtx, syscall.SIGKILL)
		if _, err := task.Delete(cleanupCtx, client.WithProcessKill); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("cleanup: delete task %s: %w", opts.ID, err))
		}
	}()

	statusC, err := task.Wait(ctx)
	if err != nil {
		return res, fmt.Errorf("Wait %s: %w", opts.ID, err)
	}
	if err := task.Start(ctx); err != nil {
		return res, fmt.Errorf("Start %s: %w", opts.ID, err)
	}
	if opts.AfterStart != nil {
		if err := opts.AfterStart(ctx, task); err != nil {
			return res, err
		}
	}
	select {
	case st := <-statusC:
		if err := st.Error(); err != nil {
			return res, fmt.Errorf("exit status of %s: %w", opts.ID, err)
		}
		res.ExitStatus = st.ExitCode()
	case <-ctx.Done():
		return res, fmt.Errorf("waiting for %s to exit: %w (stdout so far %q, stderr %q)",
			opts.ID, ctx.Err(), stdout.String(), stderr.String())
	}
	st, err := task.Delete(ctx)
	deleted = err == nil
	if err != nil {
		return res, fmt.Errorf("delete task %s: %w", opts.ID, err)
	}
	if st != nil && st.ExitCode() != res.ExitStatus {
		return res, fmt.Errorf("task %s: Wait said exit %d, Delete said %d", opts.ID, res.ExitStatus, st.ExitCode())
	}
	return res, nil
}
