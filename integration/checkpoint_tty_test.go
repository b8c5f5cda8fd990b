package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// TestCheckpointTTY: a container with a terminal (ctr run -t) is
// checkpointed with exit and restored as a new task with a terminal: the
// counter continues on the new task's terminal, and exit status, exec and
// delete work on it. Checkpoint with exit works with both runsc
// generations, on containerd 1.6 and 2.4. A checkpoint that leaves it
// running (current runsc; refused as NotImplemented by runsc 20221219)
// keeps the original on its terminal beside a restored copy on another.
func TestCheckpointTTY(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireBinary(t, harness.Runsc())
	harness.RequireBinary(t, harness.BusyboxBinary)
	dir := shim(t)
	features := checkpointFeatures(t)
	forEachDaemon(t, harness.DaemonOptions{ShimDirs: []string{dir}}, func(t *testing.T, d *harness.Daemon) {
		e := newTaskEnv(t, d)
		t.Run("exit", func(t *testing.T) { e.checkpointTTYExit(t) })
		t.Run("leave-running", func(t *testing.T) { e.checkpointTTYLeaveRunning(t, features) })
	})
}

// checkpointTTYExit: checkpoint with exit of a TTY container, and its
// restore as a new task with a terminal.
func (e *taskEnv) checkpointTTYExit(t *testing.T) {
	d := e.d
	ctx, cancel := context.WithTimeout(d.Context(context.Background()), taskTimeout)
	defer cancel()
	orig := e.startTTY(ctx, t, e.id("ckpt-tty"), nil)
	img, status, last := checkpointWithExit(ctx, t, d, orig, 3)
	if status != 0 {
		t.Errorf("original exit status %d after its checkpoint, want 0", status)
	}

	rest := e.startTTY(ctx, t, e.id("ckpt-tty-r"), img)
	after := waitCount(ctx, t, "restored", rest.stdout, last+2)
	if after[0] != last+1 {
		t.Errorf("restored counter starts at %d, want %d (the original's last + 1); restored terminal %q",
			after[0], last+1, rest.stdout.String())
	}
	// A terminal's line discipline ends lines with CR LF: both wrote
	// to one (the restored process to the new task's).
	for _, o := range []*liveTask{orig, rest} {
		if !strings.Contains(o.stdout.String(), "\r\n") {
			t.Errorf("%s's output %q has no CR LF: not a terminal", o.id, o.stdout.String())
		}
	}
	t.Logf("original's terminal ended at %d, restored's starts %q", last, firstLines(rest.stdout.String(), 3))
	res, err := execRun(ctx, rest.container, rest.task, "x1", nil, "echo", "exec-in-restored")
	if err != nil || strings.TrimSpace(res.stdout) != "exec-in-restored" || res.status != 0 {
		t.Errorf("exec in restored: %+v, %v", res, err)
	}
	if status := e.killAndDelete(ctx, t, rest.container, rest.task, rest.shimAddr); status != 137 {
		t.Errorf("restored exit status %d, want 137", status)
	}
	if err := orig.container.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		t.Errorf("delete original container: %v", err)
	}
	harness.AssertNoLeftovers(t, d, orig.id, e.cfg.Root, orig.shimAddr)
}

// checkpointTTYLeaveRunning: a checkpoint that leaves a terminal container
// running (ctr task checkpoint without --exit): the original keeps counting
// on its terminal, and a copy restored from it as a new task with a
// terminal continues the counter on its own, beside the original. A runsc
// that cannot checkpoint in place refuses with NotImplemented, and the
// original still runs.
func (e *taskEnv) checkpointTTYLeaveRunning(t *testing.T, features *runsc.Features) {
	d := e.d
	ctx, cancel := context.WithTimeout(d.Context(context.Background()), taskTimeout)
	defer cancel()
	orig := e.startTTY(ctx, t, e.id("ckpt-tty-live"), nil)
	rest, at := checkpointLeavingRunning(ctx, t, d, features, orig, func(img client.Image) *liveTask {
		return e.startTTY(ctx, t, e.id("ckpt-tty-live-r"), img)
	})
	if rest == nil {
		e.killAndDelete(ctx, t, orig.container, orig.task, orig.shimAddr)
		return
	}
	for _, o := range []*liveTask{orig, rest} {
		if !strings.Contains(o.stdout.String(), "\r\n") {
			t.Errorf("%s's output %q has no CR LF: not a terminal", o.id, o.stdout.String())
		}
	}
	t.Logf("checkpoint left the original running at %d; the copy's terminal starts %q", at, firstLines(rest.stdout.String(), 2))
	for _, o := range []*liveTask{rest, orig} {
		if status := e.killAndDelete(ctx, t, o.container, o.task, o.shimAddr); status != 137 {
			t.Errorf("%s exit status %d, want 137", o.id, status)
		}
	}
	harness.AssertNoLeftovers(t, d, orig.id, e.cfg.Root, orig.shimAddr)
	harness.AssertNoLeftovers(t, d, rest.id, e.cfg.Root, rest.shimAddr)
}

// startTTY runs counterLoop with a terminal (its output on stdout), from
// the checkpoint img if set, and starts it.
func (e *taskEnv) startTTY(ctx context.Context, t *testing.T, id string, img client.Image) *liveTask {
	t.Helper()
	harness.LogOnFailure(t, e.d, id)
	c, err := e.d.Client.NewContainer(ctx, id,
		client.WithImage(e.img),
		client.WithNewSnapshot(id+"-snapshot", e.img),
		client.WithRuntime(harness.RuntimeName, e.opts),
		client.WithNewSpec(oci.WithImageConfig(e.img), oci.WithProcessArgs(counterLoop...), oci.WithTTY),
	)
	if err != nil {
		t.Fatalf("NewContainer %s: %v", id, err)
	}
	t.Cleanup(func() { e.remove(t, id) })
	lt := &liveTask{id: id, container: c, stdout: &harness.Buffer{}, stderr: &harness.Buffer{}}
	var topts []client.NewTaskOpts
	if img != nil {
		topts = append(topts, client.WithTaskCheckpoint(img))
	}
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, lt.stdout, nil), cio.WithTerminal), topts...)
	if err != nil {
		t.Fatalf("NewTask %s (checkpoint %v): %v", id, img != nil, err)
	}
	lt.task = task
	lt.shimAddr, _ = e.d.ShimAddress(id)
	if err := task.Start(ctx); err != nil {
		t.Fatalf("Start %s: %v", id, err)
	}
	lt.startedAt = time.Now()
	return lt
}

// firstLines returns s's first n lines.
func firstLines(s string, n int) string {
	l := strings.SplitAfterN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "")
}
