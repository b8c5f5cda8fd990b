// Package systemd is the shim's systemd cgroup driver: it creates, resizes
// and removes the transient scope unit a gVisor sandbox lives in, through
// systemd's D-Bus API, as runc's systemd driver does.
//
// A scope needs a process when it is created. The shim starts `runsc create`
// held before it executes runsc (see runsc.CreateOpts.Place), creates the
// scope with that process's pid, and lets it run: everything runsc forks
// (gofer, sandbox) starts inside the scope, in every hierarchy systemd
// manages, and runsc is handed the scope's cgroupfs path.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	systemddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runDir is where systemd, booted as the init system, keeps its runtime
// state (sd_booted(3)).
var runDir = "/run/systemd/system"

// Booted reports whether systemd runs as the init system, and why not.
func Booted() error {
	fi, err := os.Lstat(runDir)
	if err != nil {
		return fmt.Errorf("systemd is not running as the init system (%v)", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("systemd is not running as the init system (%s is not a directory)", runDir)
	}
	return nil
}

// connect opens a connection to systemd: the system bus, or (root without
// a bus daemon) systemd's private socket. Failures are FailedPrecondition.
func connect(ctx context.Context) (*systemddbus.Conn, error) {
	if err := Booted(); err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrFailedPrecondition)
	}
	c, err := systemddbus.NewWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd over D-Bus (system bus, /run/systemd/private): %v: %w", err, errdefs.ErrFailedPrecondition)
	}
	return c, nil
}

// Check reports, as FailedPrecondition, why systemd's D-Bus API cannot be
// used, or nil.
func Check(ctx context.Context) error {
	c, err := connect(ctx)
	if err != nil {
		return err
	}
	c.Close()
	return nil
}

// Scope is a transient scope unit for one sandbox.
type Scope struct {
	// Unit is the unit name, "<prefix>-<name>.scope".
	Unit string
	// Slice is the slice unit it lives in.
	Slice string
	// Description is the unit's description.
	Description string
	// V2 selects cgroup v2 names for the resource properties.
	V2 bool
}

// unitName is what the shim accepts as a scope's or slice's unit name
// (oci.ParseSystemdCgroupsPath makes no other): no escapes, no '/', at most
// 255 characters.
var unitName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,240}\.(scope|slice)$`)

// check validates the names that go to systemd.
func (s Scope) check() error {
	if !unitName.MatchString(s.Unit) || !strings.HasSuffix(s.Unit, ".scope") {
		return fmt.Errorf("systemd scope name %q: not a scope unit name: %w", s.Unit, errdefs.ErrInvalidArgument)
	}
	if s.Slice != "" && (!unitName.MatchString(s.Slice) || !strings.HasSuffix(s.Slice, ".slice")) {
		return fmt.Errorf("systemd slice name %q: not a slice unit name: %w", s.Slice, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Start creates the scope with pid in it, its limits from r (may be nil),
// and waits until systemd's job for it is done. A unit of the same name
// that is loaded but inactive (a previous sandbox's, not yet collected) is
// reset once; an active one is AlreadyExists.
func (s Scope) Start(ctx context.Context, pid int, r *specs.LinuxResources) error {
	if err := s.check(); err != nil {
		return err
	}
	if s.Slice == "" {
		return fmt.Errorf("systemd scope %s: no slice: %w", s.Unit, errdefs.ErrInvalidArgument)
	}
	c, err := connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	props := []systemddbus.Property{
		systemddbus.PropDescription(s.Description),
		systemddbus.PropSlice(s.Slice),
		systemddbus.PropPids(uint32(pid)),
		prop("Delegate", true),
		prop("DefaultDependencies", false),
		prop("MemoryAccounting", true),
		prop("CPUAccounting", true),
		prop("TasksAccounting", true),
	}
	if s.V2 {
		props = append(props, prop("IOAccounting", true))
	} else {
		props = append(props, prop("BlockIOAccounting", true))
	}
	props = append(props, ResourceProperties(r, s.V2)...)
	for reset := false; ; reset = true {
		err = s.job(ctx, "start", func(ch chan<- string) (int, error) {
			return c.StartTransientUnitContext(ctx, s.Unit, "replace", props, ch)
		})
		if err == nil || !isDBusError(err, "org.freedesktop.systemd1.UnitExists") || reset {
			break
		}
		// A stopped unit lingers until systemd collects it; resetting
		// it (runc does the same) lets the name be reused at once.
		if rerr := c.ResetFailedUnitContext(ctx, s.Unit); rerr != nil && !isDBusError(rerr, "org.freedesktop.systemd1.NoSuchUnit") {
			break
		}
	}
	if isDBusError(err, "org.freedesktop.systemd1.UnitExists") {
		return fmt.Errorf("systemd unit %s already exists (another sandbox with the same cgroupsPath?): %w", s.Unit, errdefs.ErrAlreadyExists)
	}
	return err
}

// Stop stops the scope and waits for it; a unit systemd no longer knows
// (it stopped by itself when its last process exited) is not an error.
func (s Scope) Stop(ctx context.Context) error {
	c, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	err = s.job(ctx, "stop", func(ch chan<- string) (int, error) {
		return c.StopUnitContext(ctx, s.Unit, "replace", ch)
	})
	if isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
		err = nil
	}
	// A failed scope stays loaded as "failed": reset it so that nothing of
	// it remains.
	if rerr := c.ResetFailedUnitContext(ctx, s.Unit); rerr != nil && err == nil &&
		!isDBusError(rerr, "org.freedesktop.systemd1.NoSuchUnit") {
		err = fmt.Errorf("reset systemd unit %s: %w", s.Unit, rerr)
	}
	return err
}

// Attach moves pid into the scope (running, and delegated: Start makes it
// so), in every hierarchy systemd manages: a process that systemd's stop of
// the unit kills and waits for with the rest.
func (s Scope) Attach(ctx context.Context, pid int) error {
	c, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.AttachProcessesToUnit(ctx, s.Unit, "", []uint32{uint32(pid)}); err != nil {
		return fmt.Errorf("attach process %d to systemd unit %s: %w", pid, s.Unit, err)
	}
	return nil
}

// SetResources sets the scope's limits as unit properties, so that systemd
// keeps them (it rewrites a unit's cgroup attributes from its properties,
// e.g. at daemon-reload).
func (s Scope) SetResources(ctx context.Context, r *specs.LinuxResources) error {
	props := ResourceProperties(r, s.V2)
	if len(props) == 0 {
		return nil
	}
	c, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetUnitPropertiesContext(ctx, s.Unit, true, props...); err != nil {
		return fmt.Errorf("set properties of systemd unit %s: %w", s.Unit, err)
	}
	return nil
}

// connect validates the scope's names and connects to systemd.
func (s Scope) connect(ctx context.Context) (*systemddbus.Conn, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return connect(ctx)
}

// job runs a systemd job call and waits for its result.
func (s Scope) job(ctx context.Context, what string, call func(chan<- string) (int, error)) error {
	// Buffered: go-systemd delivers the result while holding a lock.
	ch := make(chan string, 1)
	if _, err := call(ch); err != nil {
		return fmt.Errorf("%s systemd unit %s: %w", what, s.Unit, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("%s systemd unit %s: job %s", what, s.Unit, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s systemd unit %s: waiting for its job: %w", what, s.Unit, ctx.Err())
	}
}

func isDBusError(err error, name string) bool {
	var e dbus.Error
	return errors.As(err, &e) && e.Name == name
}

func prop(name string, v any) systemddbus.Property {
	return systemddbus.Property{Name: name, Value: dbus.MakeVariant(v)}
}

// infinity is systemd's "no limit" for the uint64 properties.
const infinity = uint64(math.MaxUint64)

// ResourceProperties are the unit properties for the limits in r that the
// shim sets: memory limit, CPU quota and shares (weight on v2), pids limit.
// -1 means no limit.
func ResourceProperties(r *specs.LinuxResources, v2 bool) []systemddbus.Property {
	if r == nil {
		return nil
	}
	var props []systemddbus.Property
	if m := r.Memory; m != nil && m.Limit != nil && *m.Limit != 0 {
		v := infinity
		if *m.Limit > 0 {
			v = uint64(*m.Limit)
		}
		if v2 {
			props = append(props, prop("MemoryMax", v))
		} else {
			props = append(props, prop("MemoryLimit", v))
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil && *c.Shares > 0 {
			if v2 {
				props = append(props, prop("CPUWeight", cpuWeight(*c.Shares)))
			} else {
				props = append(props, prop("CPUShares", *c.Shares))
			}
		}
		if c.Quota != nil && *c.Quota != 0 {
			period := uint64(100000)
			if c.Period != nil && *c.Period > 0 {
				period = *c.Period
			}
			props = append(props, prop("CPUQuotaPeriodUSec", period))
			props = append(props, prop("CPUQuotaPerSecUSec", quotaPerSec(*c.Quota, period)))
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil && *p.Limit != 0 {
		v := infinity
		if *p.Limit > 0 {
			v = uint64(*p.Limit)
		}
		props = append(props, prop("TasksMax", v))
	}
	return props
}

// quotaPerSec converts a CFS quota per period into systemd's CPU time per
// second, rounded up to whole percents as systemd stores it (as runc does),
// so that the cgroup's quota is never below the one asked for.
func quotaPerSec(quota int64, period uint64) uint64 {
	if quota < 0 {
		return infinity
	}
	v := uint64(quota) * 1000000 / period
	if v%10000 != 0 {
		v = (v/10000 + 1) * 10000
	}
	return v
}

// cpuWeight converts cgroup v1 CPU shares [2, 262144] to a v2 weight
// [1, 10000], as runc and crun do.
func cpuWeight(shares uint64) uint64 {
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}

// CgroupOf returns the cgroup path of pid in the hierarchy that holds
// controller (v1: e.g. "memory"), or in the unified hierarchy (controller
// ""), as /proc/<pid>/cgroup shows it.
func CgroupOf(pid int, controller string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	return cgroupLine(string(b), controller)
}

func cgroupLine(s, controller string) (string, error) {
	for _, line := range strings.Split(s, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" {
			if parts[0] == "0" && parts[1] == "" {
				return parts[2], nil
			}
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return parts[2], nil
			}
		}
	}
	if controller == "" {
		controller = "unified"
	}
	return "", fmt.Errorf("no %s cgroup hierarchy", controller)
}
