package shim

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSandboxOverheadConfig(t *testing.T) {
	def, err := parseConfig([]byte(""), "runsc.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := def.SandboxOverhead(); got != DefaultSandboxOverheadMiB<<20 {
		t.Errorf("default overhead %d, want %d MiB", got, DefaultSandboxOverheadMiB)
	}
	if got := (*Config)(nil).SandboxOverhead(); got != DefaultSandboxOverheadMiB<<20 {
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
	for _, bad := range []string{"sandbox_overhead_mib = -1\n", "sandbox_overhead_mib = 100000000\n", "sandbox_overhead_mib = \"20\"\n"} {
		_, err := parseConfig([]byte(bad), "runsc.toml")
		if err == nil || !strings.Contains(err.Error(), "sandbox_overhead_mib") {
			t.Errorf("%q: error %v, want one naming sandbox_overhead_mib", bad, err)
		}
	}
}

func TestPodResourcesOverhead(t *testing.T) {
	lim := func(mib int64) *specs.LinuxResources {
		v := mib << 20
		return &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &v}}
	}
	for _, tc := range []struct {
		name       string
		containers map[string]*specs.LinuxResources
		overhead   int64
		want       int64
	}{
		{"one container", map[string]*specs.LinuxResources{"a": lim(15)}, 20 << 20, 35 << 20},
		{"two containers", map[string]*specs.LinuxResources{"a": lim(15), "b": lim(100)}, 20 << 20, 135 << 20},
		{"zero overhead", map[string]*specs.LinuxResources{"a": lim(15)}, 0, 15 << 20},
		{"a container without limit", map[string]*specs.LinuxResources{"a": lim(15), "b": {}}, 20 << 20, -1},
		{"no container", map[string]*specs.LinuxResources{}, 20 << 20, -1},
	} {
		got := podResources(tc.containers, tc.overhead)
		if *got.Memory.Limit != tc.want {
			t.Errorf("%s: sandbox memory limit %d, want %d", tc.name, *got.Memory.Limit, tc.want)
		}
	}
}
