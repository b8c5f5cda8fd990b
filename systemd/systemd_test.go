package systemd

import (
	"context"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	systemddbus "github.com/coreos/go-systemd/v22/dbus"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

func props(ps []systemddbus.Property) map[string]any {
	m := map[string]any{}
	for _, p := range ps {
		m[p.Name] = p.Value.Value()
	}
	return m
}

func TestResourceProperties(t *testing.T) {
	inf := uint64(math.MaxUint64)
	for _, tc := range []struct {
		name string
		r    *specs.LinuxResources
		v2   bool
		want map[string]any
	}{
		{name: "nil", r: nil, want: map[string]any{}},
		{name: "v1 pod", r: &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr(int64(192 << 20))},
			CPU:    &specs.LinuxCPU{Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Shares: ptr(uint64(1024))},
			Pids:   &specs.LinuxPids{Limit: ptr(int64(100))},
		}, want: map[string]any{"MemoryLimit": uint64(192 << 20), "CPUShares": uint64(1024),
			"CPUQuotaPeriodUSec": uint64(100000), "CPUQuotaPerSecUSec": uint64(500000), "TasksMax": uint64(100)}},
		{name: "v2 pod", v2: true, r: &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr(int64(192 << 20))},
			CPU:    &specs.LinuxCPU{Shares: ptr(uint64(1024))},
		}, want: map[string]any{"MemoryMax": uint64(192 << 20), "CPUWeight": uint64(39)}},
		{name: "unlimited", r: &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr(int64(-1))},
			CPU:    &specs.LinuxCPU{Quota: ptr(int64(-1)), Period: ptr(uint64(100000))},
			Pids:   &specs.LinuxPids{Limit: ptr(int64(-1))},
		}, want: map[string]any{"MemoryLimit": inf, "CPUQuotaPeriodUSec": uint64(100000), "CPUQuotaPerSecUSec": inf, "TasksMax": inf}},
		{name: "fractional percent rounds up", r: &specs.LinuxResources{
			CPU: &specs.LinuxCPU{Quota: ptr(int64(12345)), Period: ptr(uint64(100000))},
		}, want: map[string]any{"CPUQuotaPeriodUSec": uint64(100000), "CPUQuotaPerSecUSec": uint64(130000)}},
		{name: "unset fields", r: &specs.LinuxResources{Memory: &specs.LinuxMemory{}, CPU: &specs.LinuxCPU{}}, want: map[string]any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := props(ResourceProperties(tc.r, tc.v2)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestCPUWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{0: 1, 2: 1, 1024: 39, 262144: 10000, 1 << 30: 10000} {
		if got := cpuWeight(shares); got != want {
			t.Errorf("cpuWeight(%d) = %d, want %d", shares, got, want)
		}
	}
}

func TestCgroupLine(t *testing.T) {
	hybrid := "9:name=systemd:/a.slice/x.scope\n4:memory:/a.slice/x.scope\n1:cpu,cpuacct:/c\n0::/a.slice/x.scope\n"
	for _, tc := range []struct{ in, controller, want string }{
		{hybrid, "memory", "/a.slice/x.scope"},
		{hybrid, "cpuacct", "/c"},
		{hybrid, "", "/a.slice/x.scope"},
		{"0::/k.slice/y.scope\n", "", "/k.slice/y.scope"},
	} {
		got, err := cgroupLine(tc.in, tc.controller)
		if err != nil || got != tc.want {
			t.Errorf("cgroupLine(%q, %q) = %q, %v; want %q", tc.in, tc.controller, got, err, tc.want)
		}
	}
	if _, err := cgroupLine("0::/x\n", "memory"); err == nil {
		t.Errorf("no memory hierarchy: want an error")
	}
}

// TestInvalidNamesGoNowhere: names that are no unit names are refused
// before systemd is asked.
func TestInvalidNamesGoNowhere(t *testing.T) {
	for _, s := range []Scope{
		{Unit: "x.service", Slice: "a.slice"},
		{Unit: "../x.scope", Slice: "a.slice"},
		{Unit: "a b.scope", Slice: "a.slice"},
		{Unit: "x.scope", Slice: "a"},
		{Unit: "x.scope", Slice: "a/b.slice"},
		{Unit: "x.scope"}, // Start needs a slice
	} {
		if err := s.Start(context.Background(), 1, nil); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Start(%+v): %v, want InvalidArgument", s, err)
		}
	}
	if err := (Scope{Unit: "x/y.scope"}).Stop(context.Background()); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Stop of x/y.scope: %v, want InvalidArgument", err)
	}
}

// TestNoSystemd: without systemd as the init system, every call is
// FailedPrecondition saying so.
func TestNoSystemd(t *testing.T) {
	old := runDir
	runDir = filepath.Join(t.TempDir(), "system")
	defer func() { runDir = old }()
	if err := Check(context.Background()); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Check: %v, want FailedPrecondition", err)
	}
	err := (Scope{Unit: "a-b.scope", Slice: "a.slice"}).Start(context.Background(), 1, nil)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "systemd is not running as the init system") {
		t.Errorf("Start: %v, want FailedPrecondition naming why", err)
	}
}
