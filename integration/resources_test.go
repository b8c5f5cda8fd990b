package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	apitypes "github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

const mib = 1 << 20

// metrics is what the resource tests read from a task's metrics, whatever
// the host's cgroup mode.
type metrics struct {
	cpuNs    uint64 // total CPU time
	mem      uint64 // memory usage
	memLimit uint64
}

func (m metrics) String() string {
	return fmt.Sprintf("cpu %v, memory %d MiB (%d bytes) of limit %d bytes", time.Duration(m.cpuNs), m.mem/mib, m.mem, m.memLimit)
}

// decodeMetrics decodes a task's metrics as containerd does: cgroup v1
// metrics on v1 and hybrid hosts, cgroup v2 metrics on unified hosts.
func decodeMetrics(m *apitypes.Metric) (metrics, error) {
	if m == nil || m.Data == nil {
		return metrics{}, fmt.Errorf("no metrics data")
	}
	v, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return metrics{}, fmt.Errorf("decode metrics (%s): %w", m.Data.GetTypeUrl(), err)
	}
	unified := cgroups.Mode() == cgroups.Unified
	switch s := v.(type) {
	case *v1stats.Metrics:
		if unified {
			return metrics{}, fmt.Errorf("cgroup v1 metrics (%s) on a cgroup v2 host", m.Data.GetTypeUrl())
		}
		var out metrics
		if s.CPU == nil || s.CPU.Usage == nil {
			return out, fmt.Errorf("cgroup v1 metrics without CPU usage: %v", s)
		}
		if s.Memory == nil || s.Memory.Usage == nil {
			return out, fmt.Errorf("cgroup v1 metrics without memory usage: %v", s)
		}
		out.cpuNs = s.CPU.Usage.Total
		out.mem, out.memLimit = s.Memory.Usage.Usage, s.Memory.Usage.Limit
		return out, nil
	case *v2stats.Metrics:
		if !unified {
			return metrics{}, fmt.Errorf("cgroup v2 metrics (%s) on a cgroup v1 host (mode %v): containerd would not decode them", m.Data.GetTypeUrl(), cgroups.Mode())
		}
		var out metrics
		if s.CPU == nil || s.Memory == nil {
			return out, fmt.Errorf("cgroup v2 metrics without CPU or memory: %v", s)
		}
		out.cpuNs = s.CPU.UsageUsec * 1000
		out.mem, out.memLimit = s.Memory.Usage, s.Memory.UsageLimit
		return out, nil
	default:
		return metrics{}, fmt.Errorf("metrics are a %T (%s), want cgroup v1 or v2 metrics", v, m.Data.GetTypeUrl())
	}
}

// taskMetrics asks containerd for task's metrics and decodes them.
func taskMetrics(ctx context.Context, task client.Task) (metrics, error) {
	m, err := task.Metrics(ctx)
	if err != nil {
		return metrics{}, fmt.Errorf("Metrics: %w", err)
	}
	return decodeMetrics(m)
}

// waitMetrics polls task's metrics until ok accepts them or timeout passes;
// it returns the last metrics read.
func waitMetrics(ctx context.Context, task client.Task, timeout time.Duration, ok func(metrics) bool) (metrics, bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := taskMetrics(ctx, task)
		if err != nil {
			return m, false, err
		}
		if ok(m) {
			return m, true, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return m, false, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// hostMemoryCgroup is the host memory cgroup directory of the container's
// linux.cgroupsPath (cgroupfs driver). On v2 hosts it is the unified
// hierarchy's directory.
func hostMemoryCgroup(cgroupsPath string) string {
	if cgroups.Mode() == cgroups.Unified {
		return filepath.Join("/sys/fs/cgroup", cgroupsPath)
	}
	return filepath.Join("/sys/fs/cgroup/memory", cgroupsPath)
}

// hostMemoryLimit reads the memory limit of a host cgroup directory.
func hostMemoryLimit(dir string) (string, error) {
	file := filepath.Join(dir, "memory.limit_in_bytes")
	if cgroups.Mode() == cgroups.Unified {
		file = filepath.Join(dir, "memory.max")
	}
	b, err := os.ReadFile(file)
	return strings.TrimSpace(string(b)), err
}

// hostCPUQuota reads the CPU quota of the host cgroup at cgroupsPath:
// cpu.cfs_quota_us (v1) or cpu.max (v2, "<quota> <period>").
func hostCPUQuota(cgroupsPath string) (string, error) {
	file := filepath.Join("/sys/fs/cgroup/cpu", cgroupsPath, "cpu.cfs_quota_us")
	if cgroups.Mode() == cgroups.Unified {
		file = filepath.Join("/sys/fs/cgroup", cgroupsPath, "cpu.max")
	}
	b, err := os.ReadFile(file)
	return strings.TrimSpace(string(b)), err
}

// pidMemoryCgroup returns the memory cgroup of pid as listed in
// /proc/<pid>/cgroup.
func pidMemoryCgroup(pid uint32) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if cgroups.Mode() == cgroups.Unified && f[0] == "0" {
			return f[2], nil
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				return f[2], nil
			}
		}
	}
	return "", fmt.Errorf("no memory cgroup in /proc/%d/cgroup:\n%s", pid, b)
}

// containerCgroupsPath is linux.cgroupsPath of c's spec.
func containerCgroupsPath(ctx context.Context, c client.Container) (string, error) {
	spec, err := c.Spec(ctx)
	if err != nil {
		return "", err
	}
	if spec.Linux == nil || spec.Linux.CgroupsPath == "" {
		return "", fmt.Errorf("spec of %s has no linux.cgroupsPath", c.ID())
	}
	return spec.Linux.CgroupsPath, nil
}

// shimInfo runs the shim binary with -info and empty stdin and decodes the
// RuntimeInfo it prints and its OCI features.
func shimInfo(ctx context.Context, bin string) (*apitypes.RuntimeInfo, *features.Features, error) {
	cmd := exec.CommandContext(ctx, bin, "-info")
	var stdout, stderr bytes.Buffer
	cmd.Stdin = bytes.NewReader(nil)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, nil, fmt.Errorf("%s -info: %w; stderr: %s", bin, err, stderr.String())
	}
	var info apitypes.RuntimeInfo
	if err := proto.Unmarshal(stdout.Bytes(), &info); err != nil {
		return nil, nil, fmt.Errorf("%s -info: decode RuntimeInfo from %q: %w", bin, stdout.String(), err)
	}
	if info.Features == nil {
		return &info, nil, fmt.Errorf("%s -info: RuntimeInfo without Features: %v", bin, &info)
	}
	var f features.Features
	if err := typeurl.UnmarshalTo(info.Features, &f); err != nil {
		return &info, nil, fmt.Errorf("%s -info: decode Features (%s): %w", bin, info.Features.GetTypeUrl(), err)
	}
	return &info, &f, nil
}

// checkCgroupFeatures fails t unless f says cgroup v1 and v2 are supported.
func checkCgroupFeatures(t *testing.T, f *features.Features) {
	t.Helper()
	if f.Linux == nil || f.Linux.Cgroup == nil {
		t.Errorf("features lack linux.cgroup: %+v", f)
		return
	}
	cg := f.Linux.Cgroup
	if cg.V1 == nil || !*cg.V1 {
		t.Errorf("features: cgroup v1 = %v, want true", fmtBoolPtr(cg.V1))
	}
	if cg.V2 == nil || !*cg.V2 {
		t.Errorf("features: cgroup v2 = %v, want true", fmtBoolPtr(cg.V2))
	}
}

// cgroupFeatures describes f's linux.cgroup.
func cgroupFeatures(f *features.Features) string {
	if f.Linux == nil || f.Linux.Cgroup == nil {
		return "unset"
	}
	cg := f.Linux.Cgroup
	return fmt.Sprintf("v1=%s v2=%s systemd=%s", fmtBoolPtr(cg.V1), fmtBoolPtr(cg.V2), fmtBoolPtr(cg.Systemd))
}

func fmtBoolPtr(b *bool) string {
	if b == nil {
		return "unset"
	}
	return strconv.FormatBool(*b)
}

func TestResources(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireBinary(t, harness.Runsc())
	harness.RequireBinary(t, harness.BusyboxBinary)
	dir := shim(t)
	t.Logf("host cgroup mode: %v (unified=%v)", cgroups.Mode(), cgroups.Mode() == cgroups.Unified)

	t.Run("info-features", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		info, f, err := shimInfo(ctx, filepath.Join(dir, harness.ShimBinaryName))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("-info: name %q version %v; features: OCI %s..%s, cgroup %+v", info.Name, info.Version, f.OCIVersionMin, f.OCIVersionMax, cgroupFeatures(f))
		if info.Name != harness.RuntimeName {
			t.Errorf("-info name %q, want %q", info.Name, harness.RuntimeName)
		}
		checkCgroupFeatures(t, f)
	})

	forEachDaemon(t, harness.DaemonOptions{ShimDirs: []string{dir}}, func(t *testing.T, d *harness.Daemon) {
		e := newTaskEnv(t, d)
		bctx := d.Context(context.Background())

		t.Run("cpu-busy-metrics", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(bctx, taskTimeout)
			defer cancel()
			lt := e.start(ctx, t, e.id("busy"), []string{"sh", "-c", "while :; do :; done"})
			// Let the loop get going.
			time.Sleep(time.Second)
			m1, err := taskMetrics(ctx, lt.task)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			m2, err := taskMetrics(ctx, lt.task)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("metrics 1: %v", m1)
			t.Logf("metrics 2: %v", m2)
			if m2.cpuNs <= m1.cpuNs {
				t.Errorf("CPU usage of a busy loop did not rise in 1s: %v then %v", time.Duration(m1.cpuNs), time.Duration(m2.cpuNs))
			} else if rise := time.Duration(m2.cpuNs - m1.cpuNs); rise < 100*time.Millisecond {
				t.Errorf("CPU usage of a busy loop rose by only %v in 1s", rise)
			}
			if m2.mem == 0 {
				t.Errorf("memory usage is 0: %v", m2)
			}
			if m2.memLimit == 0 {
				t.Errorf("memory limit is 0: %v", m2)
			}
			e.killAndDelete(ctx, t, lt.container, lt.task, lt.shimAddr)
		})

		// CPU usage is cumulative: the time of processes that exited stays
		// counted, or kubelet's rate (usage_nano_cores) goes wild.
		t.Run("cpu-cumulative", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(bctx, taskTimeout)
			defer cancel()
			// The busy child spins until told to stop: how long it runs does
			// not depend on how busy the machine is.
			lt := e.start(ctx, t, e.id("cumul"), []string{"sh", "-c",
				"sh -c 'echo child-start; while [ ! -e /tmp/stop ]; do :; done'; echo child-done; exec sleep 100000"})
			if !waitOutput(ctx, lt.stdout, "child-start", 30*time.Second) {
				t.Fatalf("the busy child did not start within 30s; stdout %q", lt.stdout.String())
			}
			time.Sleep(500 * time.Millisecond)
			m1, err := taskMetrics(ctx, lt.task)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(lt.stdout.String(), "child-done") {
				t.Fatalf("the busy child finished before it was told to; stdout %q", lt.stdout.String())
			}
			if _, err := execRun(ctx, lt.container, lt.task, "stop", nil, "touch", "/tmp/stop"); err != nil {
				t.Fatal(err)
			}
			if !waitOutput(ctx, lt.stdout, "child-done", 60*time.Second) {
				t.Fatalf("the busy child did not finish within 60s; stdout %q", lt.stdout.String())
			}
			t.Logf("the child finished %v after start", time.Since(lt.startedAt).Round(time.Millisecond))
			time.Sleep(500 * time.Millisecond)
			m2, err := taskMetrics(ctx, lt.task)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("while the child ran: %v", m1)
			t.Logf("after it exited:     %v", m2)
			if m2.cpuNs < m1.cpuNs {
				t.Errorf("cumulative CPU usage went back from %v to %v when a process exited", time.Duration(m1.cpuNs), time.Duration(m2.cpuNs))
			}
			// Nor does it go back while the container sleeps.
			series := []uint64{m2.cpuNs}
			for range 8 {
				time.Sleep(300 * time.Millisecond)
				m, err := taskMetrics(ctx, lt.task)
				if err != nil {
					t.Fatal(err)
				}
				series = append(series, m.cpuNs)
			}
			for i := 1; i < len(series); i++ {
				if series[i] < series[i-1] {
					t.Errorf("cumulative CPU usage of a sleeping container went back: %v", durations(series))
					break
				}
			}
			e.killAndDelete(ctx, t, lt.container, lt.task, lt.shimAddr)
		})

		t.Run("memory-usage-64m", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(bctx, taskTimeout)
			defer cancel()
			id := e.id("mem64")
			lt := e.start(ctx, t, id, []string{"sh", "-c",
				"dd if=/dev/zero of=/dev/shm/x bs=1M count=64 2>/dev/null && echo ready && exec sleep 100000"})
			if !waitOutput(ctx, lt.stdout, "ready", 60*time.Second) {
				t.Fatalf("the container did not write 64 MiB to /dev/shm within 60s; stdout %q stderr %q", lt.stdout.String(), lt.stderr.String())
			}
			t.Logf("64 MiB written %v after start", time.Since(lt.startedAt).Round(time.Millisecond))
			m, ok, err := waitMetrics(ctx, lt.task, 10*time.Second, func(m metrics) bool { return m.mem >= 64*mib })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("metrics: %v", m)
			if !ok {
				t.Errorf("memory usage %d bytes (%d MiB) with 64 MiB in tmpfs, want at least 64 MiB", m.mem, m.mem/mib)
			}
			e.killAndDelete(ctx, t, lt.container, lt.task, lt.shimAddr)
		})

		t.Run("update-memory-limit", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(bctx, taskTimeout)
			defer cancel()
			id := e.id("update")
			lt := e.start(ctx, t, id, []string{"sleep", "100000"}, oci.WithMemoryLimit(512*mib))
			cgPath, err := containerCgroupsPath(ctx, lt.container)
			if err != nil {
				t.Fatal(err)
			}
			cgDir := hostMemoryCgroup(cgPath)
			// The sandbox runs in the container's cgroup: that is where the
			// host enforces the limit.
			if got, err := pidMemoryCgroup(lt.task.Pid()); err != nil {
				t.Errorf("memory cgroup of the sandbox (task pid %d): %v", lt.task.Pid(), err)
			} else if got != cgPath {
				t.Errorf("the sandbox (task pid %d) is in memory cgroup %q, want the spec's cgroupsPath %q", lt.task.Pid(), got, cgPath)
			}
			if got, err := hostMemoryLimit(cgDir); err != nil {
				t.Errorf("host cgroup limit before Update: %v", err)
			} else if got != strconv.Itoa(512*mib) {
				t.Errorf("host cgroup %s limit %s before Update, want %d (the spec's)", cgDir, got, 512*mib)
			}
			m, err := taskMetrics(ctx, lt.task)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("before Update: %v", m)
			if m.memLimit != 512*mib {
				t.Errorf("metrics memory limit %d before Update, want %d", m.memLimit, 512*mib)
			}

			limit := int64(256 * mib)
			if err := lt.task.Update(ctx, client.WithResources(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})); err != nil {
				t.Fatalf("Update memory limit to %d: %v", limit, err)
			}
			m, err = taskMetrics(ctx, lt.task)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("after Update: %v", m)
			if m.memLimit != uint64(limit) {
				t.Errorf("metrics memory limit %d after Update, want %d", m.memLimit, limit)
			}
			if got, err := hostMemoryLimit(cgDir); err != nil {
				t.Errorf("host cgroup limit after Update: %v", err)
			} else if got != strconv.FormatInt(limit, 10) {
				t.Errorf("host cgroup %s limit %s after Update, want %d", cgDir, got, limit)
			}

			// Invalid updates fail, name the field and change nothing.
			one, neg, negQuota := int64(1), int64(-5), int64(-7)
			invalid := []struct {
				name string
				res  *specs.LinuxResources
				want string
			}{
				{"memory-1-byte", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &one}}, "memory limit"},
				{"memory-negative", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &neg}}, "memory limit"},
				{"cpu-quota-negative", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &negQuota}}, "cpu quota"},
			}
			for _, inv := range invalid {
				err := lt.task.Update(ctx, client.WithResources(inv.res))
				switch {
				case err == nil:
					t.Errorf("%s: Update succeeded, want InvalidArgument naming %q", inv.name, inv.want)
				case !errdefs.IsInvalidArgument(err):
					t.Errorf("%s: Update error is not InvalidArgument: %v", inv.name, err)
				case !strings.Contains(err.Error(), inv.want):
					t.Errorf("%s: Update error does not name %q: %v", inv.name, inv.want, err)
				default:
					t.Logf("%s: Update failed as expected: %v", inv.name, err)
				}
			}
			if m, err := taskMetrics(ctx, lt.task); err != nil {
				t.Error(err)
			} else if m.memLimit != uint64(limit) {
				t.Errorf("metrics memory limit %d after the invalid updates, want %d still", m.memLimit, limit)
			}
			if got, err := hostMemoryLimit(cgDir); err != nil {
				t.Errorf("host cgroup limit after the invalid updates: %v", err)
			} else if got != strconv.FormatInt(limit, 10) {
				t.Errorf("host cgroup %s limit %s after the invalid updates, want %d still", cgDir, got, limit)
			}

			// CPU limits land in the host's cpu cgroup.
			quota, period := int64(50000), uint64(100000)
			if err := lt.task.Update(ctx, client.WithResources(&specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}})); err != nil {
				t.Errorf("Update cpu quota %d/%d: %v", quota, period, err)
			} else if got, err := hostCPUQuota(cgPath); err != nil {
				t.Errorf("host cgroup cpu quota after Update: %v", err)
			} else if got != "50000" && got != "50000 100000" {
				t.Errorf("host cgroup cpu quota of %s is %q after Update, want 50000 per 100000us", cgPath, got)
			}

			// -1 lifts the memory limit again.
			unlimited := int64(-1)
			if err := lt.task.Update(ctx, client.WithResources(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &unlimited}})); err != nil {
				t.Errorf("Update memory limit to -1 (unlimited): %v", err)
			} else {
				if m, err := taskMetrics(ctx, lt.task); err != nil {
					t.Error(err)
				} else if m.memLimit <= 512*mib {
					t.Errorf("metrics memory limit %d after lifting the limit, want more than the %d of the spec", m.memLimit, 512*mib)
				}
				if got, err := hostMemoryLimit(cgDir); err != nil {
					t.Errorf("host cgroup limit after lifting it: %v", err)
				} else if n, err := strconv.ParseUint(got, 10, 64); got != "max" && (err != nil || n < 1<<60) {
					t.Errorf("host cgroup %s limit %s after Update to -1, want unlimited", cgDir, got)
				}
			}
			e.killAndDelete(ctx, t, lt.container, lt.task, lt.shimAddr)
			// The sandbox's cgroup goes with it.
			harness.AssertNoLeftovers(t, d, id, e.cfg.Root, cgDir)
		})

		t.Run("oom-kill", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(bctx, taskTimeout)
			defer cancel()
			evctx, evcancel := context.WithCancel(ctx)
			defer evcancel()
			evs := subscribeTasks(evctx, t, d.Client)

			id := e.id("oom")
			lt := e.start(ctx, t, id, []string{"sh", "-c",
				"dd if=/dev/zero of=/dev/shm/x bs=1M count=256; echo survived; exec sleep 100000"},
				oci.WithMemoryLimit(64*mib))
			cgPath, err := containerCgroupsPath(ctx, lt.container)
			if err != nil {
				t.Fatal(err)
			}
			cgDir := hostMemoryCgroup(cgPath)
			statusC, err := lt.task.Wait(ctx)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			select {
			case st := <-statusC:
				if st.Error() != nil {
					t.Errorf("exit of %s: %v", id, st.Error())
				} else if st.ExitCode() != 137 {
					t.Errorf("%s allocating 256 MiB under a 64 MiB limit exited %d, want 137 (OOM kill); stdout %q stderr %q",
						id, st.ExitCode(), lt.stdout.String(), lt.stderr.String())
				}
			case <-ctx.Done():
				t.Fatalf("%s allocating 256 MiB under a 64 MiB limit was not killed (stdout %q, stderr %q)", id, lt.stdout.String(), lt.stderr.String())
			}
			if _, ok := evs.waitFor(ctx, 10*time.Second, func(ev taskEvent) bool {
				return ev.topic == "/tasks/exit" && ev.container == id
			}); !ok {
				t.Errorf("no /tasks/exit event for %s within 10s", id)
			}
			oomAt, exitAt := -1, -1
			all := evs.of(id)
			t.Logf("events of %s:\n%s", id, eventList(all))
			for i, ev := range all {
				switch {
				case ev.topic == "/tasks/oom" && oomAt < 0:
					oomAt = i
				case ev.topic == "/tasks/exit" && ev.id == id && exitAt < 0:
					exitAt = i
					if ev.exitStatus != 137 {
						t.Errorf("/tasks/exit of %s carries status %d, want 137", id, ev.exitStatus)
					}
				}
			}
			switch {
			case oomAt < 0:
				t.Errorf("no /tasks/oom event for %s; its events:\n%s", id, eventList(all))
			case exitAt >= 0 && oomAt > exitAt:
				t.Errorf("/tasks/oom of %s came after its /tasks/exit; its events:\n%s", id, eventList(all))
			}
			if err := evs.errors(); err != nil {
				t.Errorf("event subscription: %v", err)
			}
			if st, err := lt.task.Delete(ctx); err != nil {
				t.Errorf("Delete task: %v", err)
			} else if st.ExitCode() != 137 {
				t.Errorf("Delete of %s reported exit %d, want 137", id, st.ExitCode())
			}
			if err := lt.container.Delete(ctx, client.WithSnapshotCleanup); err != nil {
				t.Errorf("Delete container: %v", err)
			}
			harness.AssertNoLeftovers(t, d, id, e.cfg.Root, lt.shimAddr, cgDir)
		})

		// containerd 2.x asks the shim for its -info itself (introspection).
		if !strings.HasPrefix(d.Version, "1.") {
			t.Run("runtime-info", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
				defer cancel()
				info, err := d.Client.RuntimeInfo(ctx, harness.RuntimeName, e.opts)
				if err != nil {
					t.Fatalf("RuntimeInfo: %v", err)
				}
				f, ok := info.Features.(*features.Features)
				if !ok {
					t.Fatalf("RuntimeInfo features are a %T, want runtime-spec features", info.Features)
				}
				t.Logf("RuntimeInfo: %s %s, cgroup %+v", info.Name, info.Version.Version, cgroupFeatures(f))
				checkCgroupFeatures(t, f)
			})
		}
	})
}

// durations formats nanosecond counts as durations.
func durations(ns []uint64) string {
	var out []string
	for _, n := range ns {
		out = append(out, time.Duration(n).String())
	}
	return strings.Join(out, " ")
}

// waitOutput waits until b contains want, or ctx or the timeout ends.
func waitOutput(ctx context.Context, b *harness.Buffer, want string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
