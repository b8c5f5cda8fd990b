package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rawEnv runs runsc and runc directly (no containerd, no shim) on bundles
// whose rootfs is the busybox image's snapshot, mounted once: the floor the
// shims are compared with. Everything lives under dir (inside the daemon's
// dir, so Daemon.Stop also sweeps whatever a crash left).
type rawEnv struct {
	dir       string
	rootfs    string
	snapKey   string
	snapshots interface {
		Remove(ctx context.Context, key string) error
	}
	runscRoot string
	runcRoot  string
	// specSource is "containerd" (the spec containerd generates for the
	// client path: same mounts, namespaces, capabilities, cgroupsPath) or
	// "cli" (`runc spec` adjusted).
	specSource string
	runsc      string
	runc       string
	flags      []string // runsc global flags beyond --root/--log
	seq        int
}

// newRawEnv prepares a writable snapshot of img's rootfs (as the client path
// gets one) and mounts it at <dir>/rootfs.
func newRawEnv(ctx context.Context, d *harness.Daemon, img client.Image, dir, specSource string) (*rawEnv, error) {
	e := &rawEnv{
		dir:        dir,
		rootfs:     filepath.Join(dir, "rootfs"),
		runscRoot:  filepath.Join(dir, "runsc-root"),
		runcRoot:   filepath.Join(dir, "runc-root"),
		specSource: specSource,
		runsc:      harness.RunscBinary,
		runc:       "runc",
		flags:      []string{"--network=none"},
	}
	if p, err := exec.LookPath("runc"); err == nil {
		e.runc = p
	}
	for _, p := range []string{e.rootfs, e.runscRoot, e.runcRoot} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return nil, fmt.Errorf("image rootfs: %w", err)
	}
	sn := d.Client.SnapshotService(harness.DefaultSnapshotter)
	e.snapKey = fmt.Sprintf("bench-raw-rootfs-%d", time.Now().UnixNano())
	// The gc.root label keeps containerd's garbage collector off this
	// snapshot, which no container references.
	mounts, err := sn.Prepare(ctx, e.snapKey, identity.ChainID(diffIDs).String(),
		snapshots.WithLabels(map[string]string{"containerd.io/gc.root": time.Now().UTC().Format(time.RFC3339)}))
	if err != nil {
		return nil, fmt.Errorf("prepare raw rootfs snapshot: %w", err)
	}
	e.snapshots = sn
	if err := mount.All(mounts, e.rootfs); err != nil {
		_ = sn.Remove(ctx, e.snapKey)
		e.snapshots = nil
		return nil, fmt.Errorf("mount raw rootfs: %w", err)
	}
	return e, nil
}

// close removes every raw container left under the private roots, unmounts
// the rootfs and removes the snapshot.
func (e *rawEnv) close(ctx context.Context) error {
	var errs []error
	for _, rt := range []struct{ bin, root string }{{e.runsc, e.runscRoot}, {e.runc, e.runcRoot}} {
		for _, id := range listIDs(rt.bin, rt.root) {
			if out, err := exec.Command(rt.bin, "--root="+rt.root, "delete", "--force", id).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("%s delete --force %s: %v: %s", rt.bin, id, err, bytes.TrimSpace(out)))
			}
		}
	}
	if err := mount.UnmountAll(e.rootfs, 0); err != nil {
		errs = append(errs, fmt.Errorf("unmount %s: %w", e.rootfs, err))
	}
	if e.snapshots != nil {
		if err := e.snapshots.Remove(ctx, e.snapKey); err != nil {
			errs = append(errs, fmt.Errorf("remove snapshot %s: %w", e.snapKey, err))
		}
	}
	if err := os.RemoveAll(e.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// listIDs returns the container ids `<bin> --root=<root> list` knows.
func listIDs(bin, root string) []string {
	out, err := exec.Command(bin, "--root="+root, "list", "--format=json").Output()
	if err != nil {
		return nil
	}
	var l []struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(out, &l) != nil {
		return nil
	}
	var ids []string
	for _, c := range l {
		ids = append(ids, c.ID)
	}
	return ids
}

// bundle writes <dir>/<name>/config.json running args on the shared rootfs
// and returns the bundle dir.
func (e *rawEnv) bundle(ctx context.Context, d *harness.Daemon, img client.Image, name string, args ...string) (string, error) {
	b := filepath.Join(e.dir, name)
	if err := os.MkdirAll(b, 0o755); err != nil {
		return "", err
	}
	var spec *specs.Spec
	switch e.specSource {
	case "containerd":
		// The snapshot lets WithImageConfig resolve the image's user in
		// the rootfs's /etc/passwd, as it does for the client path.
		s, err := oci.GenerateSpec(d.Context(ctx), d.Client,
			&containers.Container{ID: name, Snapshotter: harness.DefaultSnapshotter, SnapshotKey: e.snapKey},
			oci.WithImageConfig(img), oci.WithProcessArgs(args...))
		if err != nil {
			return "", fmt.Errorf("generate spec: %w", err)
		}
		spec = s
		// Own cgroup per bundle, as containerd gives each container one.
		spec.Linux.CgroupsPath = "/bench-raw/" + name
	case "cli":
		if out, err := exec.Command(e.runc, "spec", "--bundle", b).CombinedOutput(); err != nil {
			return "", fmt.Errorf("runc spec: %v: %s", err, out)
		}
		raw, err := os.ReadFile(filepath.Join(b, "config.json"))
		if err != nil {
			return "", err
		}
		spec = &specs.Spec{}
		if err := json.Unmarshal(raw, spec); err != nil {
			return "", err
		}
		spec.Process.Terminal = false
		spec.Process.Args = args
	default:
		return "", fmt.Errorf("unknown -raw-spec %q (want containerd or cli)", e.specSource)
	}
	spec.Root = &specs.Root{Path: e.rootfs}
	raw, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return "", err
	}
	return b, os.WriteFile(filepath.Join(b, "config.json"), raw, 0o644)
}

func (e *rawEnv) nextID(prefix string) string {
	e.seq++
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), e.seq)
}

// runscArgs is the argv for a raw runsc call with the shim's global flags:
// --root, --log=<bundle>/log.json --log-format=json, [runsc_config].
func (e *rawEnv) runscArgs(bundle string, sub ...string) []string {
	args := []string{"--root=" + e.runscRoot, "--log=" + filepath.Join(bundle, "log.json"), "--log-format=json"}
	args = append(args, e.flags...)
	return append(args, sub...)
}

// runcArgs mirrors what containerd's runc shim passes to runc.
func (e *rawEnv) runcArgs(bundle string, sub ...string) []string {
	args := []string{"--root=" + e.runcRoot, "--log=" + filepath.Join(bundle, "log.json"), "--log-format=json"}
	return append(args, sub...)
}

// runCmd runs argv with stdin and stdout on /dev/null and returns its wall
// time. stderr goes to a file, not a pipe: a detached runsc or runc leaves
// children holding it, and waiting for a pipe's EOF would block on them.
func runCmd(ctx context.Context, bin string, args []string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	errFile, err := os.CreateTemp("", "bench-stderr")
	if err != nil {
		return 0, err
	}
	defer os.Remove(errFile.Name())
	defer errFile.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = errFile
	start := time.Now()
	err = cmd.Run()
	el := time.Since(start)
	if err != nil {
		msg, _ := os.ReadFile(errFile.Name())
		return el, fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, bytes.TrimSpace(msg))
	}
	return el, nil
}

// runscRun times `runsc run` of the bundle (create, start, wait, delete in
// one process).
func (e *rawEnv) runscRun(ctx context.Context, bundle string) (time.Duration, error) {
	return runCmd(ctx, e.runsc, e.runscArgs(bundle, "run", "--bundle", bundle, e.nextID("rawrunsc")))
}

// runcRun times `runc run` of the bundle.
func (e *rawEnv) runcRun(ctx context.Context, bundle string) (time.Duration, error) {
	return runCmd(ctx, e.runc, e.runcArgs(bundle, "run", "--bundle", bundle, e.nextID("rawrunc")))
}
