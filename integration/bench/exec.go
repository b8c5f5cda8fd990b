package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// ExecReport is section 3: exec of `true` in a running container.
type ExecReport struct {
	Variants []Summary `json:"variants"`
	// Overhead is p50(shim runsc exec) - p50(raw runsc exec).
	Overhead       float64 `json:"runsc_exec_overhead_p50_ms"`
	OverheadPaired float64 `json:"runsc_exec_overhead_paired_ms"`
	RuncOverhead   float64 `json:"runc_exec_overhead_p50_ms"`
}

// running is a long-running container started through containerd.
type running struct {
	container client.Container
	task      client.Task
}

// startSleeper creates and starts a container running sleep through
// containerd with the given runtime and returns once the task runs.
func (e *env) startSleeper(ctx context.Context, id, runtime string, rtOpts any) (*running, time.Duration, error) {
	ctx, cancel := context.WithTimeout(e.d.Context(ctx), opTimeout)
	defer cancel()
	start := time.Now()
	c, err := e.d.Client.NewContainer(ctx, id,
		client.WithImage(e.img),
		client.WithNewSnapshot(id+"-snap", e.img),
		client.WithRuntime(runtime, rtOpts),
		client.WithNewSpec(oci.WithImageConfig(e.img), oci.WithProcessArgs("/bin/sleep", "1000000")),
	)
	if err != nil {
		return nil, 0, fmt.Errorf("NewContainer %s: %w", id, err)
	}
	t, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		e.cleanupContainer(c, nil)
		return nil, 0, fmt.Errorf("NewTask %s: %w", id, err)
	}
	if err := t.Start(ctx); err != nil {
		e.cleanupContainer(c, t)
		return nil, 0, fmt.Errorf("Start %s: %w", id, err)
	}
	return &running{container: c, task: t}, time.Since(start), nil
}

func (r *running) stop(e *env) {
	e.cleanupContainer(r.container, r.task)
}

// clientExec runs /bin/true in r through the Task API: Exec, Wait, Start,
// the exit, Delete.
func (e *env) clientExec(ctx context.Context, r *running, ph *phaseSamples) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(e.d.Context(ctx), opTimeout)
	defer cancel()
	spec, err := r.container.Spec(ctx)
	if err != nil {
		return 0, err
	}
	pspec := *spec.Process
	pspec.Args = []string{"/bin/true"}
	pspec.Terminal = false
	id := e.nextID("x")
	t0 := time.Now()
	last := t0
	mark := func(name string) {
		now := time.Now()
		ph.add(name, now.Sub(last))
		last = now
	}
	p, err := r.task.Exec(ctx, id, &pspec, cio.NullIO)
	if err != nil {
		return 0, fmt.Errorf("Exec: %w", err)
	}
	mark("Exec")
	statusC, err := p.Wait(ctx)
	if err != nil {
		_, _ = p.Delete(ctx, client.WithProcessKill)
		return 0, fmt.Errorf("Wait: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		_, _ = p.Delete(ctx, client.WithProcessKill)
		return 0, fmt.Errorf("Start: %w", err)
	}
	mark("Start")
	var st client.ExitStatus
	select {
	case st = <-statusC:
	case <-ctx.Done():
		_, _ = p.Delete(ctx, client.WithProcessKill)
		return 0, fmt.Errorf("waiting for exec exit: %w", ctx.Err())
	}
	mark("until exit")
	if _, err := p.Delete(ctx); err != nil {
		return 0, fmt.Errorf("Delete: %w", err)
	}
	mark("Delete")
	if st.ExitCode() != 0 {
		return 0, fmt.Errorf("exec /bin/true exited %d", st.ExitCode())
	}
	return time.Since(t0), nil
}

func (e *env) execBench(ctx context.Context) (_ *ExecReport, retErr error) {
	bundle, err := e.raw.bundle(ctx, e.d, e.img, "sleep-runsc", "/bin/sleep", "1000000")
	if err != nil {
		return nil, err
	}
	runcBundle, err := e.raw.bundle(ctx, e.d, e.img, "sleep-runc", "/bin/sleep", "1000000")
	if err != nil {
		return nil, err
	}
	// Raw containers: create + start, detached.
	rawRunsc := e.raw.nextID("rawx-runsc")
	if _, err := runCmd(ctx, e.raw.runsc, e.raw.runscArgs(bundle, "create", "--bundle", bundle, rawRunsc)); err != nil {
		return nil, err
	}
	defer func() {
		if _, err := runCmd(context.Background(), e.raw.runsc, e.raw.runscArgs(bundle, "delete", "--force", rawRunsc)); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	if _, err := runCmd(ctx, e.raw.runsc, e.raw.runscArgs(bundle, "start", rawRunsc)); err != nil {
		return nil, err
	}
	rawRunc := e.raw.nextID("rawx-runc")
	if _, err := runCmd(ctx, e.raw.runc, e.raw.runcArgs(runcBundle, "create", "--bundle", runcBundle, rawRunc)); err != nil {
		return nil, err
	}
	defer func() {
		if _, err := runCmd(context.Background(), e.raw.runc, e.raw.runcArgs(runcBundle, "delete", "--force", rawRunc)); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	if _, err := runCmd(ctx, e.raw.runc, e.raw.runcArgs(runcBundle, "start", rawRunc)); err != nil {
		return nil, err
	}
	shimRunsc, _, err := e.startSleeper(ctx, e.nextID("xs"), runscRuntime, e.runscOpts)
	if err != nil {
		return nil, err
	}
	defer shimRunsc.stop(e)
	shimRunc, _, err := e.startSleeper(ctx, e.nextID("xr"), runcRuntime, nil)
	if err != nil {
		return nil, err
	}
	defer shimRunc.stop(e)

	vs := []*variant{
		{name: "shim runsc exec", run: func(ctx context.Context, ph *phaseSamples) (time.Duration, error) {
			return e.clientExec(ctx, shimRunsc, ph)
		}},
		{name: "raw runsc exec", run: func(ctx context.Context, _ *phaseSamples) (time.Duration, error) {
			return runCmd(ctx, e.raw.runsc, e.raw.runscArgs(bundle, "exec", rawRunsc, "/bin/true"))
		}},
		{name: "shim runc exec", run: func(ctx context.Context, ph *phaseSamples) (time.Duration, error) {
			return e.clientExec(ctx, shimRunc, ph)
		}},
		{name: "raw runc exec", run: func(ctx context.Context, _ *phaseSamples) (time.Duration, error) {
			return runCmd(ctx, e.raw.runc, e.raw.runcArgs(runcBundle, "exec", rawRunc, "/bin/true"))
		}},
		// Not a target: what one runsc CLI invocation costs (Go runtime
		// start, flag parsing, state file load), the unit price of every
		// runsc call the shim makes.
		{name: "raw runsc state (one runsc CLI call)", run: func(ctx context.Context, _ *phaseSamples) (time.Duration, error) {
			return runCmd(ctx, e.raw.runsc, e.raw.runscArgs(bundle, "state", rawRunsc))
		}},
	}
	if err := e.interleave(ctx, "exec", e.o.warmup, e.o.runs, vs); err != nil {
		return nil, err
	}
	r := &ExecReport{}
	for _, v := range vs {
		r.Variants = append(r.Variants, v.summary())
	}
	r.Overhead = round2(r.Variants[0].P50 - r.Variants[1].P50)
	r.OverheadPaired = pairedDiffMedian(vs[0].xs, vs[1].xs)
	r.RuncOverhead = round2(r.Variants[2].P50 - r.Variants[3].P50)
	return r, nil
}
