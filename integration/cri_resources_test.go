package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	shimpkg "github.com/gvisor-shim/containerd-shim-runsc-v1/shim"
)

// TestCRIResources: resources of runsc pods through the CRI, as kubelet
// uses them: container stats, UpdateContainerResources, pod-level limits
// and OOM kills, against a CRI daemon of each version.
func TestCRIResources(t *testing.T) {
	forEachCRIDaemon(t, func(t *testing.T, e *criEnv) {
		t.Run("cri-stats", e.testCRIStats)
		t.Run("cri-pod-stats", e.testCRIPodStats)
		t.Run("cri-stats-tmpfs", e.testCRIStatsTmpfs)
		t.Run("cri-update", e.testCRIUpdate)
		t.Run("cri-pod-resources", e.testCRIPodResources)
		t.Run("cri-oom", e.testCRIOOM)
	})
}

// runResourcePod runs a runsc pod under a cgroup parent of its own, as
// kubelet does with the cgroupfs driver, so that its sandbox has a host
// cgroup the shim sizes. mutate may change the config further. It returns
// the pod and its cgroup parent. A cleanup fails t if the pod's cgroups
// outlive its removal, and removes the parent (kubelet's in real life).
func (e *criEnv) runResourcePod(t *testing.T, name string, mutate func(*runtimeapi.PodSandboxConfig)) (*criPod, string) {
	t.Helper()
	parent := fmt.Sprintf("/runsc-it-pods/%s-%s-%s", name, e.v, runID)
	p := e.runPod(t, name, harness.HandlerRunsc, func(cfg *runtimeapi.PodSandboxConfig) {
		cfg.Linux.CgroupParent = parent
		if mutate != nil {
			mutate(cfg)
		}
	})
	// Registered after runPod's cleanup, so it runs before it: remove the
	// pod here if the test did not, then check and clean the cgroups.
	t.Cleanup(func() {
		if !p.removed {
			p.stopRemove(t, false)
		} else if left := waitNoPodCgroups(parent, harness.LeftoverGrace); len(left) > 0 {
			t.Errorf("pod %s left its cgroups behind:\n  %s", p.id, strings.Join(left, "\n  "))
		}
		for _, dir := range append(podCgroups(parent), cgroupDirs(parent)...) {
			_ = os.Remove(dir)
		}
		for _, dir := range cgroupDirs(filepath.Dir(parent)) {
			_ = os.Remove(dir) // fails while another pod uses it
		}
	})
	return p, parent
}

// cgroupDirs lists the directories of cgroup path in every hierarchy.
func cgroupDirs(path string) []string {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	if cgroups.Mode() == cgroups.Unified {
		roots = []string{"/sys/fs/cgroup"}
	}
	var out []string
	for _, root := range roots {
		dir := filepath.Join(root, path)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			out = append(out, dir)
		}
	}
	return out
}

// podCgroups lists the cgroups below a pod's cgroup parent in every
// hierarchy.
func podCgroups(parent string) []string {
	var out []string
	for _, dir := range cgroupDirs(parent) {
		entries, _ := os.ReadDir(dir)
		for _, en := range entries {
			if en.IsDir() {
				out = append(out, filepath.Join(dir, en.Name()))
			}
		}
	}
	return out
}

// waitNoPodCgroups polls podCgroups until it is empty or grace passed.
func waitNoPodCgroups(parent string, grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for {
		left := podCgroups(parent)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// criSandboxInfo is the part of the verbose PodSandboxStatus info the
// resource tests use beyond harness.SandboxInfo.
type criSandboxInfo struct {
	Pid         int `json:"pid"`
	RuntimeSpec struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"runtimeSpec"`
}

// sandboxInfo decodes the verbose PodSandboxStatus of the pod.
func (p *criPod) sandboxInfo(t *testing.T) criSandboxInfo {
	t.Helper()
	st, err := p.e.c.Runtime.PodSandboxStatus(criCtx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id, Verbose: true})
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: %v", p.id, err)
	}
	var si criSandboxInfo
	raw, ok := st.GetInfo()["info"]
	if !ok {
		t.Fatalf("verbose PodSandboxStatus of %s has no \"info\"", p.id)
	}
	if err := json.Unmarshal([]byte(raw), &si); err != nil {
		t.Fatalf("sandbox info of %s: %v", p.id, err)
	}
	if si.Pid <= 0 {
		t.Fatalf("pod %s: sandbox pid %d", p.id, si.Pid)
	}
	return si
}

// sandboxLimits reads the memory limit and CPU quota of the host cgroup of
// the sandbox process pid, and the memory cgroup's directory:
// memory.limit_in_bytes and cpu.cfs_quota_us on v1 hosts, memory.max and
// the quota of cpu.max on v2 hosts.
func sandboxLimits(t *testing.T, pid int) (mem, quota, memDir string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatalf("cgroups of sandbox pid %d: %v", pid, err)
	}
	read := func(file string) string {
		v, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("sandbox pid %d: %v", pid, err)
		}
		return strings.TrimSpace(string(v))
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if cgroups.Mode() == cgroups.Unified {
			if f[0] == "0" {
				dir := filepath.Join("/sys/fs/cgroup", f[2])
				return read(filepath.Join(dir, "memory.max")), strings.Fields(read(filepath.Join(dir, "cpu.max")))[0], dir
			}
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			switch c {
			case "memory":
				memDir = filepath.Join("/sys/fs/cgroup/memory", f[2])
				mem = read(filepath.Join(memDir, "memory.limit_in_bytes"))
			case "cpu":
				quota = read(filepath.Join("/sys/fs/cgroup/cpu", f[2], "cpu.cfs_quota_us"))
			}
		}
	}
	if mem == "" || quota == "" {
		t.Fatalf("sandbox pid %d: no memory or cpu cgroup in:\n%s", pid, b)
	}
	return mem, quota, memDir
}

// containerStats is the CRI ContainerStats of container id.
func (e *criEnv) containerStats(t *testing.T, id string) *runtimeapi.ContainerStats {
	t.Helper()
	resp, err := e.c.Runtime.ContainerStats(criCtx(t), &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStats %s: %v", id, err)
	}
	if resp.GetStats() == nil {
		t.Fatalf("ContainerStats %s: no stats", id)
	}
	return resp.GetStats()
}

// listContainerStats is ListContainerStats of the pod, by container id.
func (e *criEnv) listContainerStats(t *testing.T, podID string) map[string]*runtimeapi.ContainerStats {
	t.Helper()
	list, err := e.c.Runtime.ListContainerStats(criCtx(t), &runtimeapi.ListContainerStatsRequest{
		Filter: &runtimeapi.ContainerStatsFilter{PodSandboxId: podID}})
	if err != nil {
		t.Fatalf("ListContainerStats of pod %s: %v", podID, err)
	}
	out := map[string]*runtimeapi.ContainerStats{}
	for _, s := range list.GetStats() {
		out[s.GetAttributes().GetId()] = s
	}
	return out
}

// describeStats summarises a container's CRI stats.
func describeStats(s *runtimeapi.ContainerStats) string {
	return fmt.Sprintf("%s: cpu %v, memory working set %d usage %d",
		s.GetAttributes().GetMetadata().GetName(),
		time.Duration(s.GetCpu().GetUsageCoreNanoSeconds().GetValue()),
		s.GetMemory().GetWorkingSetBytes().GetValue(), s.GetMemory().GetUsageBytes().GetValue())
}

func cpuNs(s *runtimeapi.ContainerStats) uint64 {
	return s.GetCpu().GetUsageCoreNanoSeconds().GetValue()
}

// checkCPURise fails t unless the busy container's CPU rose by at least
// 100ms between two stats read about 1s apart, and its working set is set.
func checkCPURise(t *testing.T, api string, s1, s2 *runtimeapi.ContainerStats) {
	t.Helper()
	t.Logf("%s: %s", api, describeStats(s1))
	t.Logf("%s 1s later: %s", api, describeStats(s2))
	c1, c2 := cpuNs(s1), cpuNs(s2)
	if c1 == 0 || c2 <= c1 || time.Duration(c2-c1) < 100*time.Millisecond {
		t.Errorf("%s: CPU usage of the busy container %v then %v 1s later, want non-zero and rising by at least 100ms",
			api, time.Duration(c1), time.Duration(c2))
	}
	if s2.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("%s: memory working set of the busy container is 0 (%s)", api, describeStats(s2))
	}
}

// testCRIStats: ContainerStats and ListContainerStats of pod containers:
// a busy container's CPU rises and its working set is non-zero; a sleeping
// container's CPU usage is cumulative (kubelet derives nano cores from it)
// and never goes back.
func (e *criEnv) testCRIStats(t *testing.T) {
	p, _ := e.runResourcePod(t, "stats", nil)
	busy := p.start(t, criContainer{name: "busy", command: []string{"sh", "-c", "while :; do :; done"}})
	sleeper := p.start(t, criContainer{name: "sleeper", command: []string{"sh", "-c",
		"sh -c 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done'; exec sleep 100000"}})
	time.Sleep(time.Second)

	s1 := e.containerStats(t, busy)
	time.Sleep(time.Second)
	s2 := e.containerStats(t, busy)
	checkCPURise(t, "ContainerStats", s1, s2)

	l1 := e.listContainerStats(t, p.id)
	time.Sleep(time.Second)
	l2 := e.listContainerStats(t, p.id)
	for _, id := range []string{busy, sleeper} {
		if l1[id] == nil || l2[id] == nil {
			t.Fatalf("ListContainerStats of pod %s lacks container %s (listed %d, then %d)", p.id, id, len(l1), len(l2))
		}
	}
	checkCPURise(t, "ListContainerStats", l1[busy], l2[busy])
	// kubelet's rssBytes: filled (it was always 0), never above the usage.
	if m := l2[busy].GetMemory(); m.GetRssBytes().GetValue() == 0 || m.GetRssBytes().GetValue() > m.GetUsageBytes().GetValue() {
		t.Errorf("busy container: rss %d bytes, usage %d: want 0 < rss <= usage", m.GetRssBytes().GetValue(), m.GetUsageBytes().GetValue())
	}
	if cpuNs(l1[busy]) < cpuNs(s2) {
		t.Errorf("ListContainerStats: busy container's CPU %v below the earlier ContainerStats %v",
			time.Duration(cpuNs(l1[busy])), time.Duration(cpuNs(s2)))
	}

	// The sleeper worked in a child process and now sleeps: its CPU usage
	// never goes back, whichever API reads it.
	var series []uint64
	for i := range 12 {
		if i%2 == 0 {
			series = append(series, cpuNs(e.containerStats(t, sleeper)))
		} else {
			s := e.listContainerStats(t, p.id)[sleeper]
			if s == nil {
				t.Fatalf("ListContainerStats of pod %s lacks container %s", p.id, sleeper)
			}
			series = append(series, cpuNs(s))
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("CPU usage of the sleeping container: %s", durations(series))
	if series[0] == 0 {
		t.Errorf("CPU usage of the sleeping container is 0 after its busy loop: %s", durations(series))
	}
	for i := 1; i < len(series); i++ {
		if series[i] < series[i-1] {
			t.Errorf("cumulative CPU usage of a sleeping pod container went back: %s", durations(series))
			break
		}
	}
	p.stopRemove(t, true)
}

// hostFigures are what the host kernel accounts in a cgroup: memory usage,
// working set (usage without the inactive file cache, as containerd and
// kubelet compute it) and CPU time in ns.
type hostFigures struct{ usage, workingSet, cpu uint64 }

// sandboxHostFigures reads the host cgroup of the sandbox process pid.
func sandboxHostFigures(t *testing.T, pid int) hostFigures {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatalf("cgroups of sandbox pid %d: %v", pid, err)
	}
	num := func(file, key string) uint64 {
		v, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("sandbox pid %d: %v", pid, err)
		}
		if key == "" {
			n, err := strconv.ParseUint(strings.TrimSpace(string(v)), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			return n
		}
		for _, line := range strings.Split(string(v), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == key {
				n, _ := strconv.ParseUint(f[1], 10, 64)
				return n
			}
		}
		t.Fatalf("%s: no %s", file, key)
		return 0
	}
	var h hostFigures
	var inactive uint64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if cgroups.Mode() == cgroups.Unified {
			if f[0] == "0" {
				dir := filepath.Join("/sys/fs/cgroup", f[2])
				h.usage = num(filepath.Join(dir, "memory.current"), "")
				inactive = num(filepath.Join(dir, "memory.stat"), "inactive_file")
				h.cpu = num(filepath.Join(dir, "cpu.stat"), "usage_usec") * 1000
			}
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			switch c {
			case "memory":
				dir := filepath.Join("/sys/fs/cgroup/memory", f[2])
				h.usage = num(filepath.Join(dir, "memory.usage_in_bytes"), "")
				inactive = num(filepath.Join(dir, "memory.stat"), "total_inactive_file")
			case "cpuacct":
				h.cpu = num(filepath.Join("/sys/fs/cgroup/cpuacct", f[2], "cpuacct.usage"), "")
			}
		}
	}
	if h.usage == 0 || h.cpu == 0 {
		t.Fatalf("sandbox pid %d: no memory or CPU figures in its cgroups:\n%s", pid, b)
	}
	if inactive < h.usage {
		h.workingSet = h.usage - inactive
	}
	return h
}

// statsMemorySlack is how far a sandbox's memory may move between two
// readings of its host cgroup a few milliseconds apart (one
// ListPodSandboxStats call in between) while its only container loops
// without allocating: the Sentry's and gofer's own page faults and the
// kernel's per-CPU charge batching (up to 64 pages per CPU on v1 hosts).
const statsMemorySlack = 2 << 20

// within reports whether v lies between a and b (either order), widened
// by slack.
func within(v, a, b, slack uint64) bool {
	lo, hi := min(a, b), max(a, b)
	return v+slack >= lo && v <= hi+slack
}

// testCRIPodStats: ListPodSandboxStats of a runsc pod reports its sandbox's
// host cgroup (containerd reads the pod's cgroup; the sandbox is all of it):
// CPU time between two readings of the host counter taken around the
// call, memory usage and working set within statsMemorySlack of them. And a
// busy container's usageNanoCores, which containerd computes from
// consecutive samples, reads neither 0 nor more than the machine's CPUs
// across consecutive polls.
func (e *criEnv) testCRIPodStats(t *testing.T) {
	p, _ := e.runResourcePod(t, "podstats", nil)
	busy := p.start(t, criContainer{name: "busy", command: []string{"sh", "-c", "while :; do :; done"}})
	pid := p.sandboxInfo(t).Pid
	list := func() *runtimeapi.PodSandboxStats {
		t.Helper()
		resp, err := e.c.Runtime.ListPodSandboxStats(criCtx(t), &runtimeapi.ListPodSandboxStatsRequest{
			Filter: &runtimeapi.PodSandboxStatsFilter{Id: p.id}})
		if status.Code(err) == codes.Unimplemented {
			t.Skipf("containerd %s: ListPodSandboxStats: %v", e.v, err)
		}
		if err != nil {
			t.Fatalf("ListPodSandboxStats of pod %s: %v", p.id, err)
		}
		for _, s := range resp.GetStats() {
			if s.GetAttributes().GetId() == p.id {
				return s
			}
		}
		t.Fatalf("ListPodSandboxStats lacks pod %s (%d listed)", p.id, len(resp.GetStats()))
		return nil
	}
	// The busy container's CPU time reaches the pod's cgroup.
	deadline := time.Now().Add(10 * time.Second)
	for sandboxHostFigures(t, pid).cpu < uint64(200*time.Millisecond) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 3 {
		before := sandboxHostFigures(t, pid)
		ps := list()
		after := sandboxHostFigures(t, pid)
		cpu := ps.GetLinux().GetCpu().GetUsageCoreNanoSeconds().GetValue()
		mem := ps.GetLinux().GetMemory()
		t.Logf("poll %d: pod cpu %v (host %v..%v), usage %d (host %d..%d), working set %d (host %d..%d)", i,
			time.Duration(cpu), time.Duration(before.cpu), time.Duration(after.cpu),
			mem.GetUsageBytes().GetValue(), before.usage, after.usage,
			mem.GetWorkingSetBytes().GetValue(), before.workingSet, after.workingSet)
		if cpu < before.cpu || cpu > after.cpu {
			t.Errorf("poll %d: pod CPU %v outside the host cgroup's %v..%v read around the call", i,
				time.Duration(cpu), time.Duration(before.cpu), time.Duration(after.cpu))
		}
		if u := mem.GetUsageBytes().GetValue(); !within(u, before.usage, after.usage, statsMemorySlack) {
			t.Errorf("poll %d: pod memory usage %d bytes, host cgroup %d..%d (slack %d)", i, u, before.usage, after.usage, statsMemorySlack)
		}
		if w := mem.GetWorkingSetBytes().GetValue(); !within(w, before.workingSet, after.workingSet, statsMemorySlack) {
			t.Errorf("poll %d: pod working set %d bytes, host cgroup %d..%d (slack %d)", i, w, before.workingSet, after.workingSet, statsMemorySlack)
		}
	}

	// usageNanoCores of the busy container over consecutive polls, about a
	// second apart (containerd 2.x samples every second; 1.6 rates each
	// reading against the previous one).
	ncpu := uint64(runtime.NumCPU())
	var cores []string
	for i := range 6 {
		time.Sleep(1100 * time.Millisecond)
		s := e.listContainerStats(t, p.id)[busy]
		if s == nil {
			t.Fatalf("ListContainerStats of pod %s lacks container %s", p.id, busy)
		}
		nc := s.GetCpu().GetUsageNanoCores().GetValue()
		cores = append(cores, fmt.Sprintf("%.2f", float64(nc)/1e9))
		if i == 0 && e.v == "1.6" {
			continue // rated against ContainerStats calls of other tests
		}
		if nc == 0 || nc > ncpu*11e8 {
			t.Errorf("poll %d: usageNanoCores of the busy container %d, want 0 < n <= %d CPUs", i, nc, ncpu)
		}
	}
	t.Logf("usageNanoCores of the busy container, in cores: %s", strings.Join(cores, " "))
	p.stopRemove(t, true)
}

// testCRIStatsTmpfs: memory a container writes to tmpfs (/dev/shm) is
// counted in its reported memory, as the host kernel counts it in the
// sandbox's cgroup.
func (e *criEnv) testCRIStatsTmpfs(t *testing.T) {
	p, _ := e.runResourcePod(t, "stmpfs", nil)
	id := p.start(t, criContainer{name: "writer", command: []string{"sleep", "100000"}})
	pid := p.sandboxInfo(t).Pid
	const fill = 64 << 20
	h0 := sandboxHostFigures(t, pid)
	w0 := e.containerStats(t, id).GetMemory().GetWorkingSetBytes().GetValue()
	p.execOK(t, id, "dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1048576", "count=64")
	h1 := sandboxHostFigures(t, pid)
	if h1.workingSet < h0.workingSet+fill*3/4 {
		t.Fatalf("host cgroup working set %d -> %d after writing %d bytes to /dev/shm: the host did not count it", h0.workingSet, h1.workingSet, fill)
	}
	// The Sentry accounts the pages when it reports: read until it does,
	// or fail after 10 s.
	var w1 uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		w1 = e.containerStats(t, id).GetMemory().GetWorkingSetBytes().GetValue()
		if w1 >= w0+fill*3/4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("/dev/shm %d MiB: host cgroup working set %d -> %d, reported %d -> %d", fill>>20, h0.workingSet, h1.workingSet, w0, w1)
	if w1 < w0+fill*3/4 {
		t.Errorf("reported working set %d -> %d after writing %d bytes to /dev/shm (host cgroup %d -> %d): tmpfs not counted",
			w0, w1, fill, h0.workingSet, h1.workingSet)
	}
	p.stopRemove(t, true)
}

// testCRIUpdate: UpdateContainerResources of a pod container resizes the
// pod's sandbox cgroup to its containers' limits + container_overhead_mib
// each (shimpkg.DefaultContainerOverheadMiB) + the sandbox's own memory (as
// measured by the shim when the container joined); an invalid
// update fails naming the memory limit and changes nothing.
func (e *criEnv) testCRIUpdate(t *testing.T) {
	p, parent := e.runResourcePod(t, "update", nil)
	id := p.start(t, criContainer{name: "limited", command: []string{"sleep", "100000"},
		mutate: func(cc *runtimeapi.ContainerConfig) {
			cc.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 128 * mib, CpuQuota: 100000, CpuPeriod: 100000}
		}})
	pid := p.sandboxInfo(t).Pid
	mem, quota, memDir := sandboxLimits(t, pid)
	t.Logf("sandbox pid %d: memory cgroup %s, limit %s, cpu quota %s", pid, memDir, mem, quota)
	if !strings.Contains(memDir, parent+"/") {
		t.Errorf("sandbox memory cgroup %s is not under the pod's cgroup parent %s", memDir, parent)
	}
	own := sandboxOwnMemory(t, mem, 128*mib)
	if quota != "100000" {
		t.Errorf("sandbox cgroup with one 128 MiB, 1 CPU container: cpu quota %s, want 100000", quota)
	}

	if _, err := e.c.Runtime.UpdateContainerResources(criCtx(t), &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: id, Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 96 * mib, CpuQuota: 50000, CpuPeriod: 100000}}); err != nil {
		t.Fatalf("UpdateContainerResources to 96 MiB, 0.5 CPU: %v", err)
	}
	mem, quota, _ = sandboxLimits(t, pid)
	if want := strconv.Itoa((96+shimpkg.DefaultContainerOverheadMiB)*mib + own); mem != want || quota != "50000" {
		t.Errorf("sandbox cgroup after updating the container to 96 MiB, 0.5 CPU: memory limit %s cpu quota %s, want %s and 50000", mem, quota, want)
	}
	if res := p.status(t, id).GetResources().GetLinux(); res != nil {
		t.Logf("ContainerStatus resources after the update: %v", res)
		if res.GetMemoryLimitInBytes() != 96*mib || res.GetCpuQuota() != 50000 {
			t.Errorf("ContainerStatus resources after the update: %v, want 96 MiB and quota 50000", res)
		}
	}

	_, err := e.c.Runtime.UpdateContainerResources(criCtx(t), &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: id, Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1, CpuQuota: 50000, CpuPeriod: 100000}})
	switch {
	case err == nil:
		t.Errorf("UpdateContainerResources with a 1-byte memory limit succeeded")
	case !strings.Contains(strings.ToLower(err.Error()), "memory limit"):
		t.Errorf("UpdateContainerResources with a 1-byte memory limit: the error does not name the memory limit: %v", err)
	default:
		t.Logf("invalid update failed as expected: %v", err)
	}
	mem, quota, _ = sandboxLimits(t, pid)
	if want := strconv.Itoa((96+shimpkg.DefaultContainerOverheadMiB)*mib + own); mem != want || quota != "50000" {
		t.Errorf("sandbox cgroup after the invalid update: memory limit %s cpu quota %s, want %s and 50000 still", mem, quota, want)
	}
	st := p.status(t, id)
	if st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container state %v after the updates, want running", st.GetState())
	}
	if res := st.GetResources().GetLinux(); res != nil && res.GetMemoryLimitInBytes() != 96*mib {
		t.Errorf("ContainerStatus resources after the invalid update: %v, want 96 MiB still", res)
	}
	if got := p.execOK(t, id, "echo", "alive"); got != "alive\n" {
		t.Errorf("exec after the updates printed %q", got)
	}
	p.stopRemove(t, true)
}

// testCRIPodResources: pod-level resources (kubelet's pod limits plus
// overhead), which containerd passes to the sandbox as the
// io.kubernetes.cri.sandbox-* annotations, size the sandbox cgroup whatever
// its containers ask.
func (e *criEnv) testCRIPodResources(t *testing.T) {
	p, _ := e.runResourcePod(t, "podres", func(cfg *runtimeapi.PodSandboxConfig) {
		cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 300 * mib, CpuQuota: 150000, CpuPeriod: 100000}
	})
	si := p.sandboxInfo(t)
	want := strconv.Itoa(300 * mib)
	ann := si.RuntimeSpec.Annotations
	t.Logf("sandbox annotations: memory %q cpu quota %q period %q",
		ann["io.kubernetes.cri.sandbox-memory"], ann["io.kubernetes.cri.sandbox-cpu-quota"], ann["io.kubernetes.cri.sandbox-cpu-period"])
	if got := ann["io.kubernetes.cri.sandbox-memory"]; got != want {
		t.Fatalf("containerd did not pass the pod's memory limit: annotation io.kubernetes.cri.sandbox-memory = %q, want %s", got, want)
	}
	mem, quota, memDir := sandboxLimits(t, si.Pid)
	t.Logf("sandbox pid %d: memory cgroup %s, limit %s, cpu quota %s", si.Pid, memDir, mem, quota)
	if mem != want || quota != "150000" {
		t.Errorf("sandbox cgroup of a pod limited to 300 MiB, 1.5 CPU: memory limit %s cpu quota %s, want %s and 150000", mem, quota, want)
	}
	id := p.start(t, criContainer{name: "limited", command: []string{"sleep", "100000"},
		mutate: func(cc *runtimeapi.ContainerConfig) {
			cc.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 128 * mib, CpuQuota: 50000, CpuPeriod: 100000}
		}})
	if mem, quota, _ := sandboxLimits(t, si.Pid); mem != want || quota != "150000" {
		t.Errorf("sandbox cgroup after a 128 MiB container joined: memory limit %s cpu quota %s, want the pod's %s and 150000", mem, quota, want)
	}
	if _, err := e.c.Runtime.UpdateContainerResources(criCtx(t), &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: id, Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 * mib, CpuQuota: 50000, CpuPeriod: 100000}}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	if mem, quota, _ := sandboxLimits(t, si.Pid); mem != want || quota != "150000" {
		t.Errorf("sandbox cgroup after the container's update to 64 MiB: memory limit %s cpu quota %s, want the pod's %s and 150000", mem, quota, want)
	}
	p.stopRemove(t, true)
}

// testCRIOOM: a pod container limited to 64 MiB that allocates 256 MiB (in
// the Sentry: dd's buffer) is OOM-killed: CRI reports OOMKilled and 137, and
// the pod then goes away without leaving anything, its cgroups included.
// Not by filling /dev/shm as TestResources does: in a CRI pod /dev/shm is a
// bind mount of containerd's sandbox shm, a 64 MiB host tmpfs served by the
// gofer, so dd stops with ENOSPC at 64 MiB and nothing is charged to the
// sandbox. Under a 64 MiB limit the pod's cgroup is 64 MiB + the
// overheads (container_overhead_mib and the sandbox's own), and the host's
// OOM killer kills the sandbox itself.
func (e *criEnv) testCRIOOM(t *testing.T) {
	p, parent := e.runResourcePod(t, "oom", nil)
	// The OOM kill takes the whole sandbox and its cgroup with it: look for
	// the pod's cgroups before, so that their absence at the end means
	// something.
	if cgs := podCgroups(parent); len(cgs) == 0 {
		t.Errorf("no pod cgroup under %s while the pod runs: the cgroup check at the end would prove nothing", parent)
	} else {
		t.Logf("pod cgroups: %s", strings.Join(cgs, " "))
	}
	id := p.start(t, criContainer{name: "hog", command: []string{"sh", "-c",
		"dd if=/dev/zero of=/dev/null bs=256M count=1; echo survived; exec sleep 100000"},
		mutate: func(cc *runtimeapi.ContainerConfig) {
			cc.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 * mib}
		}})
	logPath := filepath.Join(p.config.LogDirectory, "hog", "0.log")
	var st *runtimeapi.ContainerStatus
	for deadline := time.Now().Add(criWaitTimeout); ; time.Sleep(100 * time.Millisecond) {
		if st = p.status(t, id); st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("a container allocating 256 MiB under a 64 MiB limit still %v after %s; its log:\n%s",
				st.GetState(), criWaitTimeout, log)
		}
	}
	t.Logf("status: %v exit code %d reason %q message %q", st.GetState(), st.GetExitCode(), st.GetReason(), st.GetMessage())
	if st.GetReason() != "OOMKilled" || st.GetExitCode() != 137 {
		log, _ := os.ReadFile(logPath)
		t.Errorf("a container allocating 256 MiB under a 64 MiB limit: exit code %d reason %q, want 137 OOMKilled; its log:\n%s",
			st.GetExitCode(), st.GetReason(), log)
	}
	p.stopRemove(t, true)
	if left := waitNoPodCgroups(parent, harness.LeftoverGrace); len(left) > 0 {
		t.Errorf("pod %s left its cgroups behind after StopPodSandbox+RemovePodSandbox:\n  %s", p.id, strings.Join(left, "\n  "))
	}
}

// sandboxOwnMemory is what the shim counted for a pod sandbox's own memory
// in its cgroup memory limit mem (one container limited to limit bytes
// joined it): mem - limit - container_overhead_mib. It fails the test
// unless that is what an idle sandbox plausibly uses (4-40 MiB).
func sandboxOwnMemory(t *testing.T, mem string, limit int) int {
	t.Helper()
	own := atoi(mem) - limit - shimpkg.DefaultContainerOverheadMiB*mib
	if own < 4*mib || own > 40*mib || own%mib != 0 {
		t.Errorf("sandbox cgroup memory limit %s = the container's %d MiB + %d MiB + %d bytes for the sandbox itself: want that last a whole number of MiB between 4 and 40",
			mem, limit/mib, shimpkg.DefaultContainerOverheadMiB, own)
	}
	return own
}
