package shim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

func TestSandboxOverheadConfig(t *testing.T) {
	def, err := parseConfig([]byte(""), "runsc.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := def.SandboxOverhead(); got != -1 {
		t.Errorf("default overhead %d, want -1 (measured)", got)
	}
	if got := def.ContainerOverhead(); got != DefaultContainerOverheadMiB<<20 {
		t.Errorf("default per-container overhead %d, want %d MiB", got, DefaultContainerOverheadMiB)
	}
	if got := (*Config)(nil).SandboxOverhead(); got != -1 {
		t.Errorf("nil config overhead %d, want the default", got)
	}
	c, err := parseConfig([]byte("sandbox_overhead_mib = 48\n"), "runsc.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ForID("x").SandboxOverhead(); got != 48<<20 {
		t.Errorf("sandbox_overhead_mib = 48: overhead %d bytes", got)
	}
	c, err = parseConfig([]byte("sandbox_overhead_mib = 0\n"), "runsc.toml")
	if err != nil || c.SandboxOverhead() != 0 {
		t.Errorf("sandbox_overhead_mib = 0: %v, %v", c, err)
	}
	c, err = parseConfig([]byte("container_overhead_mib = 4\n"), "runsc.toml")
	if err != nil || c.ContainerOverhead() != 4<<20 || c.SandboxOverhead() != -1 {
		t.Errorf("container_overhead_mib = 4: %v, %v", c, err)
	}
	for _, key := range []string{"sandbox_overhead_mib", "container_overhead_mib"} {
		for _, bad := range []string{key + " = -1\n", key + " = 100000000\n", key + " = \"20\"\n"} {
			_, err := parseConfig([]byte(bad), "runsc.toml")
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Errorf("%q: error %v, want one naming %s", bad, err, key)
			}
		}
	}
}

func TestPodResourcesOverhead(t *testing.T) {
	lim := func(mib int64) *specs.LinuxResources {
		v := mib << 20
		return &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &v}}
	}
	for _, tc := range []struct {
		name                   string
		containers             map[string]*specs.LinuxResources
		overhead, perContainer int64
		want                   int64
	}{
		{"one container", map[string]*specs.LinuxResources{"a": lim(15)}, 12 << 20, 10 << 20, 37 << 20},
		{"two containers", map[string]*specs.LinuxResources{"a": lim(15), "b": lim(100)}, 12 << 20, 10 << 20, 147 << 20},
		{"zero overhead", map[string]*specs.LinuxResources{"a": lim(15)}, 0, 0, 15 << 20},
		{"a container without limit", map[string]*specs.LinuxResources{"a": lim(15), "b": {}}, 12 << 20, 10 << 20, -1},
		{"no container", map[string]*specs.LinuxResources{}, 12 << 20, 10 << 20, -1},
	} {
		got := podResources(tc.containers, tc.overhead, tc.perContainer)
		if *got.Memory.Limit != tc.want {
			t.Errorf("%s: sandbox memory limit %d, want %d", tc.name, *got.Memory.Limit, tc.want)
		}
	}
}

// TestMeasureOverhead: unset, the sandbox's own memory is its cgroup's
// usage when the first container joins, rounded up to a MiB; unreadable,
// FallbackSandboxOverheadMiB.
func TestMeasureOverhead(t *testing.T) {
	dir := t.TempDir()
	usage := "memory.usage_in_bytes"
	if unifiedCgroups {
		usage = "memory.current"
	}
	if err := os.WriteFile(filepath.Join(dir, usage), []byte("12582913\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &pod{oomFile: filepath.Join(dir, "memory.oom_control")}
	if got := p.measureOverhead(); got != 13<<20 {
		t.Errorf("usage 12 MiB + 1 byte: overhead %d, want 13 MiB", got)
	}
	p = &pod{oomFile: filepath.Join(dir, "missing", "memory.oom_control")}
	if got := p.measureOverhead(); got != FallbackSandboxOverheadMiB<<20 {
		t.Errorf("unreadable usage: overhead %d, want %d MiB", got, FallbackSandboxOverheadMiB)
	}
}

func TestCompatFlags(t *testing.T) {
	current := runsc.NewFeatures("/runsc", "current", []string{"oci-seccomp", "allow-suid", "network"}, nil)
	old := runsc.NewFeatures("/runsc", "old", []string{"oci-seccomp", "network"}, nil)
	bare := runsc.NewFeatures("/runsc", "bare", []string{"network"}, nil)
	withSeccomp := &specs.Spec{Process: &specs.Process{NoNewPrivileges: true}, Linux: &specs.Linux{Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}}}
	mayEscalate := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{}}
	for _, tc := range []struct {
		name string
		cfg  *Config
		f    *runsc.Features
		spec *specs.Spec
		want string
	}{
		{"seccomp, current", &Config{}, current, withSeccomp, "--oci-seccomp --allow-suid"},
		{"seccomp, old", &Config{}, old, withSeccomp, "--oci-seccomp"},
		{"seccomp, no flag", &Config{}, bare, withSeccomp, ""},
		{"seccomp set in runsc_config", &Config{RunscConfig: map[string]string{"oci-seccomp": "false"}}, old, withSeccomp, ""},
		{"no_new_privs off, current", &Config{}, current, mayEscalate, "--allow-suid"},
		{"no_new_privs off, runsc without allow-suid", &Config{}, old, mayEscalate, ""},
		{"allow-suid set in runsc_config", &Config{RunscConfig: map[string]string{"allow-suid": "false"}}, current, mayEscalate, ""},
		{"both", &Config{}, current, &specs.Spec{Process: &specs.Process{}, Linux: withSeccomp.Linux}, "--oci-seccomp --allow-suid"},
		{"no_new_privs on (a pause container), current", &Config{}, current, &specs.Spec{Process: &specs.Process{NoNewPrivileges: true}}, "--allow-suid"},
		{"neither", &Config{}, old, &specs.Spec{Process: &specs.Process{NoNewPrivileges: true}}, ""},
	} {
		got := strings.Join(compatFlags(context.Background(), "c1", tc.cfg, tc.f, tc.spec), " ")
		if got != tc.want {
			t.Errorf("%s: flags %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestWarnIgnoredSpec(t *testing.T) {
	logged := func(spec *specs.Spec) string {
		var buf bytes.Buffer
		l := logrus.New()
		l.SetOutput(&buf)
		l.SetLevel(logrus.WarnLevel)
		l.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
		warnIgnoredSpec(log.WithLogger(context.Background(), logrus.NewEntry(l)), "c1", spec)
		return buf.String()
	}
	// Partial specs: nothing to say, no panic.
	for _, spec := range []*specs.Spec{{}, {Process: &specs.Process{}}, {Linux: &specs.Linux{}}} {
		if got := logged(spec); got != "" {
			t.Errorf("spec %+v: logged %q, want nothing", spec, got)
		}
	}
	for _, tc := range []struct {
		name string
		spec *specs.Spec
		want []string // substrings of the one warning line, "" for none
	}{
		{"containerd's sysctls only", &specs.Spec{Linux: &specs.Linux{Sysctl: map[string]string{"net.ipv4.ping_group_range": "0 0"}}}, nil},
		{"user sysctls", &specs.Spec{Linux: &specs.Linux{Sysctl: map[string]string{
			"kernel.shm_rmid_forced": "1", "net.ipv4.ping_group_range": "0 0"}}},
			[]string{"id=c1", "linux.sysctl", "kernel.shm_rmid_forced"}},
		{"apparmor profile", &specs.Spec{Process: &specs.Process{ApparmorProfile: "cri-containerd.apparmor.d"}},
			[]string{"id=c1", "process.apparmorProfile", "apparmorProfile=cri-containerd.apparmor.d"}},
	} {
		got := logged(tc.spec)
		lines := strings.Split(strings.TrimSpace(got), "\n")
		if len(tc.want) == 0 {
			if got != "" {
				t.Errorf("%s: logged %q, want nothing", tc.name, got)
			}
			continue
		}
		if len(lines) != 1 || !strings.Contains(lines[0], "level=warning") {
			t.Errorf("%s: logged %q, want one warning", tc.name, got)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(lines[0], w) {
				t.Errorf("%s: warning %q lacks %q", tc.name, lines[0], w)
			}
		}
	}
}
