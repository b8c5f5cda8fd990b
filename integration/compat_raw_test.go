package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// The raw compatibility tests run the installed runsc (harness.Runsc())
// directly on OCI bundles, without containerd or the shim: what they show
// is runsc's own behaviour for a spec, per runsc generation. Each asserts
// what the runsc under test does today, so it fails (and the table in
// docs/compatibility.md must change) the day runsc changes.

// runscGen is a runsc generation the project supports.
type runscGen string

const (
	// gen2022 is Debian bookworm's runsc 0.0~20221219.0 (and any runsc
	// released before 2023).
	gen2022 runscGen = "20221219"
	// genCurrent is a current runsc (built from gVisor's Go module,
	// 0.0.0-20260905035102-160fafc42237 in CI).
	genCurrent runscGen = "current"
)

var releaseDate = regexp.MustCompile(`(20\d{6})`)

// rawRunsc runs one runsc binary on private bundles.
type rawRunsc struct {
	bin      string
	features *runsc.Features
	gen      runscGen
	root     string
	dir      string
}

var (
	rawFeaturesOnce sync.Once
	rawFeatures     *runsc.Features
	rawFeaturesErr  error
)

// newRawRunsc prepares the runsc under test with a private state root in
// a temp dir of t; every container it runs is force-deleted at t's end.
func newRawRunsc(t *testing.T) *rawRunsc {
	t.Helper()
	harness.RequireRoot(t)
	bin := harness.RequireBinary(t, harness.Runsc())
	harness.RequireBinary(t, harness.BusyboxBinary)
	rawFeaturesOnce.Do(func() {
		rawFeatures, rawFeaturesErr = runsc.Probe(context.Background(), bin, nil)
	})
	if rawFeaturesErr != nil {
		t.Fatalf("probe %s: %v", bin, rawFeaturesErr)
	}
	r := &rawRunsc{bin: bin, features: rawFeatures, gen: genCurrent, dir: t.TempDir()}
	if m := releaseDate.FindString(rawFeatures.Version); m != "" && m < "20230101" {
		r.gen = gen2022
	}
	r.root = filepath.Join(r.dir, "runsc-root")
	if err := os.MkdirAll(r.root, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range runscIDs(r.bin, r.root) {
			if out, err := exec.Command(r.bin, "--root="+r.root, "delete", "--force", id).CombinedOutput(); err != nil {
				t.Errorf("runsc delete --force %s: %v: %s", id, err, out)
			}
		}
		// current runsc pins an empty network namespace in its root.
		_ = exec.Command("umount", filepath.Join(r.root, harness.NullNetNS)).Run()
	})
	t.Logf("runsc under test: %s, generation %s", rawFeatures, r.gen)
	return r
}

func runscIDs(bin, root string) []string {
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

// rawBundle is an OCI bundle on a fresh busybox rootfs directory.
type rawBundle struct {
	r      *rawRunsc
	id     string
	dir    string
	rootfs string
	spec   *specs.Spec
	// flags are runsc global flags besides --root and --log.
	flags []string
}

var rawSeq struct {
	sync.Mutex
	n int
}

// bundle prepares a bundle running args, with the spec containerd
// generates by default (its mounts, masked and read-only paths,
// capabilities and namespaces) and a cgroup of its own, network "none".
func (r *rawRunsc) bundle(t *testing.T, name string, args ...string) *rawBundle {
	t.Helper()
	rawSeq.Lock()
	rawSeq.n++
	id := fmt.Sprintf("compat-%s-%s-%d", name, runID, rawSeq.n)
	rawSeq.Unlock()
	b := &rawBundle{r: r, id: id, dir: filepath.Join(r.dir, id), flags: []string{"--network=none"}}
	b.rootfs = filepath.Join(b.dir, "rootfs")
	if err := buildBusyboxRootfs(b.rootfs); err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "compat")
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: id}, oci.WithProcessArgs(args...))
	if err != nil {
		t.Fatalf("generate spec: %v", err)
	}
	spec.Root = &specs.Root{Path: b.rootfs}
	spec.Process.Terminal = false
	spec.Process.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	spec.Linux.CgroupsPath = "/runsc-compat/" + id
	b.spec = spec
	t.Cleanup(func() {
		// runsc removes the container's cgroups; the shared parent is
		// removed once no other test uses it.
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/runsc-compat")
		for _, d := range dirs {
			_ = os.Remove(filepath.Join(d, id))
			_ = os.Remove(d)
		}
	})
	return b
}

// buildBusyboxRootfs makes dir a minimal busybox root: /bin/busybox, a
// symlink per applet, /etc/passwd and /etc/group, the usual directories.
func buildBusyboxRootfs(dir string) error {
	for _, d := range []string{"bin", "dev", "etc", "proc", "root", "sys", "tmp", "usr/bin", "var/tmp", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	bin, err := os.ReadFile(harness.BusyboxBinary)
	if err != nil {
		return fmt.Errorf("read busybox: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bin, 0o755); err != nil {
		return err
	}
	out, err := exec.Command(harness.BusyboxBinary, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			return err
		}
	}
	for name, data := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n",
		"etc/group":  "root:x:0:\nuser:x:1000:\n",
		"etc/hosts":  "127.0.0.1\tlocalhost\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
}

// writeFile writes a file (and its directories) into the rootfs.
func (b *rawBundle) writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(b.rootfs, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func (b *rawBundle) save(t *testing.T) {
	t.Helper()
	raw, err := json.MarshalIndent(b.spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (b *rawBundle) args(sub ...string) []string {
	a := []string{"--root=" + b.r.root, "--log=" + filepath.Join(b.dir, "log.json"), "--log-format=json"}
	a = append(a, b.flags...)
	return append(a, sub...)
}

// rawResult is what a raw run printed and how it ended.
type rawResult struct {
	out  string // stdout and stderr of the container (and runsc)
	exit int    // runsc's exit code: the container's exit status
	err  error  // set if runsc could not be run or timed out
}

func (res rawResult) String() string {
	return fmt.Sprintf("exit %d, output %q", res.exit, res.out)
}

// run runs the bundle to completion (`runsc run`), at most timeout.
func (b *rawBundle) run(t *testing.T, timeout time.Duration) rawResult {
	t.Helper()
	b.save(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// One pipe for both: the Sentry writes a host file at its own offsets.
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, b.r.bin, b.args("run", "--bundle", b.dir, b.id)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	res := rawResult{out: out.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.err = fmt.Errorf("runsc run %s: no exit within %s", b.id, timeout)
	case errors.As(runErr, &ee):
		res.exit = ee.ExitCode()
	case runErr != nil:
		res.err = fmt.Errorf("runsc run %s: %w", b.id, runErr)
	}
	t.Logf("%s: %s", strings.Join(b.spec.Process.Args, " "), res)
	return res
}

// mustRun is run failing t if runsc could not run the bundle.
func (b *rawBundle) mustRun(t *testing.T) rawResult {
	t.Helper()
	res := b.run(t, 60*time.Second)
	if res.err != nil {
		t.Fatalf("%v; log: %s", res.err, b.lastLog())
	}
	return res
}

// start creates and starts the bundle detached (`runsc create`, `runsc
// start`), its output into <bundle>/output, and returns the sandbox pid.
func (b *rawBundle) start(t *testing.T) int {
	t.Helper()
	b.save(t)
	f, err := os.Create(filepath.Join(b.dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pidFile := filepath.Join(b.dir, "pid")
	for _, sub := range [][]string{{"create", "--bundle", b.dir, "--pid-file", pidFile, b.id}, {"start", b.id}} {
		cmd := exec.Command(b.r.bin, b.args(sub...)...)
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Run(); err != nil {
			out, _ := os.ReadFile(filepath.Join(b.dir, "output"))
			t.Fatalf("runsc %s %s: %v: %s; log: %s", sub[0], b.id, err, out, b.lastLog())
		}
	}
	st := b.state(t)
	return st.Pid
}

type rawState struct {
	Status string `json:"status"`
	Pid    int    `json:"pid"`
}

func (b *rawBundle) state(t *testing.T) rawState {
	t.Helper()
	out, err := exec.Command(b.r.bin, b.args("state", b.id)...).Output()
	if err != nil {
		t.Fatalf("runsc state %s: %v; log: %s", b.id, err, b.lastLog())
	}
	var st rawState
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("runsc state %s: %v: %s", b.id, err, out)
	}
	return st
}

// exec runs argv in the started container and returns its output and exit.
func (b *rawBundle) exec(t *testing.T, argv ...string) rawResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, b.r.bin, b.args(append([]string{"exec", b.id}, argv...)...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	res := rawResult{out: out.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.err = fmt.Errorf("runsc exec %s: no exit within 30s", b.id)
	case errors.As(err, &ee):
		res.exit = ee.ExitCode()
	case err != nil:
		res.err = fmt.Errorf("runsc exec %s: %w", b.id, err)
	}
	t.Logf("exec %s: %s", strings.Join(argv, " "), res)
	return res
}

// lastLog is runsc's last error messages for the bundle (log.json).
func (b *rawBundle) lastLog() string {
	raw, _ := os.ReadFile(filepath.Join(b.dir, "log.json"))
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}

// want asserts the behaviour of the runsc generation under test: what is
// one of the generation's expectations (by gen), got the observation.
func (r *rawRunsc) want(t *testing.T, what string, got any, byGen map[runscGen]any) {
	t.Helper()
	want, ok := byGen[r.gen]
	if !ok {
		t.Fatalf("%s: no expectation for runsc generation %s", what, r.gen)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("runsc %s (%s): %s = %v, want %v (the measured behaviour of this generation changed: update docs/compatibility.md)",
			r.gen, r.features.Version, what, got, want)
	} else {
		t.Logf("runsc %s: %s = %v (as measured)", r.gen, what, got)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}

// killTERM sends SIGTERM to the container's init (`runsc kill <id> TERM`).
func (b *rawBundle) killTERM(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(b.r.bin, b.args("kill", b.id, "TERM")...).CombinedOutput(); err != nil {
		t.Fatalf("runsc kill %s TERM: %v: %s; log: %s", b.id, err, out, b.lastLog())
	}
}
