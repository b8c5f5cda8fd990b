package node

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// fakeHost builds a host root the way a DaemonSet sees the node under
// /host: a static busybox as /bin/sh and friends (containerd runs chrooted
// into the host root), a fake containerd 1.6 and a fake runsc whose own
// network stack cannot start.
func fakeHost(t *testing.T, config string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot)")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("needs a static /bin/busybox: %v", err)
	}
	// Probed runsc features go to a temp dir, not the host's /run.
	old := runsc.FeaturesCacheDir
	runsc.FeaturesCacheDir = t.TempDir()
	t.Cleanup(func() { runsc.FeaturesCacheDir = old })
	root := t.TempDir()
	for _, d := range []string{"bin", "usr/bin", "etc/containerd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	// Runs chrooted: paths are host paths.
	containerd := `#!/bin/sh
case "$1" in
--version) echo "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3"; exit 0;;
--config) [ "$3 $4" = "config dump" ] && exec cat "$2";;
config) echo 'version = 2'; exit 0;;
esac
echo "fake containerd: unexpected $*" >&2; exit 1
`
	if err := os.WriteFile(filepath.Join(root, "usr/bin/containerd"), []byte(containerd), 0o755); err != nil {
		t.Fatal(err)
	}
	// Runs from runsc-node's own view (runsc is static).
	runsc := `#!/bin/sh
for a in "$@"; do case $a in --log=*) log=${a#--log=};; --network=*) net=${a#--network=};; esac; done
case "$1" in
--version) echo "runsc version 0.0~fake"; echo "spec: 1.0.2"; exit 0;;
flags) printf '  -network string\n  -platform string\n  -root string\n  -log string\n  -log-format string\n'; exit 0;;
help) printf 'Subcommands:\n\tdo       Simplistic way to execute a command inside the sandbox.\n\n'; exit 0;;
esac
case "$*" in
*" do "*) if [ "$net" = sandbox ]; then echo '{"msg":"cannot run with network enabled in root network namespace","level":"error"}' >> "$log"; exit 128; fi; exit 0;;
esac
exit 1
`
	if err := os.WriteFile(filepath.Join(root, "usr/bin/runsc"), []byte(runsc), 0o755); err != nil {
		t.Fatal(err)
	}
	if config != "" {
		if err := os.WriteFile(filepath.Join(root, "etc/containerd/config.toml"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestInstallUnderHostRoot(t *testing.T) {
	orig, err := os.ReadFile("testdata/debian-bookworm-1.6.20.toml")
	if err != nil {
		t.Fatal(err)
	}
	root := fakeHost(t, string(orig))
	shim := filepath.Join(t.TempDir(), ShimName)
	if err := os.WriteFile(shim, []byte("#!/bin/sh\n# the shim\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	opts := Options{HostRoot: root, ShimSrc: shim, Runsc: "/usr/bin/runsc", NoRestart: true, Out: &out,
		ContainerdAddress: "/run/containerd/runsc-node-test-" + filepath.Base(root) + ".sock"}
	ctx := context.Background()
	hp := func(p string) string { return filepath.Join(root, p) }
	read := func(p string) string {
		b, _ := os.ReadFile(hp(p))
		return string(b)
	}

	dry := opts
	dry.DryRun = true
	if err := Install(ctx, dry); err != nil {
		t.Fatalf("dry run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "+++ /etc/containerd/config.toml\n@@ -9,0 +10,") || !strings.Contains(out.String(), "+[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runsc]") {
		t.Errorf("dry run shows no diff:\n%s", out.String())
	}
	if read("/etc/containerd/config.toml") != string(orig) || read("/etc/containerd/runsc.toml") != "" || read(DefaultStateDir+"/state.json") != "" {
		t.Fatal("dry run wrote something")
	}

	out.Reset()
	if err := Install(ctx, opts); err != nil {
		t.Fatalf("install: %v\n%s", err, out.String())
	}
	t.Logf("install:\n%s", out.String())
	cfg := read("/etc/containerd/config.toml")
	if !strings.HasPrefix(cfg, string(orig)) || !strings.Contains(cfg, "runtimes.runc]") || !strings.Contains(cfg, "ConfigPath = \"/etc/containerd/runsc.toml\"") {
		t.Errorf("config:\n%s", cfg)
	}
	if read("/etc/containerd/config.toml"+BackupSuffix) != string(orig) {
		t.Error("no backup of the original config")
	}
	if rt := read("/etc/containerd/runsc.toml"); !strings.Contains(rt, "binary_name = \"/usr/bin/runsc\"") || !strings.Contains(rt, "network = \"host\"") || !strings.Contains(rt, "network \\\"sandbox\\\" fails") && !strings.Contains(rt, `network "sandbox" fails`) {
		t.Errorf("runsc.toml:\n%s", rt)
	}
	if read("/usr/local/bin/"+ShimName) == "" || read(DefaultStateDir+"/state.json") == "" {
		t.Error("shim or state not under the host root")
	}
	if !strings.Contains(out.String(), "not restarting containerd (--no-restart): restart it to load the runtime: start containerd: /usr/bin/containerd --config /etc/containerd/config.toml") {
		t.Errorf("no restart command:\n%s", out.String())
	}

	out.Reset()
	if err := Install(ctx, opts); err != nil {
		t.Fatalf("second install: %v", err)
	}
	if read("/etc/containerd/config.toml") != cfg || !strings.Contains(out.String(), "already installed") || !strings.Contains(out.String(), "is up to date") {
		t.Errorf("second install is not a no-op:\n%s", out.String())
	}

	// A config changed since the install is not overwritten without --force.
	if err := os.WriteFile(hp("/etc/containerd/config.toml"), []byte(cfg+"# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Uninstall(ctx, opts); err == nil || !strings.Contains(err.Error(), "changed since runsc-node installed the runtime") {
		t.Fatalf("uninstall over an edited config: %v", err)
	}
	os.WriteFile(hp("/etc/containerd/config.toml"), []byte(cfg), 0o644)
	out.Reset()
	if err := Uninstall(ctx, opts); err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out.String())
	}
	if read("/etc/containerd/config.toml") != string(orig) {
		t.Error("uninstall did not restore the original bytes")
	}
	for _, p := range []string{"/etc/containerd/config.toml" + BackupSuffix, "/etc/containerd/runsc.toml", "/usr/local/bin/" + ShimName, DefaultStateDir} {
		if _, err := os.Stat(hp(p)); !os.IsNotExist(err) {
			t.Errorf("uninstall left %s: %v", p, err)
		}
	}
}

func TestInstallNoFileUnderHostRoot(t *testing.T) {
	root := fakeHost(t, "")
	shim := filepath.Join(t.TempDir(), ShimName)
	os.WriteFile(shim, []byte("shim"), 0o755)
	var out bytes.Buffer
	opts := Options{HostRoot: root, ShimSrc: shim, NoRestart: true, Out: &out, ContainerdAddress: "/run/none-" + filepath.Base(root) + ".sock"}
	if err := Install(context.Background(), opts); err != nil {
		t.Fatalf("install: %v\n%s", err, out.String())
	}
	b, _ := os.ReadFile(filepath.Join(root, DefaultConfig))
	if !strings.Contains(string(b), "version = 2\n") || !strings.Contains(string(b), "runtimes.runc]") {
		t.Errorf("new config:\n%s", b)
	}
	// runsc found on the default PATH under the host root: no binary_name.
	if rt, _ := os.ReadFile(filepath.Join(root, DefaultRunscConfig)); strings.Contains(string(rt), "binary_name") {
		t.Errorf("runsc.toml names a binary: %s", rt)
	}
	if err := Uninstall(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, DefaultConfig)); !os.IsNotExist(err) {
		t.Errorf("uninstall left the config it created: %v", err)
	}
}

func TestInstallRefusesASymlinkedConfig(t *testing.T) {
	root := fakeHost(t, "")
	if err := os.WriteFile(filepath.Join(root, "etc/containerd/real.toml"), []byte("version = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.toml", filepath.Join(root, DefaultConfig)); err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(t.TempDir(), ShimName)
	os.WriteFile(shim, []byte("shim"), 0o755)
	var out bytes.Buffer
	err := Install(context.Background(), Options{HostRoot: root, ShimSrc: shim, NoRestart: true, Out: &out, ContainerdAddress: "/run/none-" + filepath.Base(root) + ".sock"})
	if err == nil || !strings.Contains(err.Error(), "/etc/containerd/config.toml is a symlink (to real.toml)") {
		t.Fatalf("got %v\n%s", err, out.String())
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/containerd/real.toml")); string(b) != "version = 2\n" {
		t.Errorf("the symlink's target changed: %q", b)
	}
	// Refused before anything was written.
	for _, p := range []string{"/usr/local/bin/" + ShimName, DefaultRunscConfig, DefaultStateDir} {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("a refused install wrote %s", p)
		}
	}
}

func TestRestartThroughSystemd(t *testing.T) {
	root := fakeHost(t, "")
	var out bytes.Buffer
	n := &Node{opts: Options{HostRoot: root, ContainerdAddress: "/run/none.sock"}, host: Host{Root: root}, out: &out, Bin: "/usr/bin/containerd", Config: DefaultConfig}
	// PID 1 is not systemd: the exact command, no failure.
	if ok, err := n.restart(context.Background()); ok || err != nil {
		t.Fatalf("without systemd: %v %v", ok, err)
	}
	if !strings.Contains(out.String(), "PID 1 is not systemd") || !strings.Contains(out.String(), "start containerd: /usr/bin/containerd --config /etc/containerd/config.toml") {
		t.Errorf("without systemd:\n%s", out.String())
	}
	// With systemd: the host's systemctl, chrooted into the host root.
	if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$@\" > /systemctl-args\necho 'Job for containerd.service failed.' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(root, "bin/systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := n.restartCommand(); got != "systemctl restart containerd" {
		t.Errorf("restart command %q", got)
	}
	_, err := n.restart(context.Background())
	if err == nil || !strings.Contains(err.Error(), "systemctl restart containerd: exit status 1: Job for containerd.service failed.") {
		t.Fatalf("failing systemctl: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "systemctl-args")); string(b) != "restart containerd\n" {
		t.Errorf("systemctl ran with %q (not chrooted into the host root?)", b)
	}
}
