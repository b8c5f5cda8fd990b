package integration

// The node installer (cmd/runsc-node) against real containerd 1.6.20 and
// 2.4.2 and real runsc: for each kind of config a node has, install into a
// private daemon, restart it, run CRI pods with the runsc handler and the
// default runc runtime, compare the effective configs before and after,
// install again (no change, and a verified container in gVisor), doctor,
// uninstall (original bytes back).
//
// The installer runs with --host-root / (this host is the node) and with
// its destinations (--shim-dir, --runsc-config, --state-dir) and the config
// in a temp dir W. The daemon runs with W/etc/containerd/daemon.toml: the
// case's config with containerd's host-wide paths (state, sockets, NRI,
// opt) moved into W and restrict_oom_score_adj = true (this host lacks
// CAP_SYS_RESOURCE), made again from the installed file before each start
// (see privatize); root, state and the gRPC socket are private through
// containerd's flags.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/pelletier/go-toml/v2"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/node"
)

var (
	runscNodeOnce sync.Once
	runscNodeBin  string
	runscNodeErr  error
)

func runscNode(t *testing.T) string {
	t.Helper()
	runscNodeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runsc-node-bin")
		if err != nil {
			runscNodeErr = err
			return
		}
		runscNodeBin, runscNodeErr = harness.BuildRunscNode(dir, harness.TLogf(t))
	})
	if runscNodeErr != nil {
		t.Fatalf("build runsc-node: %v", runscNodeErr)
	}
	return runscNodeBin
}

// nodeCase is a node's containerd config: files relative to
// W/etc/containerd ("config.toml" absent: no file).
type nodeCase struct {
	name  string
	files map[string]string
	// owner is the file install must edit (relative to W/etc/containerd).
	owner string
}

func testdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "node", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func nodeCases(t *testing.T, version string) []nodeCase {
	def := "default-1.6.20.toml"
	if version == "2.4" {
		def = "default-2.4.2.toml"
	}
	return []nodeCase{
		{name: "debian-default", files: map[string]string{"config.toml": testdata(t, "debian-bookworm-1.6.20.toml")}, owner: "config.toml"},
		{name: "config-default", files: map[string]string{"config.toml": testdata(t, def)}, owner: "config.toml"},
		{name: "custom-systemd-cgroup", files: map[string]string{"config.toml": testdata(t, "custom-v2.toml")}, owner: "config.toml"},
		{name: "imports", files: map[string]string{
			"config.toml":        testdata(t, "imports/config.toml"),
			"conf.d/10-cri.toml": testdata(t, "imports/conf.d/10-cri.toml"),
		}, owner: "conf.d/10-cri.toml"},
		{name: "no-file", files: map[string]string{}, owner: "config.toml"},
	}
}

var tomlVersion = regexp.MustCompile(`(?m)^version = (\d+)`)

// privatize is the config the private daemon runs with: text with the
// host-wide runtime paths moved into w and restrict_oom_score_adj = true.
func privatize(text, w, version string, hasImports bool) string {
	for _, r := range [][2]string{
		{"/run/containerd/containerd.sock.ttrpc", w + "/c.ttrpc"},
		{"/run/containerd/containerd.sock", w + "/c.grpc"},
		{"/run/containerd", w + "/run"},
		{"/var/lib/containerd", w + "/root"},
		{"/var/run/nri", w + "/nri"},
		{"/opt/containerd", w + "/opt"},
	} {
		text = strings.ReplaceAll(text, r[0], r[1])
	}
	v := "2"
	if m := tomlVersion.FindStringSubmatch(text); m != nil {
		v = m[1]
	} else if strings.TrimSpace(text) == "" {
		v = map[string]string{"1.6": "2", "2.4": "3"}[version]
		text = "version = " + v + "\n"
	}
	cri := `[plugins."io.containerd.grpc.v1.cri"]`
	if v != "2" {
		cri = `[plugins."io.containerd.cri.v1.runtime"]`
	}
	switch {
	case strings.Contains(text, "restrict_oom_score_adj = false"):
		text = strings.ReplaceAll(text, "restrict_oom_score_adj = false", "restrict_oom_score_adj = true")
	case strings.Contains(text, "restrict_oom_score_adj") || hasImports:
	case strings.Contains(text, cri+"\n"):
		text = strings.Replace(text, cri+"\n", cri+"\n    restrict_oom_score_adj = true\n", 1)
	default:
		text += "\n" + cri + "\n  restrict_oom_score_adj = true\n"
	}
	if version == "2.4" && !strings.Contains(text, "io.containerd.nri.v1.nri") {
		text += "\n[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = true\n"
	}
	return text
}

type installEnv struct {
	t       *testing.T
	version string
	c       nodeCase
	w       string // W
	etc     string // W/etc/containerd
	config  string // the node's config (host path, = real path)
	daemon  string // the daemon's config
	bin     string // containerd
	shimSrc string
	d       *harness.Daemon
	cri     runtimeapi.RuntimeServiceClient
	conn    *grpc.ClientConn
	// hostRoot, when set, is the --host-root of the DaemonSet-like run
	// (TestInstallerHostRoot); e.config is then under it.
	hostRoot string
}

func (e *installEnv) node(args ...string) (string, error) {
	e.t.Helper()
	sub := args[0]
	full := []string{sub, "--host-root", "/"}
	if sub != "doctor" {
		// doctor finds the running daemon's --config itself.
		full = append(full, "--containerd-config", e.config)
	}
	full = append(append(full,
		"--containerd-bin", e.bin,
		"--shim-src", e.shimSrc,
		"--runsc", harness.Runsc(),
		"--shim-dir", filepath.Join(e.w, "bin"),
		"--runsc-config", filepath.Join(e.etc, "runsc.toml"),
		"--state-dir", filepath.Join(e.w, "state"),
		"--verify-image", harness.BusyboxRef,
	), args[1:]...)
	if e.d != nil {
		full = append(full, "--containerd-address", e.d.Address)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, runscNode(e.t), full...).CombinedOutput()
	e.t.Logf("runsc-node %s (%s, err %v):\n%s", strings.Join(full, " "), time.Since(start).Round(time.Millisecond), err, out)
	return string(out), err
}

func (e *installEnv) writeDaemonConfig() {
	e.t.Helper()
	b, err := os.ReadFile(e.config)
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	_, hasImports := e.c.files["conf.d/10-cri.toml"]
	text := privatize(string(b), e.w, e.version, hasImports)
	if e.hostRoot != "" {
		// The daemon plays the host, whose / is e.hostRoot.
		text = strings.ReplaceAll(text, `"`+node.DefaultRunscConfig+`"`, `"`+e.hostRoot+node.DefaultRunscConfig+`"`)
	}
	if err := os.WriteFile(e.daemon, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *installEnv) dump() map[string]any {
	e.t.Helper()
	out, err := exec.Command(e.bin, "--config", e.daemon, "config", "dump").Output()
	if err != nil {
		e.t.Fatalf("config dump: %v", err)
	}
	doc := map[string]any{}
	if err := toml.Unmarshal(out, &doc); err != nil {
		e.t.Fatalf("parse config dump: %v", err)
	}
	return doc
}

func (e *installEnv) files() map[string][]byte {
	e.t.Helper()
	out := map[string][]byte{}
	_ = filepath.Walk(e.etc, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasSuffix(p, "daemon.toml") {
			b, _ := os.ReadFile(p)
			out[strings.TrimPrefix(p, e.etc+"/")] = b
		}
		return nil
	})
	return out
}

func lookupPath(doc map[string]any, keys ...string) (any, bool) {
	var cur any = doc
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// diffDocs lists the keys whose values differ between two parsed dumps.
// sameSet reports whether a and b are lists of the same strings in any
// order.
func sameSet(a, b any) bool {
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if !aok || !bok || len(as) != len(bs) {
		return false
	}
	strs := func(xs []any) []string {
		out := make([]string, len(xs))
		for i, x := range xs {
			out[i] = fmt.Sprint(x)
		}
		sort.Strings(out)
		return out
	}
	return reflect.DeepEqual(strs(as), strs(bs))
}

func diffDocs(prefix string, a, b map[string]any, out *[]string) {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		av, aok := a[k]
		bv, bok := b[k]
		am, aIsMap := av.(map[string]any)
		bm, bIsMap := bv.(map[string]any)
		switch {
		case aIsMap && bIsMap:
			diffDocs(prefix+k+".", am, bm, out)
		case !aok:
			*out = append(*out, fmt.Sprintf("+%s%s = %v", prefix, k, bv))
		case !bok:
			*out = append(*out, fmt.Sprintf("-%s%s = %v", prefix, k, av))
		case prefix == "" && k == "imports" && sameSet(av, bv):
			// The files containerd read: containerd 1.6's config dump
			// lists them in no fixed order (seen in CI: [a b] -> [b a]).
		case !reflect.DeepEqual(av, bv):
			*out = append(*out, fmt.Sprintf("~%s%s: %v -> %v", prefix, k, av, bv))
		}
	}
	sort.Strings(*out)
}

func (e *installEnv) start() {
	e.t.Helper()
	e.writeDaemonConfig()
	e.d = harness.StartDaemonT(e.t, harness.DaemonOptions{
		Version:    e.version,
		ConfigFile: e.daemon,
		ShimDirs:   []string{filepath.Join(e.w, "bin")},
		Namespace:  harness.CRINamespace,
	})
	var err error
	e.conn, err = grpc.NewClient("unix://"+e.d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.conn.Close() })
	e.cri = runtimeapi.NewRuntimeServiceClient(e.conn)
}

func (e *installEnv) restart() {
	e.t.Helper()
	e.writeDaemonConfig()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.d.Restart(ctx, 30*time.Second); err != nil {
		e.t.Fatalf("restart containerd: %v", err)
	}
}

// waitRuntimeReady waits for the CRI's RuntimeReady condition (pods here
// use the host network: NetworkReady does not matter).
func (e *installEnv) waitRuntimeReady() {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := e.cri.Status(ctx, &runtimeapi.StatusRequest{})
		cancel()
		if err == nil {
			for _, c := range st.GetStatus().GetConditions() {
				if c.Type == runtimeapi.RuntimeReady && c.Status {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("CRI runtime not ready: %v %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *installEnv) importImages(sandboxImage string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), harness.CRINamespace), 2*time.Minute)
	defer cancel()
	pause, err := harness.BuildPause(filepath.Join(e.w, "pause"))
	if err != nil {
		e.t.Fatal(err)
	}
	archive, err := harness.PauseArchive(pause)
	if err != nil {
		e.t.Fatal(err)
	}
	// PauseArchive names the image PauseRef; tag it as the daemon's sandbox image too.
	if _, err := harness.ImportArchive(ctx, e.d.Client, archive, harness.PauseRef, harness.CRIImageLabels, harness.TLogf(e.t)); err != nil {
		e.t.Fatal(err)
	}
	img, err := e.d.Client.ImageService().Get(ctx, harness.PauseRef)
	if err != nil {
		e.t.Fatal(err)
	}
	img.Name = sandboxImage
	if _, err := e.d.Client.ImageService().Create(ctx, img); err != nil && !strings.Contains(err.Error(), "already exists") {
		e.t.Fatalf("tag pause as %s: %v", sandboxImage, err)
	}
	bb, err := harness.BusyboxArchive(harness.BusyboxBinary, harness.BusyboxRef)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := harness.ImportArchive(ctx, e.d.Client, bb, harness.BusyboxRef, harness.CRIImageLabels, harness.TLogf(e.t)); err != nil {
		e.t.Fatal(err)
	}
}

// podKernel runs a host-network pod with the handler, a busybox container
// in it, and returns `uname -r` from inside; the pod is removed.
func (e *installEnv) podKernel(name, handler string) string {
	e.t.Helper()
	k, err := e.tryPodKernel(name, handler)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

var hexID = regexp.MustCompile(`[0-9a-f]{64}`)

// tryPodKernel is podKernel returning the CRI's error.
func (e *installEnv) tryPodKernel(name, handler string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name = fmt.Sprintf("%s-%s-%s", name, strings.ReplaceAll(e.version, ".", ""), runID)
	logDir := filepath.Join(e.w, "pods", name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "uid-" + name},
		LogDirectory: logDir,
		Linux:        &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: ns}},
	}
	pod, err := e.cri.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		return "", fmt.Errorf("RunPodSandbox (handler %q): %w", handler, err)
	}
	defer func() {
		if _, err := e.cri.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			e.t.Errorf("StopPodSandbox: %v", err)
		}
		if _, err := e.cri.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			e.t.Errorf("RemovePodSandbox: %v", err)
		}
	}()
	c, err := e.cri.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: pod.PodSandboxId, SandboxConfig: cfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
			Image:    &runtimeapi.ImageSpec{Image: harness.BusyboxRef},
			Command:  []string{"sleep", "600"},
			LogPath:  "app.log",
			Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: ns}},
		},
	})
	if err != nil {
		return "", fmt.Errorf("CreateContainer (handler %q): %w", handler, err)
	}
	if _, err := e.cri.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return "", fmt.Errorf("StartContainer (handler %q): %w", handler, err)
	}
	r, err := e.cri.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: c.ContainerId, Cmd: []string{"uname", "-r"}, Timeout: 10})
	if err != nil || r.ExitCode != 0 {
		return "", fmt.Errorf("ExecSync uname -r (handler %q): %v %v", handler, r, err)
	}
	return strings.TrimSpace(string(r.Stdout)), nil
}

func sandboxImage(doc map[string]any) string {
	for _, keys := range [][]string{
		{"plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"},
		{"plugins", "io.containerd.grpc.v1.cri", "sandbox_image"},
	} {
		if v, ok := lookupPath(doc, keys...); ok {
			if s, ok := v.(string); ok && s != "" {
				return s
			}
		}
	}
	return ""
}

func requireInstallerPrereqs(t *testing.T, version string) {
	t.Helper()
	harness.RequireRoot(t)
	bin, _, err := harness.DaemonBinaries(version)
	if err != nil {
		t.Fatal(err)
	}
	harness.RequireBinary(t, bin)
	harness.RequireBinary(t, harness.Runsc())
	harness.RequireBinary(t, harness.BusyboxBinary)
	harness.RequireBinary(t, "gcc")
}

func newInstallEnv(t *testing.T, version string, c nodeCase) *installEnv {
	t.Helper()
	w, err := os.MkdirTemp("/tmp", "rn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Only after the daemon stopped (cleanups run last-in first-out).
		if os.Getenv("HARNESS_KEEP") == "" {
			os.RemoveAll(w)
		}
	})
	bin, _, _ := harness.DaemonBinaries(version)
	e := &installEnv{t: t, version: version, c: c, w: w, etc: filepath.Join(w, "etc/containerd"), bin: bin,
		shimSrc: filepath.Join(shim(t), harness.ShimBinaryName)}
	e.config = filepath.Join(e.etc, "config.toml")
	e.daemon = filepath.Join(e.etc, "daemon.toml")
	for rel, content := range c.files {
		p := filepath.Join(e.etc, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		// The node's own files: its conf.d is W's.
		content = strings.ReplaceAll(content, "/etc/containerd/conf.d", filepath.Join(e.etc, "conf.d"))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(e.etc, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestInstaller(t *testing.T) {
	for _, v := range harness.Versions {
		for _, c := range nodeCases(t, v) {
			t.Run("containerd-"+v+"/"+c.name, func(t *testing.T) {
				requireInstallerPrereqs(t, v)
				e := newInstallEnv(t, v, c)
				before := e.files()
				e.start()
				dumpBefore := e.dump()
				e.importImages(sandboxImage(dumpBefore))
				e.waitRuntimeReady()
				// The default runtime before the install: it must do the
				// same after. (A runc with SystemdCgroup = true cannot run
				// pods on this host, where PID 1 is not systemd: then it
				// must fail the same way.)
				runcBefore, runcErrBefore := e.tryPodKernel("runc", "")

				out, err := e.node("install", "--no-restart")
				if err != nil {
					t.Fatalf("install: %v", err)
				}
				if !strings.Contains(out, "not restarting containerd (--no-restart)") {
					t.Errorf("install did not say that containerd must be restarted:\n%s", out)
				}
				installed := e.files()
				owner := filepath.Join(e.etc, c.owner)
				for rel, b := range before {
					if rel == c.owner {
						if !strings.HasPrefix(string(installed[rel]), string(b)) || len(installed[rel]) == len(b) {
							t.Errorf("%s: the runtime was not appended to the original bytes:\n%s", rel, installed[rel])
						}
					} else if string(installed[rel]) != string(b) {
						t.Errorf("%s changed, only %s should", rel, c.owner)
					}
				}
				if _, ok := installed[c.owner]; !ok {
					t.Fatalf("install did not write %s", owner)
				}
				runscTOML := string(installed["runsc.toml"])
				if !strings.Contains(runscTOML, "binary_name = \""+harness.Runsc()+"\"") || !strings.Contains(runscTOML, "network = ") {
					t.Errorf("runsc.toml:\n%s", runscTOML)
				}
				if _, err := os.Stat(filepath.Join(e.w, "bin", harness.ShimBinaryName)); err != nil {
					t.Errorf("shim not installed: %v", err)
				}

				// Not restarted yet: doctor says so.
				out, err = e.node("doctor")
				if err == nil || !strings.Contains(out, "but the running containerd has no \"runsc\" runtime") {
					t.Errorf("doctor before the restart: %v\n%s", err, out)
				}

				e.restart()
				dumpAfter := e.dump()
				var diffs []string
				diffDocs("", dumpBefore, dumpAfter, &diffs)
				for _, d := range diffs {
					if !strings.HasPrefix(d, "+plugins.io.containerd.grpc.v1.cri.containerd.runtimes.runsc.") &&
						!strings.HasPrefix(d, "+plugins.io.containerd.cri.v1.runtime.containerd.runtimes.runsc.") &&
						!strings.HasPrefix(d, "+plugins.io.containerd.grpc.v1.cri.containerd.runtimes.runsc ") &&
						!strings.HasPrefix(d, "+plugins.io.containerd.cri.v1.runtime.containerd.runtimes.runsc ") {
						t.Errorf("effective config changed outside the runsc runtime: %s", d)
					}
				}
				if len(diffs) == 0 {
					t.Errorf("the runsc runtime is not in the effective config")
				}
				e.waitRuntimeReady()
				if k := e.podKernel("gvisor", "runsc"); !harness.IsGVisorKernel(k) {
					t.Errorf("pod with handler runsc: uname -r %q, not gVisor", k)
				}
				var host unix.Utsname
				_ = unix.Uname(&host)
				runcAfter, runcErrAfter := e.tryPodKernel("runc", "")
				switch {
				case runcErrBefore == nil && (runcErrAfter != nil || runcAfter != unix.ByteSliceToString(host.Release[:])):
					t.Errorf("pod with the default runtime: uname -r %q, %v; want the host's %q as before the install", runcAfter, runcErrAfter, runcBefore)
				case runcErrBefore != nil && (runcErrAfter == nil || hexID.ReplaceAllString(runcErrAfter.Error(), "<id>") != hexID.ReplaceAllString(runcErrBefore.Error(), "<id>")):
					t.Errorf("pod with the default runtime failed before the install (%v) but not the same way after: %v", runcErrBefore, runcErrAfter)
				case runcErrBefore != nil:
					t.Logf("the default runtime cannot run pods on this host, before and after the install alike: %v", runcErrBefore)
				}

				out, err = e.node("install")
				if err != nil {
					t.Fatalf("second install: %v", err)
				}
				if !strings.Contains(out, "already installed") || !strings.Contains(out, "verified: a container of "+harness.BusyboxRef) {
					t.Errorf("second install did not say already installed and verified:\n%s", out)
				}
				if again := e.files(); !reflect.DeepEqual(again, installed) {
					t.Errorf("second install changed files")
				}

				out, err = e.node("doctor")
				if err != nil || strings.Contains(out, "FAIL") || !strings.Contains(out, "config "+e.daemon) {
					t.Errorf("doctor on an installed node: %v\n%s", err, out)
				}
				if c.name == "debian-default" {
					e.brokenNodes()
				}

				if _, err := e.node("uninstall"); err != nil {
					t.Fatalf("uninstall: %v", err)
				}
				after := e.files()
				if !reflect.DeepEqual(after, before) {
					var names []string
					for k := range after {
						names = append(names, k)
					}
					t.Errorf("after uninstall the files differ from before: have %v", names)
				}
				if _, err := os.Stat(filepath.Join(e.w, "bin", harness.ShimBinaryName)); !os.IsNotExist(err) {
					t.Errorf("uninstall left the shim: %v", err)
				}
				if _, err := os.Stat(filepath.Join(e.w, "state")); !os.IsNotExist(err) {
					t.Errorf("uninstall left its state dir: %v", err)
				}
			})
		}
	}
}

// brokenNodes breaks the installed node five ways and checks that doctor
// names each problem and its fix, with a non-zero exit.
func (e *installEnv) brokenNodes() {
	t := e.t
	runscTOML := filepath.Join(e.etc, "runsc.toml")
	good, err := os.ReadFile(runscTOML)
	if err != nil {
		t.Fatal(err)
	}
	shimPath := filepath.Join(e.w, "bin", harness.ShimBinaryName)
	for _, b := range []struct {
		name   string
		break_ func() (restore func())
		args   []string
		want   []string
	}{
		{"no runsc", func() func() {
			os.WriteFile(runscTOML, []byte("binary_name = \"/nonexistent/runsc\"\n[runsc_config]\n  network = \"host\"\n"), 0o644)
			return func() { os.WriteFile(runscTOML, good, 0o644) }
		}, nil, []string{"FAIL runsc: runsc: ", "/nonexistent/runsc", "fix: install runsc at /nonexistent/runsc or correct binary_name in " + runscTOML}},
		{"shim not on PATH", func() func() {
			os.Rename(shimPath, shimPath+".away")
			return func() { os.Rename(shimPath+".away", shimPath) }
		}, nil, []string{"FAIL shim on containerd's PATH: containerd-shim-runsc-v1 is not in " + filepath.Join(e.w, "bin") + ":", "fix: run `runsc-node install`"}},
		{"runtime missing from config", func() func() {
			os.WriteFile(filepath.Join(e.w, "plain.toml"), []byte(testdata(t, "debian-bookworm-1.6.20.toml")), 0o644)
			return func() {}
		}, []string{"--containerd-config", filepath.Join(e.w, "plain.toml")}, []string{"FAIL runtime in containerd config: no \"runsc\" runtime in the effective config", "fix: run `runsc-node install`"}},
		{"broken runsc.toml", func() func() {
			os.WriteFile(runscTOML, append([]byte("netwrk = \"host\"\n"), good...), 0o644)
			return func() { os.WriteFile(runscTOML, good, 0o644) }
		}, nil, []string{"FAIL runsc.toml: " + runscTOML + ": unknown key netwrk (line 1)", "fix: correct " + runscTOML}},
		{"network that cannot start", func() func() {
			os.WriteFile(runscTOML, []byte("binary_name = \"/usr/bin/runsc\"\n[runsc_config]\n  network = \"sandbox\"\n"), 0o644)
			return func() { os.WriteFile(runscTOML, good, 0o644) }
		}, nil, []string{"FAIL test sandbox: with the runsc.toml flags (network \"sandbox\"): runsc do: ", "network modes that start: host, none", "fix: set network = \"host\" in [runsc_config] of " + runscTOML}},
	} {
		restore := b.break_()
		out, err := e.node(append([]string{"doctor"}, b.args...)...)
		restore()
		if err == nil {
			t.Errorf("doctor on a node with %s exited 0:\n%s", b.name, out)
		}
		for _, w := range b.want {
			if !strings.Contains(out, w) {
				t.Errorf("doctor on a node with %s does not say %q:\n%s", b.name, w, out)
			}
		}
	}
}

// TestREADMEConfigSnippets starts containerd with each containerd snippet
// of the README as its whole config (a node without a config file) and
// checks that the CRI plugin loads with both runc and runsc.
func TestREADMEConfigSnippets(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var snippets []string
	for _, block := range strings.Split(string(b), "```toml\n")[1:] {
		block = block[:strings.Index(block, "```")]
		if strings.Contains(block, "runtimes.runsc]") {
			snippets = append(snippets, block)
		}
	}
	if len(snippets) != 2 {
		t.Fatalf("want two containerd snippets in the README, found %d", len(snippets))
	}
	for i, snippet := range snippets {
		for _, v := range harness.Versions {
			if strings.Contains(snippet, "version = 3") && v == "1.6" {
				continue // the README says 1.6 ignores it
			}
			t.Run(fmt.Sprintf("snippet-%d/containerd-%s", i, v), func(t *testing.T) {
				requireInstallerPrereqs(t, v)
				e := newInstallEnv(t, v, nodeCase{name: "readme", files: map[string]string{"config.toml": snippet}})
				e.start()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				resp, err := e.d.Client.IntrospectionService().Plugins(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range resp.Plugins {
					if p.Type+"."+p.ID == "io.containerd.grpc.v1.cri" && p.InitErr != nil {
						t.Fatalf("the CRI plugin did not load with the README snippet: %s", p.InitErr.Message)
					}
				}
				e.waitRuntimeReady()
				out, err := e.node("doctor")
				if !strings.Contains(out, "ok   CRI plugin: loaded: ") || !strings.Contains(out, "runtimes runc, runsc") {
					t.Errorf("the running CRI does not have runc and runsc: %v\n%s", err, out)
				}
			})
		}
	}
}

// hostRootTree builds a host root the way the DaemonSet sees the node at
// /host, without exposing anything writable of the real host: /usr bound
// read-only (containerd runs chrooted into it and needs its libraries),
// the merged-usr symlinks, hard links of the binaries that live elsewhere
// (containerd 2.4, current runsc), and a symlink to the daemon's socket
// once it runs. Nothing of the host is writable through it, so removing
// it cannot remove host files even if the unmount failed.
func hostRootTree(t *testing.T, bins ...string) string {
	t.Helper()
	root, err := os.MkdirTemp("/tmp", "rh")
	if err != nil {
		t.Fatal(err)
	}
	usr := filepath.Join(root, "usr")
	t.Cleanup(func() {
		if err := unix.Unmount(usr, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
			t.Errorf("unmount %s: %v", usr, err)
			return // keep the tree rather than walk a mount
		}
		if os.Getenv("HARNESS_KEEP") == "" {
			os.RemoveAll(root)
		}
	})
	if err := os.Mkdir(usr, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/usr", usr, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind /usr: %v", err)
	}
	if err := unix.Mount("", usr, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", usr, err)
	}
	for name, target := range map[string]string{"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bins {
		if strings.HasPrefix(b, "/usr/") {
			continue
		}
		dst := filepath.Join(root, b)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(b, dst); err != nil {
			t.Fatalf("hard link %s into the host root: %v", b, err)
		}
	}
	return root
}

// TestInstallerHostRoot runs the installer as the DaemonSet does, with
// --host-root: containerd found through /proc (binary, version, chrooted
// `config dump`), files written under the host root only, and the node's
// pods in gVisor after the restart; then idempotence and uninstall.
func TestInstallerHostRoot(t *testing.T) {
	for _, v := range harness.Versions {
		t.Run("containerd-"+v, func(t *testing.T) {
			requireInstallerPrereqs(t, v)
			bin, _, _ := harness.DaemonBinaries(v)
			root := hostRootTree(t, bin, harness.Runsc())
			orig := testdata(t, "debian-bookworm-1.6.20.toml")
			e := &installEnv{t: t, version: v, w: root, etc: filepath.Join(root, "etc/containerd"), bin: bin,
				shimSrc: filepath.Join(shim(t), harness.ShimBinaryName), hostRoot: root,
				c: nodeCase{name: "debian-default", files: map[string]string{"config.toml": orig}}}
			e.config = filepath.Join(e.etc, "config.toml")
			e.daemon = filepath.Join(root, "daemon.toml")
			if err := os.MkdirAll(e.etc, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(e.config, []byte(orig), 0o644); err != nil {
				t.Fatal(err)
			}
			const shimDir = "/opt/runsc-node/bin"
			e.writeDaemonConfig()
			e.d = harness.StartDaemonT(t, harness.DaemonOptions{Version: v, ConfigFile: e.daemon,
				ShimDirs: []string{root + shimDir}, Namespace: harness.CRINamespace})
			conn, err := grpc.NewClient("unix://"+e.d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			e.cri = runtimeapi.NewRuntimeServiceClient(conn)
			sock := filepath.Join(root, e.d.Address)
			if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(e.d.Address, sock); err != nil {
				t.Fatal(err)
			}
			e.importImages(sandboxImage(e.dump()))
			e.waitRuntimeReady()
			_, realRunscTOMLBefore := os.Stat(node.DefaultRunscConfig)

			run := func(args ...string) string {
				t.Helper()
				full := append([]string{args[0], "--host-root", root,
					"--containerd-address", e.d.Address, // containerd's binary comes from /proc
					"--containerd-config", node.DefaultConfig,
					"--shim-src", e.shimSrc, "--shim-dir", shimDir, "--runsc", harness.Runsc()}, args[1:]...)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				out, err := exec.CommandContext(ctx, runscNode(t), full...).CombinedOutput()
				t.Logf("runsc-node %s (err %v):\n%s", strings.Join(full, " "), err, out)
				if err != nil {
					t.Fatalf("runsc-node %s: %v", args[0], err)
				}
				return string(out)
			}
			out := run("install", "--no-restart")
			if !strings.Contains(out, "containerd "+map[string]string{"1.6": "1.6.20", "2.4": "2.4.2"}[v]) ||
				!strings.Contains(out, "("+bin+", pid ") {
				t.Errorf("install did not find containerd %s (%s) through /proc:\n%s", v, bin, out)
			}
			installed, _ := os.ReadFile(e.config)
			if !strings.HasPrefix(string(installed), orig) || len(installed) == len(orig) {
				t.Errorf("config under the host root not merged:\n%s", installed)
			}
			for _, p := range []string{node.DefaultRunscConfig, shimDir + "/" + harness.ShimBinaryName, node.DefaultStateDir + "/state.json", node.DefaultConfig + node.BackupSuffix} {
				if _, err := os.Stat(filepath.Join(root, p)); err != nil {
					t.Errorf("install did not write %s under the host root: %v", p, err)
				}
			}
			if _, err := os.Stat(node.DefaultRunscConfig); (err == nil) != (realRunscTOMLBefore == nil) {
				t.Errorf("install touched the real %s", node.DefaultRunscConfig)
			}

			e.restart()
			e.waitRuntimeReady()
			if k := e.podKernel("hostroot", "runsc"); !harness.IsGVisorKernel(k) {
				t.Errorf("pod with handler runsc: uname -r %q, not gVisor", k)
			}
			if out := run("install", "--no-restart"); !strings.Contains(out, "already installed") {
				t.Errorf("second install:\n%s", out)
			}
			if again, _ := os.ReadFile(e.config); string(again) != string(installed) {
				t.Error("second install changed the config")
			}
			run("uninstall")
			if after, _ := os.ReadFile(e.config); string(after) != orig {
				t.Error("uninstall did not restore the original bytes")
			}
			for _, p := range []string{node.DefaultRunscConfig, shimDir + "/" + harness.ShimBinaryName, node.DefaultStateDir, node.DefaultConfig + node.BackupSuffix} {
				if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
					t.Errorf("uninstall left %s under the host root: %v", p, err)
				}
			}
		})
	}
}

// TestInstallerRefuses: with the real containerd binaries, what install
// cannot merge safely is refused with the reason, and nothing is written.
func TestInstallerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, version, config, want string
	}{
		{"version-4-on-1.6", "1.6", testdata(t, "default-2.4.2.toml"), "containerd 1.x silently ignores version 4 files"},
		{"version-1", "2.4", "[plugins.cri]\n  sandbox_image = \"x\"\n", "is a version 1 containerd config"},
		{"other-runsc-runtime", "1.6", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runsc]\n  runtime_type = \"io.containerd.runsc.v1\"\n",
			"already defines a \"runsc\" runtime (plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runsc) that differs from runsc-node's: options is missing (want { ConfigPath = "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireInstallerPrereqs(t, tc.version)
			e := newInstallEnv(t, tc.version, nodeCase{name: tc.name, files: map[string]string{"config.toml": tc.config}})
			before := e.files()
			out, err := e.node("install", "--no-restart", "--containerd-address", filepath.Join(e.w, "none.sock"))
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("install: %v, want a refusal saying %q", err, tc.want)
			}
			if after := e.files(); !reflect.DeepEqual(after, before) {
				t.Error("a refused install changed files")
			}
			for _, p := range []string{"state", "bin"} {
				if _, err := os.Stat(filepath.Join(e.w, p)); !os.IsNotExist(err) {
					t.Errorf("a refused install wrote %s", p)
				}
			}
		})
	}
}
