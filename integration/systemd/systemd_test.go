//go:build systemd

// Package systemd tests the shim's systemd cgroup driver under a real
// systemd: `make test-systemd` boots systemd as PID 1 of a systemd-nspawn
// container (./nspawn.sh), builds this test binary and the shim on the
// host, and runs the binary inside as a systemd service with
// RUNSC_SHIM_SYSTEMD_TEST=1. It is behind the "systemd" build tag: the
// normal integration run (`go test ./integration/...`) does not build it,
// so it never shows up there as skipped.
package systemd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	apitypes "github.com/containerd/containerd/api/types"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/shim"
)

// Environment set by `make test-systemd`.
const (
	// testEnv enables the test: it must run under a systemd it may use.
	testEnv = "RUNSC_SHIM_SYSTEMD_TEST"
	// shimDirEnv is the directory of the shim binary built on the host.
	shimDirEnv = "RUNSC_SHIM_DIR"
	// pauseEnv is the static pause binary built on the host.
	pauseEnv = "RUNSC_SHIM_PAUSE"
)

const mib = 1 << 20

// buildPauseEnv makes the test binary build the static pause binary at
// that path and exit (on the host: the nspawn container has no gcc).
const buildPauseEnv = "RUNSC_SHIM_BUILD_PAUSE"

func TestMain(m *testing.M) {
	if out := os.Getenv(buildPauseEnv); out != "" {
		bin, err := harness.BuildPause(filepath.Dir(out))
		if err == nil && bin != out {
			err = os.Rename(bin, out)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "build pause:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var runID = strconv.FormatInt(time.Now().UnixNano()%1000000, 36)

func TestSystemdCgroupDriver(t *testing.T) {
	if os.Getenv(testEnv) == "" {
		harness.Unavailable(t, "%s is not set: this test needs a systemd it may create units in; run `make test-systemd`, which boots one in systemd-nspawn and runs this test there", testEnv)
	}
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		t.Fatalf("%s is set but systemd is not the init system here (/run/systemd/system: %v)", testEnv, err)
	}
	shimDir, pause := os.Getenv(shimDirEnv), os.Getenv(pauseEnv)
	if shimDir == "" || pause == "" {
		t.Fatalf("%s and %s must name the shim's directory and the pause binary", shimDirEnv, pauseEnv)
	}
	t.Logf("systemd %s, cgroup mode %v, runsc %s", systemctl(t, "--version"), cgroups.Mode(), harness.Runsc())
	for _, v := range harness.Versions {
		t.Run("containerd-"+v, func(t *testing.T) {
			c := harness.StartCRIDaemonT(t, harness.CRIDaemonOptions{
				Version:           v,
				ShimDirs:          []string{shimDir},
				PauseBinary:       pause,
				RuncSystemdCgroup: true,
			})
			e := &env{c: c, v: strings.ReplaceAll(v, ".", "")}
			t.Run("pod-in-scope", e.testPodInScope)
			t.Run("oom", e.testOOM)
			t.Run("lost-shim", e.testLostShim)
			t.Run("invalid-slice", e.testInvalidSlice)
			t.Run("runsc-toml-systemd-cgroup", e.testConfigSystemdCgroup)
		})
	}
}

type env struct {
	c *harness.CRIDaemon
	v string
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// pod is a CRI pod whose cgroup parent is a kubelet-style slice.
type pod struct {
	e      *env
	id     string
	uid    string
	slice  string
	config *runtimeapi.PodSandboxConfig
	pid    int
	done   bool
}

// sliceUID is what kubelet's systemd driver makes of a pod uid: '-' opens a
// slice level, so it becomes '_'.
func sliceUID(uid string) string { return strings.ReplaceAll(uid, "-", "_") }

func (e *env) runPod(t *testing.T, name string) *pod {
	t.Helper()
	name = fmt.Sprintf("%s-%s-%s", name, e.v, runID)
	uid := "uid-" + name
	slice := "kubepods-besteffort-pod" + sliceUID(uid) + ".slice"
	logDir := filepath.Join(e.c.Dir, "pod-logs", name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: uid},
		Hostname:     name,
		LogDirectory: logDir,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: slice,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD},
			},
		},
	}
	start := time.Now()
	resp, err := e.c.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: harness.HandlerRunsc})
	if err != nil {
		t.Fatalf("RunPodSandbox %s with cgroup parent %s: %v", name, slice, err)
	}
	p := &pod{e: e, id: resp.PodSandboxId, uid: uid, slice: slice, config: cfg}
	harness.LogOnFailure(t, e.c.Daemon, p.id)
	t.Cleanup(func() {
		if !p.done {
			p.stopRemove(t)
		}
		// kubelet removes the pod's slice with the pod.
		_, _ = exec.Command("systemctl", "stop", slice).CombinedOutput()
	})
	st, err := e.c.Runtime.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id, Verbose: true})
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: %v", p.id, err)
	}
	var info struct {
		Pid         int `json:"pid"`
		RuntimeSpec struct {
			Linux struct {
				CgroupsPath string `json:"cgroupsPath"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil || info.Pid <= 0 {
		t.Fatalf("sandbox info of %s: pid %d, %v", p.id, info.Pid, err)
	}
	p.pid = info.Pid
	t.Logf("pod %s ready in %s: sandbox pid %d, cgroupsPath containerd sent %q",
		p.id, time.Since(start).Round(time.Millisecond), p.pid, info.RuntimeSpec.Linux.CgroupsPath)
	if want := slice + ":cri-containerd:" + p.id; info.RuntimeSpec.Linux.CgroupsPath != want {
		t.Errorf("containerd sent cgroupsPath %q, want %q", info.RuntimeSpec.Linux.CgroupsPath, want)
	}
	return p
}

// unit is the sandbox's scope unit.
func (p *pod) unit() string { return "cri-containerd-" + p.id + ".scope" }

// cgroup is the scope's cgroup path as systemd lays it out.
func (p *pod) cgroup() string {
	return "/kubepods.slice/kubepods-besteffort.slice/" + p.slice + "/" + p.unit()
}

func (p *pod) start(t *testing.T, name string, command []string, memLimit int64) string {
	t.Helper()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: harness.BusyboxRef},
		Command:  command,
		LogPath:  name + "/0.log",
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: memLimit},
		},
	}
	resp, err := p.e.c.Runtime.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.config})
	if err != nil {
		t.Fatalf("CreateContainer %s in pod %s: %v", name, p.id, err)
	}
	harness.LogOnFailure(t, p.e.c.Daemon, resp.ContainerId)
	if _, err := p.e.c.Runtime.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return resp.ContainerId
}

func (p *pod) stopRemove(t *testing.T) {
	t.Helper()
	p.done = true
	if _, err := p.e.c.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Errorf("StopPodSandbox %s: %v", p.id, err)
	}
	if _, err := p.e.c.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Errorf("RemovePodSandbox %s: %v", p.id, err)
	}
}

// checkGone fails t unless the scope unit and its cgroup directories are
// gone, in every hierarchy, once the pod was removed.
func (p *pod) checkGone(t *testing.T) {
	t.Helper()
	if st := unitState(t, p.unit()); st["LoadState"] != "not-found" {
		t.Errorf("scope %s after StopPodSandbox+RemovePodSandbox: %v, want LoadState=not-found", p.unit(), st)
	}
	if left := scopeDirs(p.unit()); len(left) > 0 {
		t.Errorf("scope %s left cgroup directories:\n  %s", p.unit(), strings.Join(left, "\n  "))
	}
	if left := colonDirs(); len(left) > 0 {
		t.Errorf("cgroup directories named like a systemd cgroupsPath (slice:prefix:name) exist:\n  %s", strings.Join(left, "\n  "))
	}
	// kubelet removes the pod's slice once its pods are gone: then nothing
	// of the pod remains in any hierarchy (runsc creates the scope's path
	// in the hierarchies systemd does not manage, e.g. cpuset, freezer).
	if out, err := exec.Command("systemctl", "stop", p.slice).CombinedOutput(); err != nil {
		t.Errorf("systemctl stop %s: %v\n%s", p.slice, err, out)
	}
	if left := findDirs(func(name string) bool { return name == p.slice }); len(left) > 0 {
		t.Errorf("the pod's slice %s left cgroup directories after its removal:\n  %s", p.slice, strings.Join(left, "\n  "))
	}
}

// testPodInScope: the sandbox of a pod whose cgroup parent is a slice runs
// in cri-containerd-<id>.scope in that slice (expanded as systemd does), in
// every hierarchy systemd manages; a container's memory limit sizes the
// scope (unit property and cgroupfs); Stats read it; removing the pod
// removes the unit and its cgroups.
func (e *env) testPodInScope(t *testing.T) {
	p := e.runPod(t, "scope")
	want := p.cgroup()
	cg := procCgroups(t, p.pid)
	t.Logf("/proc/%d/cgroup of the sandbox:\n%s", p.pid, cg.raw)
	hierarchies := []string{"memory", "pids", "cpu", "name=systemd", ""}
	if cgroups.Mode() == cgroups.Unified {
		hierarchies = []string{""}
	}
	for _, h := range hierarchies {
		if got := cg.path[h]; got != want {
			t.Errorf("sandbox pid %d in the %q hierarchy: cgroup %q, want %q", p.pid, h, got, want)
		}
	}
	st := unitState(t, p.unit())
	t.Logf("systemctl show %s: %v", p.unit(), st)
	if st["ActiveState"] != "active" || st["Slice"] != p.slice || st["ControlGroup"] != want || st["Delegate"] != "yes" {
		t.Errorf("scope %s: %v, want ActiveState=active Slice=%s ControlGroup=%s Delegate=yes", p.unit(), st, p.slice, want)
	}
	if left := colonDirs(); len(left) > 0 {
		t.Errorf("cgroup directories named like a systemd cgroupsPath exist:\n  %s", strings.Join(left, "\n  "))
	}

	id := p.start(t, "limited", []string{"sh", "-c", "while :; do :; done"}, 128*mib)
	// Every process of the pod (the container's gofer too, which runsc
	// moves into the v1 hierarchies only) is in the scope in every
	// hierarchy: else systemd, which watches the unified one on a hybrid
	// host, neither kills it at the scope's stop nor waits for it, and the
	// scope's v1 directories it still holds stay behind.
	if cgroups.Mode() != cgroups.Unified {
		procs := map[string][]string{}
		for _, h := range []string{"memory", "pids", "cpu", "systemd", "unified"} {
			b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", h, want, "cgroup.procs"))
			if err != nil && !(h == "unified" && os.IsNotExist(err)) {
				t.Fatalf("processes of the scope: %v", err)
			}
			procs[h] = strings.Fields(string(b))
			sort.Strings(procs[h])
		}
		t.Logf("processes of the pod's scope (sandbox and one container) per hierarchy: %v", procs)
		if cgroups.Mode() == cgroups.Legacy {
			delete(procs, "unified")
		}
		for _, pids := range procs {
			if len(pids) < 4 || !slices.Equal(pids, procs["memory"]) {
				t.Errorf("processes of scope %s: %v, want the same (at least the sandbox, its gofer and the container's gofer) in every hierarchy", p.unit(), procs)
				break
			}
		}
	}
	// The scope gets the container's limit, container_overhead_mib and
	// the sandbox's own memory, measured by the shim when it joined.
	got := readLimit(t, want)
	n, _ := strconv.Atoi(got)
	own := n - (128+shim.DefaultContainerOverheadMiB)*mib
	if own < 4*mib || own > 40*mib || own%mib != 0 {
		t.Errorf("scope's memory limit with one 128 MiB container: %s = its limit + %d MiB + %d bytes for the sandbox itself; want that last a whole number of MiB between 4 and 40",
			got, shim.DefaultContainerOverheadMiB, own)
	}
	wantLimit := got
	prop := "MemoryLimit"
	if cgroups.Mode() == cgroups.Unified {
		prop = "MemoryMax"
	}
	if got := unitProperty(t, p.unit(), prop); got != wantLimit {
		t.Errorf("scope's %s property: %s, want %s", prop, got, wantLimit)
	}
	t.Logf("scope memory limit %s, %s=%s", wantLimit, prop, wantLimit)

	// Stats: the container's (runsc events) and the pod sandbox's (the
	// shim reads the scope's cgroup).
	time.Sleep(time.Second)
	cs, err := e.c.Runtime.ContainerStats(ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStats %s: %v", id, err)
	}
	cpu, mem := cs.GetStats().GetCpu().GetUsageCoreNanoSeconds().GetValue(), cs.GetStats().GetMemory().GetWorkingSetBytes().GetValue()
	t.Logf("ContainerStats of the busy container: cpu %v, working set %d", time.Duration(cpu), mem)
	if cpu == 0 || mem == 0 {
		t.Errorf("ContainerStats of a busy container: cpu %d working set %d, want both non-zero", cpu, mem)
	}
	// containerd's own PodSandboxStats cannot serve a systemd pod: it
	// loads the cgroup parent ("...-pod<uid>.slice") as a literal cgroupfs
	// path ("cgroup deleted"), whatever the runtime. The sandbox task's
	// metrics are the shim's answer, read from the scope's cgroup.
	if _, err := e.c.Runtime.PodSandboxStats(ctx(t), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: p.id}); err != nil {
		t.Logf("PodSandboxStats (containerd, not the shim): %v", err)
	}
	kctx := namespaces.WithNamespace(ctx(t), harness.CRINamespace)
	sandbox, err := e.c.Client.LoadContainer(kctx, p.id)
	if err != nil {
		t.Fatalf("load sandbox container %s: %v", p.id, err)
	}
	task, err := sandbox.Task(kctx, nil)
	if err != nil {
		t.Fatalf("sandbox task %s: %v", p.id, err)
	}
	m, err := task.Metrics(kctx)
	if err != nil {
		t.Fatalf("Metrics of the sandbox task %s: %v", p.id, err)
	}
	pcpu, pmem, plimit, err := decodeMetrics(m)
	if err != nil {
		t.Fatalf("Metrics of the sandbox task %s: %v", p.id, err)
	}
	t.Logf("sandbox task Metrics (the scope's cgroup): cpu %v, memory usage %d, limit %d", time.Duration(pcpu), pmem, plimit)
	if pcpu == 0 || pmem == 0 || strconv.FormatUint(plimit, 10) != wantLimit {
		t.Errorf("sandbox task Metrics: cpu %d memory usage %d limit %d, want non-zero and the scope's limit %s", pcpu, pmem, plimit, wantLimit)
	}
	if usage := readFile(t, memoryFile(want, "usage")); usage == "0" {
		t.Errorf("the scope's memory cgroup accounts nothing")
	}

	// An update resizes the scope, in cgroupfs and in the unit's
	// properties (which systemd re-applies, e.g. at daemon-reload).
	if _, err := e.c.Runtime.UpdateContainerResources(ctx(t), &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: id, Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 96 * mib}}); err != nil {
		t.Fatalf("UpdateContainerResources to 96 MiB: %v", err)
	}
	wantLimit = strconv.Itoa((96+shim.DefaultContainerOverheadMiB)*mib + own)
	if got, prop := readLimit(t, want), unitProperty(t, p.unit(), prop); got != wantLimit || prop != wantLimit {
		t.Errorf("scope after updating the container to 96 MiB: memory limit %s, unit property %s, want %s", got, prop, wantLimit)
	}
	if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
		t.Fatalf("systemctl daemon-reload: %v\n%s", err, out)
	}
	if got := readLimit(t, want); got != wantLimit {
		t.Errorf("scope's memory limit after systemctl daemon-reload: %s, want %s still", got, wantLimit)
	}
	t.Logf("after UpdateContainerResources to 96 MiB and a daemon-reload: scope memory limit %s", wantLimit)

	p.stopRemove(t)
	harness.AssertNoPodLeftovers(t, e.c, harness.PodRecord{SandboxID: p.id, ContainerIDs: []string{id}, RunscRoot: harness.RunscRootFor(e.c.Runsc)})
	p.checkGone(t)
}

// testOOM: a container allocating past its limit is OOM-killed in the
// scope: CRI reports OOMKilled and exit 137, and the pod's removal leaves
// no unit and no cgroup.
func (e *env) testOOM(t *testing.T) {
	p := e.runPod(t, "oom")
	id := p.start(t, "hog", []string{"sh", "-c", "dd if=/dev/zero of=/dev/null bs=256M count=1; echo survived; exec sleep 100000"}, 64*mib)
	var st *runtimeapi.ContainerStatus
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := e.c.Runtime.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatalf("ContainerStatus %s: %v", id, err)
		}
		if st = resp.GetStatus(); st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a container allocating 256 MiB under a 64 MiB limit still %v after 60s", st.GetState())
		}
	}
	t.Logf("hog: exit code %d reason %q", st.GetExitCode(), st.GetReason())
	if st.GetReason() != "OOMKilled" || st.GetExitCode() != 137 {
		log, _ := os.ReadFile(filepath.Join(p.config.LogDirectory, "hog", "0.log"))
		t.Errorf("a container allocating 256 MiB under a 64 MiB limit: exit code %d reason %q, want 137 OOMKilled; its log:\n%s",
			st.GetExitCode(), st.GetReason(), log)
	}
	p.stopRemove(t)
	harness.AssertNoPodLeftovers(t, e.c, harness.PodRecord{SandboxID: p.id, ContainerIDs: []string{id}, RunscRoot: harness.RunscRootFor(e.c.Runsc)})
	p.checkGone(t)
}

// testLostShim: when the pod's shim is killed, containerd's `delete` action
// (run by containerd for a dead shim) stops the sandbox's scope too.
func (e *env) testLostShim(t *testing.T) {
	p := e.runPod(t, "lost")
	pids := e.c.K8s.ShimPids(p.id)
	if len(pids) != 1 {
		t.Fatalf("shims of pod %s: %v, want one", p.id, pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed shim %d of pod %s", pids[0], p.id)
	var st map[string]string
	for deadline := time.Now().Add(harness.LeftoverGrace); ; time.Sleep(100 * time.Millisecond) {
		if st = unitState(t, p.unit()); st["LoadState"] == "not-found" || time.Now().After(deadline) {
			break
		}
	}
	if st["LoadState"] != "not-found" {
		t.Errorf("scope %s %s after its shim was killed: %v, want it gone", p.unit(), harness.LeftoverGrace, st)
	}
	p.stopRemove(t)
	harness.AssertNoPodLeftovers(t, e.c, harness.PodRecord{SandboxID: p.id, RunscRoot: harness.RunscRootFor(e.c.Runsc)})
	p.checkGone(t)
}

// testConfigSystemdCgroup: with systemd-cgroup = "true" in runsc.toml, a
// container without a cgroupsPath runs in system.slice/runsc-<id>.scope
// (runsc's own default), with its memory limit on the scope (unit property
// and cgroupfs), and the scope goes with the container. containerd's
// client gives every container the cgroupfs path /<namespace>/<id>: that
// is refused with InvalidArgument, as runc and runsc refuse it with
// --systemd-cgroup.
func (e *env) testConfigSystemdCgroup(t *testing.T) {
	// Under the daemon's Dir: its Stop unmounts the null-netns current
	// runsc pins in the runsc root.
	cfg, err := harness.WriteRunscConfig(filepath.Join(e.c.Dir, "runsc-systemd-cgroup"), map[string]string{"network": "host", "systemd-cgroup": "true"})
	if err != nil {
		t.Fatal(err)
	}
	kctx := namespaces.WithNamespace(ctx(t), harness.CRINamespace)
	img, err := e.c.Client.GetImage(kctx, harness.BusyboxRef)
	if err != nil {
		t.Fatal(err)
	}
	opts := &runtimeoptions.Options{TypeUrl: harness.RuntimeName + ".options", ConfigPath: cfg.Path}
	_, err = e.c.K8s.Run(kctx, harness.RunOptions{ID: "tomlfs-" + e.v + "-" + runID, Image: img, Args: []string{"true"}, RuntimeOptions: opts})
	t.Logf("containerd's default cgroupsPath with systemd-cgroup = \"true\": %v", err)
	if err == nil || !strings.Contains(err.Error(), "needs a cgroupsPath of the form slice:prefix:name") || !strings.Contains(err.Error(), "invalid argument") {
		t.Errorf("a cgroupfs cgroupsPath with systemd-cgroup = \"true\": %v, want InvalidArgument saying why", err)
	}

	id := "toml-" + e.v + "-" + runID
	unit := "runsc-" + id + ".scope"
	want := "/system.slice/" + unit
	var seen procCgroup
	var limit, prop string
	res, err := e.c.K8s.Run(kctx, harness.RunOptions{
		ID: id, Image: img, Args: []string{"sleep", "2"},
		RuntimeOptions: opts,
		SpecOpts: []oci.SpecOpts{oci.WithMemoryLimit(100 * mib),
			func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				s.Linux.CgroupsPath = ""
				return nil
			}},
		AfterStart: func(ctx context.Context, task client.Task) error {
			seen = procCgroups(t, int(task.Pid()))
			limit, prop = readLimit(t, want), unitProperty(t, unit, "MemoryLimit")
			return nil
		},
	})
	if err != nil {
		t.Fatalf("run %s: %v", id, err)
	}
	t.Logf("container %s exited %d; its sandbox was in %s, memory limit %s, MemoryLimit=%s", id, res.ExitStatus, seen.path["memory"], limit, prop)
	if seen.path["memory"] != want || seen.path["name=systemd"] != want {
		t.Errorf("sandbox cgroups:\n%s\nwant %s", seen.raw, want)
	}
	if l := strconv.Itoa(100 * mib); limit != l || prop != l {
		t.Errorf("scope memory limit %s, MemoryLimit=%s, want %s", limit, prop, l)
	}
	if st := unitState(t, unit); st["LoadState"] != "not-found" {
		t.Errorf("scope %s after the container was deleted: %v", unit, st)
	}
	if left := scopeDirs(unit); len(left) > 0 {
		t.Errorf("scope %s left cgroup directories:\n  %s", unit, strings.Join(left, "\n  "))
	}
}

// testInvalidSlice: a cgroup parent that is no valid slice name fails the
// pod with InvalidArgument naming the path, and creates nothing.
func (e *env) testInvalidSlice(t *testing.T) {
	name := "badslice-" + e.v + "-" + runID
	slice := "kubepods--besteffort.slice"
	_, err := e.c.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{RuntimeHandler: harness.HandlerRunsc, Config: &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "uid-" + name},
		LogDirectory: filepath.Join(e.c.Dir, "pod-logs", name),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: slice},
	}})
	t.Logf("RunPodSandbox with cgroup parent %s: %v", slice, err)
	if err == nil || !strings.Contains(err.Error(), slice+":cri-containerd:") || !strings.Contains(err.Error(), "invalid argument") {
		t.Errorf("RunPodSandbox with cgroup parent %q: %v, want an invalid argument error naming the cgroupsPath", slice, err)
	}
	if left := colonDirs(); len(left) > 0 {
		t.Errorf("cgroup directories named like a systemd cgroupsPath exist:\n  %s", strings.Join(left, "\n  "))
	}
	if out, _ := exec.Command("systemctl", "list-units", "--all", "--no-legend", "cri-containerd-*.scope").Output(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("scope units left:\n%s", out)
	}
}

// decodeMetrics returns the CPU time, memory usage and limit of a task's
// metrics, cgroup v1 or v2 as the host's mode.
func decodeMetrics(m *apitypes.Metric) (cpuNs, mem, limit uint64, err error) {
	v, err := typeurl.UnmarshalAny(m.GetData())
	if err != nil {
		return 0, 0, 0, err
	}
	switch s := v.(type) {
	case *v1stats.Metrics:
		return s.GetCPU().GetUsage().GetTotal(), s.GetMemory().GetUsage().GetUsage(), s.GetMemory().GetUsage().GetLimit(), nil
	case *v2stats.Metrics:
		return s.GetCPU().GetUsageUsec() * 1000, s.GetMemory().GetUsage(), s.GetMemory().GetUsageLimit(), nil
	}
	return 0, 0, 0, fmt.Errorf("metrics are a %T", v)
}

type procCgroup struct {
	raw  string
	path map[string]string // hierarchy (controller, "name=systemd", "" unified) -> path
}

func procCgroups(t *testing.T, pid int) procCgroup {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatalf("cgroups of sandbox pid %d: %v", pid, err)
	}
	out := procCgroup{raw: strings.TrimSpace(string(b)), path: map[string]string{}}
	for _, line := range strings.Split(out.raw, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			out.path[c] = f[2]
		}
	}
	return out
}

func systemctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("systemctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
}

func unitState(t *testing.T, unit string) map[string]string {
	t.Helper()
	out, err := exec.Command("systemctl", "show", "-p", "LoadState,ActiveState,Slice,ControlGroup,Delegate", unit).Output()
	if err != nil {
		t.Fatalf("systemctl show %s: %v", unit, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func unitProperty(t *testing.T, unit, prop string) string {
	t.Helper()
	out, err := exec.Command("systemctl", "show", "-p", prop, "--value", unit).Output()
	if err != nil {
		t.Fatalf("systemctl show -p %s %s: %v", prop, unit, err)
	}
	return strings.TrimSpace(string(out))
}

func memoryFile(cg, what string) string {
	if cgroups.Mode() == cgroups.Unified {
		return filepath.Join("/sys/fs/cgroup", cg, map[string]string{"limit": "memory.max", "usage": "memory.current"}[what])
	}
	return filepath.Join("/sys/fs/cgroup/memory", cg, map[string]string{"limit": "memory.limit_in_bytes", "usage": "memory.usage_in_bytes"}[what])
}

func readLimit(t *testing.T, cg string) string { return readFile(t, memoryFile(cg, "limit")) }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// scopeDirs lists the directories named unit under /sys/fs/cgroup.
func scopeDirs(unit string) []string {
	return findDirs(func(name string) bool { return name == unit })
}

// colonDirs lists cgroup directories with ':' in their name: what runsc
// makes of a systemd cgroupsPath it does not understand.
func colonDirs() []string {
	return findDirs(func(name string) bool { return strings.Contains(name, ":") })
}

func findDirs(match func(string) bool) []string {
	var out []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if match(d.Name()) {
			out = append(out, path)
			return filepath.SkipDir
		}
		return nil
	})
	return out
}
