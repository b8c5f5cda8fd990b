package shim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
)

func checkpointReq(t *testing.T, id, path string, o *options.CheckpointOptions) *taskAPI.CheckpointTaskRequest {
	t.Helper()
	r := &taskAPI.CheckpointTaskRequest{ID: id, Path: path}
	if o != nil {
		a, err := typeurl.MarshalAnyToProto(o)
		if err != nil {
			t.Fatal(err)
		}
		r.Options = a
	}
	return r
}

func TestCheckpointExitThenRestore(t *testing.T) {
	e := newFaultEnv(t)
	e.create("c1", "")
	e.start("c1")
	img := filepath.Join(t.TempDir(), "img")
	work := t.TempDir()
	if _, err := e.s.Checkpoint(e.ctx, checkpointReq(t, "c1", "/ignored", &options.CheckpointOptions{Exit: true, ImagePath: img, WorkPath: work})); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if !strings.Contains(e.calls(), "checkpoint --image-path="+img+" --work-path="+work+" c1+") {
		t.Fatalf("runsc calls:\n%s", e.calls())
	}
	// The sandbox stopped: its exit is reported once, as any exit.
	e.waitEvents("c1", "create c1", "start c1", "exit c1 143")
	e.del("c1")

	req := e.createReq("c2", "")
	req.Checkpoint = img
	if _, err := e.s.Create(e.ctx, req); err != nil {
		t.Fatalf("create from checkpoint: %v", err)
	}
	e.start("c2")
	calls := e.calls()
	if !strings.Contains(calls, "restore --bundle="+req.Bundle+" --image-path="+img+" --detach --pid-file=") || strings.Contains(calls, "start c2+") {
		t.Fatalf("restore must run runsc restore, not start; calls:\n%s", calls)
	}
	st, err := e.s.State(e.ctx, &taskAPI.StateRequest{ID: "c2"})
	if err != nil || st.Status.String() != "RUNNING" {
		t.Fatalf("state of restored: %v %v", st, err)
	}
	e.kill("c2", 9)
	e.waitEvents("c2", "create c2", "start c2", "exit c2 137")
	e.del("c2")
	e.noneLeft()
}

func TestCheckpointOptionsRefused(t *testing.T) {
	e := newFaultEnv(t)
	e.create("c1", "")
	e.start("c1")
	_, err := e.s.Checkpoint(e.ctx, checkpointReq(t, "c1", t.TempDir(), &options.CheckpointOptions{OpenTcp: true, FileLocks: true, Terminal: true, CgroupsMode: "soft"}))
	wantKind(t, err, errdefs.IsInvalidArgument, "InvalidArgument")
	if !strings.Contains(err.Error(), "open_tcp, terminal, cgroups_mode do not apply") {
		t.Fatalf("error does not name the fields: %v", err)
	}
	if strings.Contains(e.calls(), "checkpoint") {
		t.Fatalf("runsc checkpoint ran:\n%s", e.calls())
	}
	e.killAll()
}

func TestCheckpointLeaveRunningNeedsInPlaceRunsc(t *testing.T) {
	e := newFaultEnv(t)
	e.create("c1", "")
	e.start("c1")
	// The fake's version has no date: taken for a runsc that replaces the
	// sandbox on --leave-running.
	_, err := e.s.Checkpoint(e.ctx, checkpointReq(t, "c1", t.TempDir(), nil))
	wantKind(t, err, errdefs.IsNotImplemented, "NotImplemented")
	if !strings.Contains(err.Error(), "cannot checkpoint a sandbox and leave it running") {
		t.Fatalf("error: %v", err)
	}
	e.killAll()
}

// A pod's only member may be checkpointed leaving it running (its sandbox
// holds it and the pod's idle pause process: what CRI CheckpointContainer
// sends); with exit (which would stop the pod's sandbox), with a second
// member, or of the pod's own container while a member runs, it is refused.
func TestCheckpointOfPodMember(t *testing.T) {
	e := newFaultEnv(t)
	e.create("pod", "")
	e.start("pod")
	e.create("ctr", "pod")
	e.start("ctr")
	_, err := e.s.Checkpoint(e.ctx, checkpointReq(t, "pod", t.TempDir(), nil))
	wantKind(t, err, errdefs.IsFailedPrecondition, "FailedPrecondition for the pod's container")
	if !strings.Contains(err.Error(), `container "ctr" runs in the same gVisor sandbox, and runsc can only checkpoint the whole sandbox`) {
		t.Fatalf("checkpoint pod: %v", err)
	}
	_, err = e.s.Checkpoint(e.ctx, checkpointReq(t, "ctr", t.TempDir(), &options.CheckpointOptions{Exit: true}))
	wantKind(t, err, errdefs.IsFailedPrecondition, "FailedPrecondition for a member's checkpoint with exit")
	if !strings.Contains(err.Error(), `runsc would stop the whole gVisor sandbox "pod"`) {
		t.Fatalf("checkpoint ctr with exit: %v", err)
	}
	if strings.Contains(e.calls(), "checkpoint") {
		t.Fatalf("runsc checkpoint ran:\n%s", e.calls())
	}
	// The lone member's leave-running checkpoint reaches runsc's checks
	// (the fake, undated, cannot leave a sandbox running).
	_, err = e.s.Checkpoint(e.ctx, checkpointReq(t, "ctr", t.TempDir(), nil))
	wantKind(t, err, errdefs.IsNotImplemented, "NotImplemented for the lone member with this runsc")
	e.create("ctr2", "pod")
	for _, id := range []string{"ctr", "ctr2"} {
		other := map[string]string{"ctr": "ctr2", "ctr2": "ctr"}[id]
		_, err := e.s.Checkpoint(e.ctx, checkpointReq(t, id, t.TempDir(), nil))
		wantKind(t, err, errdefs.IsFailedPrecondition, "FailedPrecondition for "+id)
		if !strings.Contains(err.Error(), `container "`+other+`" is a member of the same pod (gVisor sandbox "pod"), and runsc can only checkpoint the whole sandbox`) {
			t.Fatalf("checkpoint %s: %v", id, err)
		}
	}
	req := e.createReq("ctr3", "pod")
	req.Checkpoint = t.TempDir()
	_, err = e.s.Create(e.ctx, req)
	wantKind(t, err, errdefs.IsFailedPrecondition, "FailedPrecondition for a restore into a pod")
	if strings.Contains(e.calls(), "checkpoint") || strings.Contains(e.calls(), "restore") {
		t.Fatalf("runsc ran:\n%s", e.calls())
	}
	e.killAll()
}

func TestRestoreFailureLeavesNothing(t *testing.T) {
	e := newFaultEnv(t)
	e.fault("restore-fail")
	req := e.createReq("c1", "")
	req.Checkpoint = t.TempDir()
	_, err := e.s.Create(e.ctx, req)
	if err == nil || !strings.Contains(err.Error(), `runsc restore: starting container: restoring container "c1+": statefile error: bad magic header`) {
		t.Fatalf("want runsc restore's own error, got %v", err)
	}
	if !strings.Contains(e.calls(), "delete --force c1+") {
		t.Fatalf("the failed restore's sandbox was not deleted; calls:\n%s", e.calls())
	}
	e.noneLeft()
	if _, err := os.Stat(filepath.Join(req.Bundle, "init.pid")); err == nil {
		t.Error("init.pid left in the bundle")
	}
}

func TestCheckpointExitOfPausedResumesFirst(t *testing.T) {
	e := newFaultEnv(t)
	e.create("c1", "")
	e.start("c1")
	if _, err := e.s.Pause(e.ctx, &taskAPI.PauseRequest{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	// The fake's runsc cannot checkpoint a paused sandbox (no dated version).
	if _, err := e.s.Checkpoint(e.ctx, checkpointReq(t, "c1", t.TempDir(), &options.CheckpointOptions{Exit: true})); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	calls := e.calls()
	if r, c := strings.Index(calls, "resume c1+"), strings.Index(calls, "checkpoint "); r < 0 || c < r {
		t.Fatalf("want resume before checkpoint; calls:\n%s", calls)
	}
	e.waitEvents("c1", "create c1", "start c1", "paused c1", "resumed c1", "exit c1 143")
	e.killAll()
}

// A pod sandbox's checkpoint image (marked by the shim when it checkpointed
// a pod's member) is not restored as one container: runsc would restore the
// pod's pause container as its root and the task would never start.
func TestRestoreOfPodImageRefused(t *testing.T) {
	e := newFaultEnv(t)
	dir := t.TempDir()
	if err := writePodImageMark(dir, "pod", "ctr"); err != nil {
		t.Fatal(err)
	}
	req := e.createReq("c1", "")
	req.Checkpoint = dir
	_, err := e.s.Create(e.ctx, req)
	wantKind(t, err, errdefs.IsFailedPrecondition, "FailedPrecondition")
	if !strings.Contains(err.Error(), `the image holds pod sandbox "pod" with containers pod, ctr`) {
		t.Fatalf("restore of a pod image: %v", err)
	}
	if strings.Contains(e.calls(), "restore") {
		t.Fatalf("runsc restore ran:\n%s", e.calls())
	}
	// Nothing registered: the id is free again.
	_, err = e.s.State(e.ctx, &taskAPI.StateRequest{ID: "c1"})
	wantKind(t, err, errdefs.IsNotFound, "NotFound for the refused container")
}
