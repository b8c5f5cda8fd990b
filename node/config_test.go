package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var (
	v16 = Version{Major: 1, Minor: 6, Patch: 20, Raw: "1.6.20~ds1"}
	v24 = Version{Major: 2, Minor: 4, Patch: 2, Raw: "2.4.2+unknown"}
)

// runc16 is the runc runtime of containerd 1.6.20's built-in defaults, as
// `config dump` shows it.
var runc16 = map[string]any{"runc": map[string]any{
	"runtime_type": "io.containerd.runc.v2", "runtime_engine": "", "pod_annotations": []any{},
	"options": map[string]any{"BinaryName": "", "SystemdCgroup": false, "IoUid": int64(0)},
}}

// planAt plans for the host-root dir root and its host path config.
func planAt(t *testing.T, root string, v Version, config string, defaults map[string]any) (*Merge, error) {
	t.Helper()
	n := &Node{host: Host{Root: root}}
	return Plan(MergeInput{Containerd: v, Config: config, Read: n.read, Glob: n.glob, RunscConfig: DefaultRunscConfig, DefaultRuntimes: defaults})
}

// fixture puts testdata/name at /etc/containerd/config.toml of a fresh host root.
func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/containerd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/containerd/config.toml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

const runscV2 = `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
  runtime_type = "io.containerd.runsc.v1"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
  TypeUrl = "io.containerd.runsc.v1.options"
  ConfigPath = "/etc/containerd/runsc.toml"
`

const runscV3 = `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runsc]
  runtime_type = "io.containerd.runsc.v1"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runsc.options]
  TypeUrl = "io.containerd.runsc.v1.options"
  ConfigPath = "/etc/containerd/runsc.toml"
`

func TestPlanAppendsToFixtures(t *testing.T) {
	for _, tc := range []struct {
		fixture  string
		v        Version
		want     string // the appended runtime tables
		wantRunc bool   // the default runc runtime is written too
	}{
		// Debian's file has a CRI section without runtimes: 1.6 would
		// drop its built-in runc once runsc is the only runtime.
		{"debian-bookworm-1.6.20.toml", v16, runscV2, true},
		{"debian-bookworm-1.6.20.toml", v24, runscV2, false},
		{"default-1.6.20.toml", v16, runscV2, false},
		{"default-1.6.20.toml", v24, runscV2, false},
		{"default-2.4.2.toml", v24, runscV3, false},
		{"custom-v2.toml", v16, runscV2, false},
		{"custom-v2.toml", v24, runscV2, false},
	} {
		t.Run(tc.fixture+"@"+tc.v.Raw, func(t *testing.T) {
			root := fixture(t, tc.fixture)
			m, err := planAt(t, root, tc.v, "/etc/containerd/config.toml", runc16)
			if err != nil {
				t.Fatal(err)
			}
			if m.Unchanged || !m.Existed || m.File != "/etc/containerd/config.toml" {
				t.Fatalf("merge %+v", m)
			}
			orig, _ := os.ReadFile(filepath.Join("testdata", tc.fixture))
			if string(m.Before) != string(orig) || !strings.HasPrefix(string(m.After), string(orig)) {
				t.Fatal("the original bytes are not kept as the prefix of the new file")
			}
			added := string(m.After[len(orig):])
			if !strings.HasSuffix(added, tc.want) || !strings.Contains(added, addedMarker) {
				t.Fatalf("appended:\n%s\nwant it to end with:\n%s", added, tc.want)
			}
			hasRunc := strings.Contains(added, "runtimes.runc]")
			if hasRunc != tc.wantRunc {
				t.Fatalf("runc runtime written: %v, want %v:\n%s", hasRunc, tc.wantRunc, added)
			}
			if tc.wantRunc && !strings.Contains(added, "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  BinaryName = \"\"\n  IoUid = 0\n  SystemdCgroup = false\n") {
				t.Fatalf("runc runtime is not the effective one:\n%s", added)
			}
			// Idempotent: planning again on the result changes nothing.
			if err := os.WriteFile(filepath.Join(root, "etc/containerd/config.toml"), m.After, 0o644); err != nil {
				t.Fatal(err)
			}
			again, err := planAt(t, root, tc.v, "/etc/containerd/config.toml", runc16)
			if err != nil {
				t.Fatal(err)
			}
			if !again.Unchanged || string(again.After) != string(m.After) {
				t.Fatalf("second plan is not a no-op: %+v", again)
			}
		})
	}
}

func TestPlanNoFile(t *testing.T) {
	root := t.TempDir()
	m, err := planAt(t, root, v16, "/etc/containerd/config.toml", runc16)
	if err != nil {
		t.Fatal(err)
	}
	s := string(m.After)
	if m.Existed || !strings.Contains(s, "\nversion = 2\n") || !strings.Contains(s, "runtimes.runc]\n  pod_annotations = []\n  runtime_engine = \"\"\n  runtime_type = \"io.containerd.runc.v2\"\n") || !strings.HasSuffix(s, runscV2) {
		t.Fatalf("1.6 new file:\n%s", s)
	}
	// Without a dump: a plain runc runtime.
	m, err = planAt(t, root, v16, "/etc/containerd/config.toml", nil)
	if err != nil || !strings.Contains(string(m.After), "runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n") {
		t.Fatalf("1.6 new file without dump: %v\n%s", err, m.After)
	}
	m, err = planAt(t, root, v24, "/etc/containerd/config.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(m.After); !strings.Contains(s, "\nversion = 3\n") || strings.Contains(s, "runc") || !strings.HasSuffix(s, runscV3) {
		t.Fatalf("2.x new file:\n%s", s)
	}
	if _, err := parseConfig("new", m.After); err != nil {
		t.Fatal(err)
	}
}

func TestPlanImports(t *testing.T) {
	// The main file has no CRI section, the drop-in has: edit the drop-in
	// (adding a CRI section to the main file or a new drop-in would, on
	// 1.6, replace or be replaced by the drop-in's whole section).
	root := t.TempDir()
	for _, f := range []string{"config.toml", "conf.d/10-cri.toml"} {
		b, _ := os.ReadFile(filepath.Join("testdata/imports", f))
		p := filepath.Join(root, "etc/containerd", f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, b, 0o644)
	}
	for _, v := range []Version{v16, v24} {
		m, err := planAt(t, root, v, "/etc/containerd/config.toml", runc16)
		if err != nil {
			t.Fatal(err)
		}
		if m.File != "/etc/containerd/conf.d/10-cri.toml" || !strings.HasSuffix(string(m.After), runscV2) || strings.Contains(string(m.After), "runtimes.runc]\n  pod") {
			t.Fatalf("%s: edits %s (%s):\n%s", v, m.File, m.Why, m.After)
		}
	}
	// Both define it: the last file in containerd's load order wins;
	// imports are host paths resolved under the host root.
	m, err := planAt(t, "testdata/imports-both", v16, "/config.toml", runc16)
	if err != nil {
		t.Fatal(err)
	}
	if m.File != "/conf.d/20-cri.toml" {
		t.Fatalf("edits %s (%s)", m.File, m.Why)
	}
	// That file has no runtimes: on 1.6 the effective runc goes with runsc.
	if !strings.Contains(string(m.After), "runtimes.runc]") {
		t.Fatalf("no runc runtime:\n%s", m.After)
	}
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/containerd"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "etc/containerd/config.toml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestPlanExistingRuntime(t *testing.T) {
	ours := "version = 2\n" + runscV2
	m, err := planAt(t, writeConfig(t, ours), v16, "/etc/containerd/config.toml", runc16)
	if err != nil || !m.Unchanged || string(m.After) != ours {
		t.Fatalf("exactly ours: %v %+v", err, m)
	}
	theirs := "version = 2\n" + strings.Replace(runscV2, "/etc/containerd/runsc.toml", "/etc/runsc/other.toml", 1) +
		"[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runsc]\n" // invalid: defined twice
	if _, err := planAt(t, writeConfig(t, theirs), v16, "/etc/containerd/config.toml", nil); err == nil {
		t.Fatal("a file defining a table twice was accepted")
	}
	theirs = "version = 2\n" + strings.Replace(runscV2, "/etc/containerd/runsc.toml", "/etc/runsc/other.toml", 1) +
		"  pod_annotations = [\"dev.gvisor.*\"]\n"
	_, err = planAt(t, writeConfig(t, theirs), v16, "/etc/containerd/config.toml", nil)
	if err == nil || !strings.Contains(err.Error(), `options.ConfigPath is "/etc/runsc/other.toml" (want "/etc/containerd/runsc.toml")`) ||
		!strings.Contains(err.Error(), "already defines a \"runsc\" runtime") {
		t.Fatalf("different runsc runtime: %v", err)
	}
	v3 := "version = 3\n" + strings.Replace(runscV3, `runtime_type = "io.containerd.runsc.v1"`, `runtime_type = "io.containerd.runc.v2"`, 1)
	_, err = planAt(t, writeConfig(t, v3), v24, "/etc/containerd/config.toml", nil)
	if err == nil || !strings.Contains(err.Error(), `runtime_type is "io.containerd.runc.v2" (want "io.containerd.runsc.v1")`) {
		t.Fatalf("different runtime_type: %v", err)
	}
}

func TestPlanRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		v             Version
		want          string
	}{
		{"version 1", "[plugins.cri]\n  sandbox_image = \"x\"\n", v16, "version 1 containerd config"},
		{"version 1 on 2.x", "root = \"/var/lib/containerd\"\n", v24, "version 1 containerd config"},
		{"version 3 on 1.6", "version = 3\n", v16, "containerd 1.x silently ignores version 3 files"},
		{"version 4 on 1.6", "version = 4\n", v16, "silently ignores version 4"},
		{"not TOML", "version = 2\n[plugins\n", v16, "not valid TOML"},
		{"inline table", "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  runtimes = { runc = { runtime_type = \"io.containerd.runc.v2\" } }\n", v16, "add this by hand instead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := planAt(t, writeConfig(t, tc.content), tc.v, "/etc/containerd/config.toml", nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// An unreadable file is not "no file".
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/containerd/config.toml"), 0o755)
	if _, err := planAt(t, root, v16, "/etc/containerd/config.toml", nil); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a directory as config: %v", err)
	}
}

func TestParseVersion(t *testing.T) {
	for out, want := range map[string][3]int{
		"containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3": {1, 6, 20},
		"containerd github.com/containerd/containerd/v2 2.4.2+unknown ":               {2, 4, 2},
		"containerd containerd.io v1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da":   {1, 7, 27},
	} {
		v, err := ParseVersion(out)
		if err != nil || [3]int{v.Major, v.Minor, v.Patch} != want {
			t.Errorf("%q: %+v %v", out, v, err)
		}
	}
	if _, err := ParseVersion("containerd: command not found"); err == nil {
		t.Error("no error for garbage")
	}
}

func TestHostPath(t *testing.T) {
	h := Host{Root: "/host"}
	if p, err := h.Path("/etc/containerd/config.toml"); err != nil || p != "/host/etc/containerd/config.toml" {
		t.Fatalf("%q %v", p, err)
	}
	for _, bad := range []string{"etc/x", "/etc/../../x", "/a/..", "/a\x00b"} {
		if _, err := h.Path(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if p, _ := (Host{Root: "/"}).Path("/run/x.sock"); p != "/run/x.sock" {
		t.Fatal(p)
	}
}

func TestPlanRelativeImportGlob(t *testing.T) {
	// containerd 1.6 does not expand '*' in a relative import (measured:
	// `config dump` shows the drop-in's settings only with an absolute
	// pattern); 2.x does.
	root := writeConfig(t, "version = 2\nimports = [\"conf.d/*.toml\"]\n")
	os.MkdirAll(filepath.Join(root, "etc/containerd/conf.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/containerd/conf.d/cri.toml"), []byte("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"x\"\n"), 0o644)
	m, err := planAt(t, root, v16, "/etc/containerd/config.toml", runc16)
	if err != nil || m.File != "/etc/containerd/config.toml" {
		t.Fatalf("1.6: %v, edits %v", err, m)
	}
	m, err = planAt(t, root, v24, "/etc/containerd/config.toml", nil)
	if err != nil || m.File != "/etc/containerd/conf.d/cri.toml" {
		t.Fatalf("2.4: %v, edits %v", err, m)
	}
	// A relative import without '*' is a file next to the importing one.
	root = writeConfig(t, "version = 2\nimports = [\"conf.d/cri.toml\", \"missing.toml\"]\n")
	os.MkdirAll(filepath.Join(root, "etc/containerd/conf.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/containerd/conf.d/cri.toml"), []byte("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"x\"\n"), 0o644)
	if m, err = planAt(t, root, v16, "/etc/containerd/config.toml", runc16); err != nil || m.File != "/etc/containerd/conf.d/cri.toml" {
		t.Fatalf("1.6 literal import: %v, edits %v", err, m)
	}
}

// readmeSnippets returns the TOML blocks of the README that add the runsc runtime.
func readmeSnippets(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, block := range strings.Split(string(b), "```toml\n")[1:] {
		block = block[:strings.Index(block, "```")]
		if strings.Contains(block, "runtimes.runsc]") {
			out = append(out, block)
		}
	}
	if len(out) != 2 {
		t.Fatalf("want the README's two containerd snippets, found %d", len(out))
	}
	return out
}

func TestREADMESnippetsAreWhatInstallWrites(t *testing.T) {
	for i, snippet := range readmeSnippets(t) {
		v := v16
		if strings.Contains(snippet, "version = 3") {
			v = v24
		}
		m, err := planAt(t, writeConfig(t, snippet), v, "/etc/containerd/config.toml", nil)
		if err != nil || !m.Unchanged {
			t.Errorf("README snippet %d is not exactly the runtime runsc-node installs: %v", i, err)
		}
		if v == v16 && !strings.Contains(snippet, "runtimes.runc]") {
			t.Errorf("README's containerd 1.6 snippet does not keep the runc runtime")
		}
	}
}

func TestPlanIneffectiveRuntimeOn16(t *testing.T) {
	// The main file has our runtime, but a drop-in's CRI section replaces
	// the main file's whole on 1.6: the runtime is not effective there.
	root := writeConfig(t, "version = 2\nimports = [\"/etc/containerd/conf.d/*.toml\"]\n"+runscV2)
	os.MkdirAll(filepath.Join(root, "etc/containerd/conf.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/containerd/conf.d/cri.toml"), []byte("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"x\"\n"), 0o644)
	_, err := planAt(t, root, v16, "/etc/containerd/config.toml", runc16)
	if err == nil || !strings.Contains(err.Error(), "has no effect on containerd 1.6.20~ds1: /etc/containerd/conf.d/cri.toml's CRI plugin section replaces") {
		t.Fatalf("1.6: %v", err)
	}
	// containerd 2.x merges the sections: already installed.
	if m, err := planAt(t, root, v24, "/etc/containerd/config.toml", nil); err != nil || !m.Unchanged {
		t.Fatalf("2.4: %v %+v", err, m)
	}
}
