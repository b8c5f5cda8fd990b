package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// counterLoop prints an in-memory counter: a restored copy continues it.
var counterLoop = []string{"sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.2; done"}

// counts parses the counter lines printed so far.
func counts(out string) []int {
	var n []int
	for _, l := range strings.Fields(out) {
		if v, err := strconv.Atoi(l); err == nil {
			n = append(n, v)
		}
	}
	return n
}

// waitCount waits until buf's output holds a counter line past min and
// returns the counts.
func waitCount(ctx context.Context, t *testing.T, what string, buf *harness.Buffer, min int) []int {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if c := counts(buf.String()); len(c) > 0 && c[len(c)-1] > min {
			return c
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: counter never passed %d: %v; output %q", what, min, ctx.Err(), buf.String())
		case <-tick.C:
		}
	}
}

// restoreTask creates container id from the image e runs, and its task from
// checkpoint img (any NewTaskOpts replacing it), and starts it.
func (e *taskEnv) restoreTask(ctx context.Context, t *testing.T, id string, topts ...client.NewTaskOpts) (*liveTask, error) {
	t.Helper()
	harness.LogOnFailure(t, e.d, id)
	c, err := e.d.Client.NewContainer(ctx, id,
		client.WithImage(e.img),
		client.WithNewSnapshot(id+"-snapshot", e.img),
		client.WithRuntime(harness.RuntimeName, e.opts),
		client.WithNewSpec(oci.WithImageConfig(e.img), oci.WithProcessArgs(counterLoop...)),
	)
	if err != nil {
		t.Fatalf("NewContainer %s: %v", id, err)
	}
	t.Cleanup(func() { e.remove(t, id) })
	lt := &liveTask{id: id, container: c, stdout: &harness.Buffer{}, stderr: &harness.Buffer{}}
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, lt.stdout, lt.stderr)), topts...)
	if err != nil {
		return nil, err
	}
	lt.task = task
	lt.shimAddr, _ = e.d.ShimAddress(id)
	if err := task.Start(ctx); err != nil {
		t.Fatalf("Start restored %s: %v", id, err)
	}
	return lt, nil
}

// withCheckpointExit asks for the task's exit after its checkpoint (what
// `ctr task checkpoint --exit` sends).
func withCheckpointExit(info *client.CheckpointTaskInfo) error {
	info.Options = &options.CheckpointOptions{Exit: true}
	return nil
}

// checkpointWithExit waits until orig (printing counterLoop) has counted
// past min, checkpoints it with exit, waits for its exit and deletes its
// task. It returns the checkpoint, orig's exit status and its last count.
func checkpointWithExit(ctx context.Context, t *testing.T, d *harness.Daemon, orig *liveTask, min int) (client.Image, uint32, int) {
	t.Helper()
	statusC, err := orig.task.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait %s: %v", orig.id, err)
	}
	waitCount(ctx, t, "original", orig.stdout, min)
	started := time.Now()
	img, err := orig.task.Checkpoint(ctx, withCheckpointExit)
	if err != nil {
		t.Fatalf("Checkpoint with exit of %s: %v", orig.id, err)
	}
	t.Logf("checkpoint (exit) of %s took %v", orig.id, time.Since(started))
	t.Cleanup(func() { _ = d.Client.ImageService().Delete(context.WithoutCancel(ctx), img.Name()) })
	var status uint32
	select {
	case st := <-statusC:
		status = st.ExitCode()
	case <-ctx.Done():
		t.Fatalf("%s still running after checkpoint with exit: %v", orig.id, ctx.Err())
	}
	if _, err := orig.task.Delete(ctx); err != nil {
		t.Fatalf("Delete original task %s: %v", orig.id, err)
	}
	n := counts(orig.stdout.String())
	return img, status, n[len(n)-1]
}

// checkpointLeavingRunning checkpoints orig (printing counterLoop) without
// exit. With a runsc that cannot checkpoint in place it checks the refusal
// (NotImplemented, naming the runsc) and that orig still counts, and
// returns nil. Otherwise orig keeps counting, and the copy that restore
// starts from the checkpoint continues the counter from the checkpoint's
// count beside the original: that copy is returned, with the original's
// count when it was checkpointed.
func checkpointLeavingRunning(ctx context.Context, t *testing.T, d *harness.Daemon, features *runsc.Features, orig *liveTask, restore func(img client.Image) *liveTask) (*liveTask, int) {
	t.Helper()
	waitCount(ctx, t, "original", orig.stdout, 3)
	img, err := orig.task.Checkpoint(ctx)
	if !features.CheckpointsInPlace() {
		want := features.String() + " cannot checkpoint a sandbox and leave it running"
		if err == nil || !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Checkpoint (leave running) of %s with %s: error %v, want NotImplemented %q", orig.id, features, err, want)
		}
		// containerd resumed it: it still counts.
		n := counts(orig.stdout.String())
		waitCount(ctx, t, "original after the refused checkpoint", orig.stdout, n[len(n)-1]+2)
		return nil, 0
	}
	if err != nil {
		t.Fatalf("Checkpoint (leave running) of %s: %v", orig.id, err)
	}
	t.Cleanup(func() { _ = d.Client.ImageService().Delete(context.WithoutCancel(ctx), img.Name()) })
	n := counts(orig.stdout.String())
	at := n[len(n)-1]
	waitCount(ctx, t, "original after its checkpoint", orig.stdout, at+3)
	rest := restore(img)
	after := waitCount(ctx, t, "restored copy", rest.stdout, 0)
	if after[0] <= 1 || after[0] > at+2 {
		t.Errorf("restored copy starts at %d, want the checkpoint's count (2..%d); its output %q", after[0], at+2, rest.stdout.String())
	}
	// Both run at once.
	n = counts(orig.stdout.String())
	waitCount(ctx, t, "original beside its copy", orig.stdout, n[len(n)-1]+2)
	m := counts(rest.stdout.String())
	waitCount(ctx, t, "copy beside the original", rest.stdout, m[len(m)-1]+2)
	return rest, at
}

// checkpointFeatures is what the runsc under test can do.
func checkpointFeatures(t *testing.T) *runsc.Features {
	t.Helper()
	f, err := runsc.Probe(context.Background(), harness.Runsc(), nil)
	if err != nil {
		t.Fatalf("probe %s: %v", harness.Runsc(), err)
	}
	if strings.Contains(f.Version, "20221219") && f.CheckpointsInPlace() {
		t.Fatalf("%s: taken for a runsc that checkpoints in place", f)
	}
	return f
}

func TestCheckpoint(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireBinary(t, harness.Runsc())
	harness.RequireBinary(t, harness.BusyboxBinary)
	dir := shim(t)
	features := checkpointFeatures(t)

	forEachDaemon(t, harness.DaemonOptions{ShimDirs: []string{dir}}, func(t *testing.T, d *harness.Daemon) {
		e := newTaskEnv(t, d)

		t.Run("exit-restore-continues", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(d.Context(context.Background()), taskTimeout)
			defer cancel()
			orig := e.start(ctx, t, e.id("ckpt-exit"), counterLoop)
			img, status, last := checkpointWithExit(ctx, t, d, orig, 5)
			t.Logf("original exited with %d after its checkpoint", status)

			started := time.Now()
			rest, err := e.restoreTask(ctx, t, e.id("ckpt-exit-r"), client.WithTaskCheckpoint(img))
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			t.Logf("restore took %v", time.Since(started))
			st, err := rest.task.Status(ctx)
			if err != nil || st.Status != client.Running {
				t.Fatalf("restored task status %v (%v), want running", st.Status, err)
			}
			after := waitCount(ctx, t, "restored", rest.stdout, last+2)
			if after[0] != last+1 {
				t.Errorf("restored counter starts at %d, want %d (the original's last %d + 1); restored output %q",
					after[0], last+1, last, rest.stdout.String())
			}
			res, err := execRun(ctx, rest.container, rest.task, "x1", nil, "echo", "exec-in-restored")
			if err != nil || strings.TrimSpace(res.stdout) != "exec-in-restored" || res.status != 0 {
				t.Errorf("exec in restored: %+v, %v", res, err)
			}
			if _, err := rest.task.Metrics(ctx); err != nil {
				t.Errorf("stats of restored: %v", err)
			}
			if status := e.killAndDelete(ctx, t, rest.container, rest.task, rest.shimAddr); status != 137 {
				t.Errorf("restored exit status %d, want 137", status)
			}
			if err := orig.container.Delete(ctx, client.WithSnapshotCleanup); err != nil {
				t.Errorf("delete original container: %v", err)
			}
			harness.AssertNoLeftovers(t, d, orig.id, e.cfg.Root, orig.shimAddr)
		})

		t.Run("leave-running", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(d.Context(context.Background()), taskTimeout)
			defer cancel()
			orig := e.start(ctx, t, e.id("ckpt-live"), counterLoop)
			rest, _ := checkpointLeavingRunning(ctx, t, d, features, orig, func(img client.Image) *liveTask {
				rest, err := e.restoreTask(ctx, t, e.id("ckpt-live-r"), client.WithTaskCheckpoint(img))
				if err != nil {
					t.Fatalf("restore: %v", err)
				}
				return rest
			})
			if rest == nil {
				e.killAndDelete(ctx, t, orig.container, orig.task, orig.shimAddr)
				return
			}
			e.killAndDelete(ctx, t, rest.container, rest.task, rest.shimAddr)
			e.killAndDelete(ctx, t, orig.container, orig.task, orig.shimAddr)
		})

		// What `ctr containers checkpoint --task --image` and `ctr
		// containers restore --live` do: the checkpoint holds the
		// container's image, runtime and spec, and leaves it running.
		t.Run("container-checkpoint-restore", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(d.Context(context.Background()), taskTimeout)
			defer cancel()
			orig := e.start(ctx, t, e.id("ckpt-ctr"), counterLoop)
			waitCount(ctx, t, "original", orig.stdout, 3)
			ref := "example.com/checkpoint/" + orig.id + ":1"
			img, err := orig.container.Checkpoint(ctx, ref, client.WithCheckpointImage, client.WithCheckpointTask, client.WithCheckpointRuntime)
			if !features.CheckpointsInPlace() {
				want := features.String() + " cannot checkpoint a sandbox and leave it running"
				if err == nil || !errdefs.IsNotImplemented(err) || !strings.Contains(err.Error(), want) {
					t.Fatalf("container checkpoint with %s: error %v, want NotImplemented %q", features, err, want)
				}
				e.killAndDelete(ctx, t, orig.container, orig.task, orig.shimAddr)
				return
			}
			if err != nil {
				t.Fatalf("container checkpoint: %v", err)
			}
			t.Cleanup(func() { _ = d.Client.ImageService().Delete(context.WithoutCancel(ctx), ref) })
			id := e.id("ckpt-ctr-r")
			harness.LogOnFailure(t, d, id)
			c, err := d.Client.Restore(ctx, id, img, client.WithRestoreImage, client.WithRestoreSpec, client.WithRestoreRuntime)
			if err != nil {
				t.Fatalf("restore container: %v", err)
			}
			t.Cleanup(func() { e.remove(t, id) })
			var out harness.Buffer
			task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &out)), client.WithTaskCheckpoint(img))
			if err != nil {
				t.Fatalf("NewTask from checkpoint: %v", err)
			}
			addr, _ := d.ShimAddress(id)
			if err := task.Start(ctx); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if got := waitCount(ctx, t, "restored", &out, 1); got[0] <= 1 {
				t.Errorf("restored counter starts at %d, want the checkpoint's count", got[0])
			}
			e.killAndDelete(ctx, t, c, task, addr)
			e.killAndDelete(ctx, t, orig.container, orig.task, orig.shimAddr)
		})

		t.Run("corrupt-image", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(d.Context(context.Background()), taskTimeout)
			defer cancel()
			ctx, done, err := d.Client.WithLease(ctx)
			if err != nil {
				t.Fatalf("lease: %v", err)
			}
			defer done(context.WithoutCancel(ctx))
			desc := writeCorruptCheckpoint(ctx, t, d.Client)
			id := e.id("ckpt-bad")
			_, err = e.restoreTask(ctx, t, id, func(_ context.Context, _ *client.Client, info *client.TaskInfo) error {
				info.Checkpoint = desc
				return nil
			})
			want := "bad magic header" // runsc 20221219's statefile check
			if features.CheckpointsInPlace() {
				want = `restoring container "` + id + runsc.IDSuffix + `": urpc method "containerManager.Restore" failed: EOF`
			}
			if err == nil || !strings.Contains(err.Error(), "runsc restore: ") || !strings.Contains(err.Error(), want) {
				t.Fatalf("restore from a corrupt image: error %v, want runsc restore's %q", err, want)
			}
			t.Logf("corrupt image: %v", err)
			c, err := d.Client.LoadContainer(ctx, id)
			if err != nil {
				t.Fatalf("load container: %v", err)
			}
			if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
				t.Errorf("delete container: %v", err)
			}
			harness.AssertNoLeftovers(t, d, id, e.cfg.Root)
		})
	})
}

// writeCorruptCheckpoint stores a checkpoint archive whose state file is
// garbage and returns its descriptor.
func writeCorruptCheckpoint(ctx context.Context, t *testing.T, c *client.Client) *types.Descriptor {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	data := []byte("not a gVisor state file\n")
	if err := tw.WriteHeader(&tar.Header{Name: "checkpoint.img", Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return writeCheckpointBlob(ctx, t, c, "corrupt-checkpoint-"+runID, b.Bytes())
}

// writeCheckpointBlob stores archive (a tar of checkpoint files) in c's
// content store as a containerd checkpoint blob and returns its descriptor.
func writeCheckpointBlob(ctx context.Context, t *testing.T, c *client.Client, ref string, archive []byte) *types.Descriptor {
	t.Helper()
	d := ocispec.Descriptor{MediaType: images.MediaTypeContainerd1Checkpoint, Digest: digest.FromBytes(archive), Size: int64(len(archive))}
	if err := content.WriteBlob(ctx, c.ContentStore(), ref, bytes.NewReader(archive), d); err != nil {
		t.Fatalf("write checkpoint blob %s: %v", ref, err)
	}
	return &types.Descriptor{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size}
}
