package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// LifecycleReport is section 1: start-to-exit of `true`.
type LifecycleReport struct {
	Variants []Summary `json:"variants"`
	// ShimOverhead is p50(this shim's client path) - p50(raw runsc run);
	// Paired is the median of the per-iteration differences.
	ShimOverhead       float64 `json:"runsc_shim_overhead_p50_ms"`
	ShimOverheadPaired float64 `json:"runsc_shim_overhead_paired_ms"`
	RuncOverhead       float64 `json:"runc_shim_overhead_p50_ms"`
	RuncOverheadPaired float64 `json:"runc_shim_overhead_paired_ms"`
	RawSpec            string  `json:"raw_spec"`
}

// variant is one measured way of doing the same work; run returns the
// total and, optionally, the phases.
type variant struct {
	name string
	run  func(ctx context.Context, ph *phaseSamples) (time.Duration, error)
	xs   []float64
	ph   phaseSamples
}

// interleave runs warmup+runs rounds; round i runs every variant once,
// starting at variant i mod n, so no variant always follows the same one.
// Only rounds after the warm-up are recorded.
func (e *env) interleave(ctx context.Context, what string, warmup, runs int, vs []*variant) error {
	for i := 0; i < warmup+runs; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		for k := range vs {
			v := vs[(i+k)%len(vs)]
			var ph phaseSamples
			d, err := v.run(ctx, &ph)
			if err != nil {
				return fmt.Errorf("%s: %s (round %d): %w", what, v.name, i, err)
			}
			if i >= warmup {
				v.xs = append(v.xs, ms(d))
				for _, n := range ph.order {
					for _, x := range ph.xs[n] {
						v.ph.add(n, time.Duration(x*float64(time.Millisecond)))
					}
				}
			}
		}
		e.logf("%s: round %d/%d done", what, i+1, warmup+runs)
	}
	return nil
}

func (v *variant) summary() Summary {
	s := summarize(v.name, v.xs)
	s.Phases = v.ph.summary()
	return s
}

func (e *env) lifecycle(ctx context.Context) (*LifecycleReport, error) {
	// One bundle per runtime (own log.json and cgroup), same rootfs and spec.
	runscBundle, err := e.raw.bundle(ctx, e.d, e.img, "true-runsc", "/bin/true")
	if err != nil {
		return nil, err
	}
	runcBundle, err := e.raw.bundle(ctx, e.d, e.img, "true-runc", "/bin/true")
	if err != nil {
		return nil, err
	}
	vs := []*variant{
		{name: "shim runsc (" + runscRuntime + ")", run: func(ctx context.Context, ph *phaseSamples) (time.Duration, error) {
			return e.clientTrue(ctx, runscRuntime, e.runscOpts, ph)
		}},
		{name: "raw runsc run", run: func(ctx context.Context, _ *phaseSamples) (time.Duration, error) {
			return e.raw.runscRun(ctx, runscBundle)
		}},
		{name: "shim runc (" + runcRuntime + ")", run: func(ctx context.Context, ph *phaseSamples) (time.Duration, error) {
			return e.clientTrue(ctx, runcRuntime, nil, ph)
		}},
		{name: "raw runc run", run: func(ctx context.Context, _ *phaseSamples) (time.Duration, error) {
			return e.raw.runcRun(ctx, runcBundle)
		}},
	}
	if err := e.interleave(ctx, "lifecycle", e.o.warmup, e.o.runs, vs); err != nil {
		return nil, err
	}
	r := &LifecycleReport{RawSpec: e.o.rawSpec}
	for _, v := range vs {
		r.Variants = append(r.Variants, v.summary())
	}
	r.ShimOverhead = round2(r.Variants[0].P50 - r.Variants[1].P50)
	r.ShimOverheadPaired = pairedDiffMedian(vs[0].xs, vs[1].xs)
	r.RuncOverhead = round2(r.Variants[2].P50 - r.Variants[3].P50)
	r.RuncOverheadPaired = pairedDiffMedian(vs[2].xs, vs[3].xs)
	return r, nil
}

// clientTrue runs /bin/true through containerd with the given runtime the
// way a client does: NewContainer (with a new snapshot and spec), NewTask,
// Wait, Start, the exit, task Delete and container Delete (with the
// snapshot). All of it is timed; ph gets each step.
func (e *env) clientTrue(ctx context.Context, runtime string, rtOpts any, ph *phaseSamples) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(e.d.Context(ctx), opTimeout)
	defer cancel()
	id := e.nextID("lc")
	c := e.d.Client
	t0 := time.Now()
	mark := func(name string, since *time.Time) {
		now := time.Now()
		ph.add(name, now.Sub(*since))
		*since = now
	}
	last := t0
	container, err := c.NewContainer(ctx, id,
		client.WithImage(e.img),
		client.WithNewSnapshot(id+"-snap", e.img),
		client.WithRuntime(runtime, rtOpts),
		client.WithNewSpec(oci.WithImageConfig(e.img), oci.WithProcessArgs("/bin/true")),
	)
	if err != nil {
		return 0, fmt.Errorf("NewContainer: %w", err)
	}
	mark("NewContainer", &last)
	task, err := container.NewTask(ctx, cio.NullIO)
	if err != nil {
		e.cleanupContainer(container, nil)
		return 0, fmt.Errorf("NewTask: %w", err)
	}
	mark("NewTask", &last)
	statusC, err := task.Wait(ctx)
	if err != nil {
		e.cleanupContainer(container, task)
		return 0, fmt.Errorf("Wait: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		e.cleanupContainer(container, task)
		return 0, fmt.Errorf("Start: %w", err)
	}
	mark("Start", &last)
	var st client.ExitStatus
	select {
	case st = <-statusC:
	case <-ctx.Done():
		e.cleanupContainer(container, task)
		return 0, fmt.Errorf("waiting for exit: %w", ctx.Err())
	}
	mark("until exit", &last)
	if st.ExitCode() != 0 {
		e.cleanupContainer(container, task)
		return 0, fmt.Errorf("/bin/true exited %d (%v)", st.ExitCode(), st.Error())
	}
	if _, err := task.Delete(ctx); err != nil {
		e.cleanupContainer(container, task)
		return 0, fmt.Errorf("task Delete: %w", err)
	}
	mark("Delete task", &last)
	if err := container.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		return 0, fmt.Errorf("container Delete: %w", err)
	}
	mark("Delete container", &last)
	return time.Since(t0), nil
}

// cleanupContainer removes what a failed measurement left, with a context
// of its own.
func (e *env) cleanupContainer(c client.Container, t client.Task) {
	ctx, cancel := context.WithTimeout(e.d.Context(context.Background()), opTimeout)
	defer cancel()
	var errs []error
	if t != nil {
		_ = t.Kill(ctx, syscall.SIGKILL)
		if _, err := t.Delete(ctx, client.WithProcessKill); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		// Always said: a failed cleanup explains a leftover shim.
		fmt.Fprintf(os.Stderr, "bench: cleanup of %s: %v\n", c.ID(), err)
	}
}
