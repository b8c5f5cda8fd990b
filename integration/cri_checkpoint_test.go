package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// TestCRICheckpoint: kubelet's checkpoint API (CRI CheckpointContainer,
// containerd 2.x) on runsc pods. containerd 1.6's CRI has no
// CheckpointContainer (it answers Unimplemented, checked here); 2.4's
// pauses the task, checkpoints it leaving it running (no options for a
// runtime other than runc), resumes it and archives what the shim wrote
// with containerd's metadata.
func TestCRICheckpoint(t *testing.T) {
	if _, err := exec.LookPath("criu"); err != nil {
		// containerd's CRI refuses any checkpoint without it, for any
		// runtime: the suite needs Debian's criu (make deps, .ci/run).
		if os.Getenv("CI") == "true" {
			t.Fatalf("criu not installed: %v", err)
		}
		t.Skipf("criu not installed (containerd's CRI requires it): %v", err)
	}
	features := checkpointFeatures(t)
	forEachCRIDaemon(t, func(t *testing.T, e *criEnv) {
		if strings.HasPrefix(e.c.Daemon.Version, "1.") {
			p := e.runPod(t, "ckpt", harness.HandlerRunsc, nil)
			id := p.start(t, criContainer{name: "counter", command: counterLoop})
			_, err := e.c.Runtime.CheckpointContainer(criCtx(t), &runtimeapi.CheckpointContainerRequest{
				ContainerId: id,
				Location:    filepath.Join(t.TempDir(), "checkpoint.tar"),
			})
			if status.Code(err) != codes.Unimplemented {
				t.Errorf("CheckpointContainer on containerd %s: %v, want Unimplemented", e.c.Daemon.Version, err)
			}
			p.stopRemove(t, true)
			return
		}
		t.Run("one-container-pod", func(t *testing.T) { e.testCRICheckpointOne(t, features) })
		t.Run("two-container-pod", e.testCRICheckpointTwo)
	})
}

// testCRICheckpointOne: the only container of a runsc pod is checkpointed
// (the whole sandbox: it and the pod's idle pause process) into an archive
// holding runsc's image and containerd's metadata, and keeps running.
// containerd's CRI cannot restore it (see the restore step).
func (e *criEnv) testCRICheckpointOne(t *testing.T, features *runsc.Features) {
	p := e.runPod(t, "ckpt", harness.HandlerRunsc, nil)
	id := p.start(t, criContainer{name: "counter", command: counterLoop})
	before := p.waitCounter(t, "counter", id, 3)
	location := filepath.Join(t.TempDir(), "ckpt.tar")
	ctx, cancel := context.WithTimeout(context.Background(), criWaitTimeout)
	defer cancel()
	start := time.Now()
	_, err := e.c.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: location})
	took := time.Since(start)
	if !features.CheckpointsInPlace() {
		// kubelet's checkpoint leaves the container running: this runsc
		// cannot (the shim says so, and containerd resumed the pause).
		want := features.String() + " cannot checkpoint a sandbox and leave it running"
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), want) {
			t.Fatalf("CheckpointContainer with %s: %v, want Unimplemented %q", features, err, want)
		}
		t.Logf("CheckpointContainer with %s: %v", features, err)
		if _, serr := os.Stat(location); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("archive %s after a refused checkpoint: %v, want none", location, serr)
		}
	} else {
		if err != nil {
			t.Fatalf("CheckpointContainer: %v", err)
		}
		entries := tarEntries(t, location)
		fi, _ := os.Stat(location)
		t.Logf("CheckpointContainer in %s: %s, %d bytes: %v", took.Round(time.Millisecond), location, fi.Size(), entries)
		// containerd's metadata (checkpointctl's names), the shim's
		// runsc image under checkpoint/, the rootfs diff and the log.
		for _, name := range []string{"config.dump", "spec.dump", "status.dump", "status", "rootfs-diff.tar", "container.log",
			"checkpoint/checkpoint.img", "checkpoint/gvisor-pod-sandbox.json"} {
			if _, ok := entries[name]; !ok {
				t.Errorf("archive has no %s: %v", name, entries)
			}
		}
		if entries["checkpoint/checkpoint.img"] <= 0 {
			t.Errorf("runsc's state file checkpoint/checkpoint.img is empty: %v", entries)
		}
		// What containerd recorded about the container.
		cfg := tarFile(t, location, "config.dump")
		for _, want := range []string{`"id":"` + id + `"`, `"runtime":"` + harness.RuntimeName + `"`} {
			if !strings.Contains(cfg, want) {
				t.Errorf("config.dump %s: no %s", cfg, want)
			}
		}
		if got := tarFile(t, location, "checkpoint/gvisor-pod-sandbox.json"); !strings.Contains(got, `"containers":["`+p.id+`","`+id+`"]`) {
			t.Errorf("checkpoint/gvisor-pod-sandbox.json %s: want the pod's containers %s, %s", got, p.id, id)
		}
		e.testCRIRestore(t, p, location)
		e.testPodImageRestoreRefused(t, location)
	}
	// The container kept running (nothing paused), its output flows on.
	if st := p.status(t, id); st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("after CheckpointContainer: state %v, want running", st.GetState())
	}
	p.waitCounter(t, "counter", id, before+5)
	if st, err := e.c.Runtime.PodSandboxStatus(criCtx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id}); err != nil || st.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("pod after CheckpointContainer: %v %v, want ready", st.GetStatus().GetState(), err)
	}
	p.execOK(t, id, "true")
	p.stopRemove(t, true)
}

// testCRIRestore: containerd 2.4's CRI has no restore path (a
// CreateContainer whose image is a checkpoint archive): it resolves the
// archive's path as an image reference, and the shim is never asked.
func (e *criEnv) testCRIRestore(t *testing.T, p *criPod, location string) {
	_, err := e.c.Runtime.CreateContainer(criCtx(t), &runtimeapi.CreateContainerRequest{
		PodSandboxId: p.id,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "restored"},
			Image:    &runtimeapi.ImageSpec{Image: location},
			LogPath:  "restored/0.log",
		},
		SandboxConfig: p.config,
	})
	want := `failed to resolve image "` + location + `"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("CreateContainer from the checkpoint archive: %v, want containerd's %q", err, want)
	}
	t.Logf("CRI restore (CreateContainer, image = the archive): %v", err)
}

// testPodImageRestoreRefused: the archive's runsc image (its checkpoint/
// directory) restored through containerd's client as one container, what
// `ctr` would do with it: runsc would restore the pod's pause container as
// the sandbox's root and the task would never start (measured: Create
// succeeded, the task printed nothing and could not be killed: "container
// not started"). The shim refuses it, with the reason, and leaves nothing.
func (e *criEnv) testPodImageRestoreRefused(t *testing.T, location string) {
	d := e.c.K8s
	te := newTaskEnv(t, d)
	ctx, cancel := context.WithTimeout(d.Context(context.Background()), taskTimeout)
	defer cancel()
	ctx, done, err := d.Client.WithLease(ctx)
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	defer done(context.WithoutCancel(ctx))
	desc := writeArchiveImage(ctx, t, d.Client, location)
	id := te.id("ckpt-pod-r")
	_, err = te.restoreTask(ctx, t, id, func(_ context.Context, _ *client.Client, info *client.TaskInfo) error {
		info.Checkpoint = desc
		return nil
	})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "the image holds pod sandbox") {
		t.Fatalf("restore of the pod's image as one container: %v, want FailedPrecondition: the image holds pod sandbox ...", err)
	}
	t.Logf("restore of the pod's image as one container: %v", err)
	c, err := d.Client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatalf("load container: %v", err)
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		t.Errorf("delete container: %v", err)
	}
	harness.AssertNoLeftovers(t, d, id, te.cfg.Root)
}

// writeArchiveImage stores the checkpoint/ directory of a CRI checkpoint
// archive as a containerd checkpoint blob and returns its descriptor.
func writeArchiveImage(ctx context.Context, t *testing.T, c *client.Client, location string) *types.Descriptor {
	t.Helper()
	f, err := os.Open(location)
	if err != nil {
		t.Fatalf("open archive: %v", err)
	}
	defer f.Close()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(name, "checkpoint/") {
			continue
		}
		h.Name = strings.TrimPrefix(name, "checkpoint/")
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return writeCheckpointBlob(ctx, t, c, "cri-checkpoint-"+runID, b.Bytes())
}

// testCRICheckpointTwo: runsc would save both members of a two-container
// pod; CheckpointContainer of one is refused with the reason, nothing is
// written, and both keep running.
func (e *criEnv) testCRICheckpointTwo(t *testing.T) {
	p := e.runPod(t, "ckpt2", harness.HandlerRunsc, nil)
	a := p.start(t, criContainer{name: "counter", command: counterLoop})
	b := p.start(t, criContainer{name: "other", command: counterLoop})
	na := p.waitCounter(t, "counter", a, 2)
	nb := p.waitCounter(t, "other", b, 2)
	location := filepath.Join(t.TempDir(), "ckpt.tar")
	_, err := e.c.Runtime.CheckpointContainer(criCtx(t), &runtimeapi.CheckpointContainerRequest{ContainerId: a, Location: location})
	want := `container "` + b + `" is a member of the same pod (gVisor sandbox "` + p.id + `"), and runsc can only pause the whole sandbox`
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), want) {
		t.Fatalf("CheckpointContainer of one of two members: %v, want FailedPrecondition %q", err, want)
	}
	t.Logf("CheckpointContainer of one of two members: %v", err)
	if _, serr := os.Stat(location); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("archive %s after a refused checkpoint: %v, want none", location, serr)
	}
	for _, c := range []struct {
		name, id string
		n        int
	}{{"counter", a, na}, {"other", b, nb}} {
		if st := p.status(t, c.id); st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("%s after the refused checkpoint: %v, want running", c.name, st.GetState())
		}
		p.waitCounter(t, c.name, c.id, c.n+3)
	}
	p.stopRemove(t, true)
}

// waitCounter waits until the container's log shows a counter past min and
// returns the last count.
func (p *criPod) waitCounter(t *testing.T, name, id string, min int) int {
	t.Helper()
	deadline := time.Now().Add(criWaitTimeout)
	for {
		out := p.containerLog(t, name, id, "")
		if n := counts(out); len(n) > 0 && n[len(n)-1] > min {
			return n[len(n)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: counter never passed %d; log %q", name, min, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tarEntries lists a tar archive's entries and their sizes.
func tarEntries(t *testing.T, path string) tarIndex {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open archive: %v", err)
	}
	defer f.Close()
	idx := tarIndex{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return idx
		}
		if err != nil {
			t.Fatalf("read archive %s: %v", path, err)
		}
		idx[strings.TrimPrefix(strings.TrimSuffix(h.Name, "/"), "./")] = h.Size
	}
}

// tarIndex maps an archive's entry names to their sizes.
type tarIndex map[string]int64

func (x tarIndex) String() string {
	var s []string
	for n, sz := range x {
		s = append(s, n+"="+strconv.FormatInt(sz, 10))
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// tarFile returns one regular file of a tar archive.
func tarFile(t *testing.T, path, name string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open archive: %v", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("archive %s: no %s: %v", path, name, err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("read %s from %s: %v", name, path, err)
			}
			return string(b)
		}
	}
}
