package runsc

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSubcommandsAndFlags(t *testing.T) {
	help := "Usage: runsc <flags> <subcommand> <subcommand args>\n\nSubcommands:\n\tcheckpoint       checkpoint current state\n\tcreate           create a secure container\n\nSubcommands for debug:\n\tdebug            shows\n\tstatefile        shows information about a statefile\n\nAdditional help topics (Use \"runsc help <topic>\" to see help on the topic):\n\tplatforms        Print a list of available platforms.\n\nUse \"runsc flags\" for a list of top-level flags\n"
	got := strings.Join(parseSubcommands([]byte(help)), ",")
	if want := "checkpoint,create,debug,statefile"; got != want {
		t.Errorf("subcommands %s, want %s", got, want)
	}
	flags := "  -allow-flag-override\n    \tallow OCI annotations\n  -debug-log string\n    \tadditional location\n  -TESTONLY-unsafe-nonroot\n    \tTEST ONLY\n"
	if got, want := strings.Join(parseFlags([]byte(flags)), ","), "TESTONLY-unsafe-nonroot,allow-flag-override,debug-log"; got != want {
		t.Errorf("flags %s, want %s", got, want)
	}
	v, spec := parseVersion([]byte("runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n"))
	if v != "0.0~20221219.0" || spec != "1.0.2-dev" {
		t.Errorf("version %q spec %q", v, spec)
	}
}

// probeFake writes a script answering --version, flags and help, counting
// its invocations in dir/calls.
func probeFake(t *testing.T, dir, version string) string {
	t.Helper()
	bin := filepath.Join(dir, "runsc")
	script := `#!/bin/sh
echo x >> ` + filepath.Join(dir, "calls") + `
case "$1" in
--version) printf 'runsc version ` + version + `\nspec: 1.2.1\n' ;;
flags) printf '  -network string\n    \tnetwork\n  -platform string\n    \tplatform\n' ;;
help) printf 'Subcommands:\n\tcreate    create\n\tupdate    update\n\n' ;;
*) exit 2 ;;
esac
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func calls(t *testing.T, dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, "calls"))
	return strings.Count(string(b), "x")
}

func TestProbeCaches(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	old := FeaturesCacheDir
	FeaturesCacheDir = filepath.Join(dir, "cache")
	t.Cleanup(func() { FeaturesCacheDir = old })
	bin := probeFake(t, dir, "release-1")
	ctx := context.Background()
	f, err := Probe(ctx, bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != "release-1" || !f.HasFlag("network") || f.HasFlag("bogus") || !f.HasSubcommand("update") || f.HasSubcommand("events") {
		t.Fatalf("features %+v", f)
	}
	if n := calls(t, dir); n != 3 {
		t.Fatalf("probe ran runsc %d times, want 3", n)
	}
	// In memory, then on disk (a new shim process): no more questions.
	if _, err := Probe(ctx, bin, nil); err != nil {
		t.Fatal(err)
	}
	featuresMu.Lock()
	clear(features)
	featuresMu.Unlock()
	f2, err := Probe(ctx, bin, nil)
	if err != nil || f2.Version != "release-1" || !f2.HasFlag("platform") {
		t.Fatalf("cached probe %+v, %v", f2, err)
	}
	if n := calls(t, dir); n != 3 {
		t.Fatalf("cached probes ran runsc: %d calls, want 3", n)
	}
	// An upgraded binary (new file) is asked again.
	os.Remove(bin)
	probeFake(t, dir, "release-2")
	f3, err := Probe(ctx, bin, nil)
	if err != nil || f3.Version != "release-2" {
		t.Fatalf("probe after upgrade %+v, %v", f3, err)
	}
	if n := calls(t, dir); n != 6 {
		t.Fatalf("upgrade: %d calls, want 6", n)
	}
}

func TestProbeErrors(t *testing.T) {
	dir := t.TempDir()
	old := FeaturesCacheDir
	FeaturesCacheDir = filepath.Join(dir, "cache")
	t.Cleanup(func() { FeaturesCacheDir = old })
	if _, err := Probe(context.Background(), filepath.Join(dir, "missing"), nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing binary: %v", err)
	}
	notRunsc := filepath.Join(dir, "true")
	os.WriteFile(notRunsc, []byte("#!/bin/sh\necho hello\n"), 0o755)
	if _, err := Probe(context.Background(), notRunsc, nil); err == nil || !strings.Contains(err.Error(), "not a runsc version") {
		t.Errorf("not runsc: %v", err)
	}
}

func TestProbeRealRunsc(t *testing.T) {
	want := os.Getenv("RUNSC")
	if want == "" {
		want = "runsc"
	}
	bin, err := exec.LookPath(want)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs runsc: %v", err)
		}
		t.Skip("runsc not installed")
	}
	old := FeaturesCacheDir
	FeaturesCacheDir = t.TempDir()
	t.Cleanup(func() { FeaturesCacheDir = old })
	f, err := Probe(context.Background(), bin, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, fl := range []string{"root", "log", "log-format", "network", "platform"} {
		if !f.HasFlag(fl) {
			t.Errorf("%s: no flag %s in %v", f, fl, f.Flags)
		}
	}
	for _, s := range []string{"create", "start", "exec", "events", "wait", "kill", "delete", "checkpoint", "restore"} {
		if !f.HasSubcommand(s) {
			t.Errorf("%s: no subcommand %s in %v", f, s, f.Subcommands)
		}
	}
}

// TestProbeOnceAcrossProcesses: shims started at once (30 pods after an
// install) ask runsc once between them.
func TestProbeOnceAcrossProcesses(t *testing.T) {
	if dir := os.Getenv("PROBE_HELPER_DIR"); dir != "" {
		FeaturesCacheDir = filepath.Join(dir, "cache")
		if _, err := Probe(context.Background(), filepath.Join(dir, "runsc"), nil); err != nil {
			t.Fatal(err)
		}
		return
	}
	dir := t.TempDir()
	// The fake answers slowly, so that the processes overlap.
	bin := probeFake(t, dir, "release-1")
	script, _ := os.ReadFile(bin)
	if err := os.WriteFile(bin, []byte(strings.Replace(string(script), "case", "sleep 0.2\ncase", 1)), 0o755); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProbeOnceAcrossProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), "PROBE_HELPER_DIR="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("probing process: %v", err)
		}
	}
	if n := calls(t, dir); n != 3 {
		t.Fatalf("6 processes probing at once ran runsc %d times, want 3 (one probe)", n)
	}
}
