package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
	shimpkg "github.com/gvisor-shim/containerd-shim-runsc-v1/shim"
)

// TestCRICompat: pod-spec features through the CRI, as kubelet sets them,
// with handler runsc on each containerd version: what the shim makes
// runsc do (the rows of docs/compatibility.md that the shim fixes).
func TestCRICompat(t *testing.T) {
	forEachCRIDaemon(t, func(t *testing.T, e *criEnv) {
		t.Run("masked-readonly-paths", e.testCRIMaskedReadonlyPaths)
		t.Run("seccomp", e.testCRISeccomp)
		t.Run("setuid", e.testCRISetuid)
		t.Run("memory-limit-one-container", e.testCRIMemoryLimitOneContainer)
		t.Run("share-process-namespace", e.testCRIShareProcessNamespace)
		t.Run("sysctls", e.testCRISysctls)
		t.Run("readonly-rootfs", e.testCRIReadonlyRootfs)
		t.Run("host-pid", e.testCRIHostPID)
		t.Run("sigterm-shell-pid1", e.testCRISIGTERMShellPID1)
		t.Run("attach", e.testCRIAttach)
		t.Run("port-forward", e.testCRIPortForward)
		t.Run("devices", e.testCRIDevices)
		t.Run("lsm", e.testCRILSM)
	})
}

// criGen is the generation of the runsc under test.
func criGen(t *testing.T) (runscGen, *runsc.Features) {
	t.Helper()
	f, err := runsc.Probe(t.Context(), harness.Runsc(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := releaseDate.FindString(f.Version); m != "" && m < "20230101" {
		return gen2022, f
	}
	return genCurrent, f
}

// containerLog waits until the container's CRI log holds want (or the
// container exited) and returns the log's messages.
func (p *criPod) containerLog(t *testing.T, name, id, want string) string {
	t.Helper()
	path := filepath.Join(p.config.LogDirectory, name, "0.log")
	deadline := time.Now().Add(criWaitTimeout)
	for {
		raw, _ := os.ReadFile(path)
		var msgs []string
		for _, l := range strings.Split(string(raw), "\n") {
			// <time> <stream> <P|F> <message>
			if f := strings.SplitN(l, " ", 4); len(f) == 4 {
				msgs = append(msgs, f[3])
			}
		}
		out := strings.Join(msgs, "\n")
		if strings.Contains(out, want) || time.Now().After(deadline) ||
			p.status(t, id).GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testCRIMaskedReadonlyPaths: the container's masked paths read as empty
// (a file) or as an empty read-only directory, its read-only paths refuse
// writes, the rest of the rootfs stays writable; the shim warned naming
// the container.
func (e *criEnv) testCRIMaskedReadonlyPaths(t *testing.T) {
	p := e.runPod(t, "masked", harness.HandlerRunsc, nil)
	id := p.start(t, criContainer{name: "masked", command: []string{"sleep", "100000"},
		mutate: func(cc *runtimeapi.ContainerConfig) {
			cc.Linux.SecurityContext.MaskedPaths = []string{"/etc/group", "/var", "/proc/kcore"}
			cc.Linux.SecurityContext.ReadonlyPaths = []string{"/tmp", "/proc/sys"}
		}})
	check := func(what string, cmd string, wantExit int32, wantOut string) {
		t.Helper()
		r := p.exec(t, id, "sh", "-c", cmd)
		got := strings.TrimSpace(string(r.Stdout) + string(r.Stderr))
		if r.ExitCode != wantExit || got != wantOut {
			t.Errorf("%s: `%s` exit %d output %q, want exit %d output %q", what, cmd, r.ExitCode, got, wantExit, wantOut)
		}
	}
	check("masked file", "cat /etc/group | wc -c", 0, "0")
	check("masked directory", "ls -A /var | wc -l", 0, "0")
	check("write into masked directory", "touch /var/new", 1, "touch: /var/new: Read-only file system")
	check("read-only path", "touch /tmp/new", 1, "touch: /tmp/new: Read-only file system")
	check("rest of the rootfs", "touch /new && echo ok", 0, "ok")
	warned := false
	for _, l := range e.c.LogGrep("the shim added mounts to the spec") {
		if strings.Contains(l, id) && strings.Contains(l, "masked /etc/group") && strings.Contains(l, "read-only /tmp") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no shim warning naming container %s and its masked and read-only paths in the containerd log", id)
	}
	p.stopRemove(t, true)
}

// seccompProfileFile writes the chmod/sethostname-denying profile as a
// Localhost profile file.
func seccompProfileFile(t *testing.T) string {
	t.Helper()
	raw, err := json.Marshal(seccompDeny())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "deny-chmod.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// testCRISeccomp: a Localhost profile denying chmod and sethostname is
// enforced for the container that has it (CAP_SYS_ADMIN granted), the
// RuntimeDefault profile loads, an Unconfined neighbour in the same pod is
// unfiltered; /proc/self/status shows "Seccomp: 2" for the filtered ones.
func (e *criEnv) testCRISeccomp(t *testing.T) {
	profile := seccompProfileFile(t)
	p := e.runPod(t, "seccomp", harness.HandlerRunsc, nil)
	const script = seccompScript + "; echo probe-done; exec sleep 100000"
	run := func(name string, sp *runtimeapi.SecurityProfile) string {
		id := p.start(t, criContainer{name: name, command: []string{"sh", "-c", script},
			mutate: func(cc *runtimeapi.ContainerConfig) {
				cc.Linux.SecurityContext.Seccomp = sp
				cc.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"SYS_ADMIN"}}
			}})
		out := p.containerLog(t, name, id, "probe-done")
		got := fmt.Sprint(seccompLine(out), " chmod:", strings.Contains(out, "chmod-allowed"), " sethostname:", strings.Contains(out, "sethostname-allowed"))
		t.Logf("%s: %s", name, got)
		return got
	}
	if got, want := run("localhost", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}),
		"Seccomp: 2 chmod:false sethostname:false"; got != want {
		t.Errorf("container with a Localhost profile denying chmod and sethostname: %s, want %s", got, want)
	}
	if got := run("runtime-default", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}); !strings.HasPrefix(got, "Seccomp: 2 chmod:true") {
		t.Errorf("container with RuntimeDefault: %s, want Seccomp: 2 and chmod allowed", got)
	}
	if got, want := run("unconfined", &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}),
		"Seccomp: 0 chmod:true sethostname:true"; got != want {
		t.Errorf("Unconfined container in the same pod: %s, want %s", got, want)
	}
	p.stopRemove(t, true)
}

// testCRISetuid: a setuid-root binary (on a hostPath volume) run as uid
// 1000: with allowPrivilegeEscalation (no_new_privs off) its euid is 0
// under current runsc, as under runc (the shim passes --allow-suid);
// runsc 20221219 cannot (euid 1000); with no_new_privs it stays 1000.
func (e *criEnv) testCRISetuid(t *testing.T) {
	gen, _ := criGen(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	if err := os.WriteFile(bin, probeBinary(t), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(bin, 0o4755); err != nil {
		t.Fatal(err)
	}
	p := e.runPod(t, "setuid", harness.HandlerRunsc, nil)
	for _, nnp := range []bool{false, true} {
		name := "nnp-" + strconv.FormatBool(nnp)
		id := p.start(t, criContainer{name: name, command: []string{"sh", "-c", "/probe/probe euid; exec sleep 100000"},
			mounts: []*runtimeapi.Mount{{ContainerPath: "/probe", HostPath: dir, Readonly: true}},
			mutate: func(cc *runtimeapi.ContainerConfig) {
				uid := &runtimeapi.Int64Value{Value: 1000}
				cc.Linux.SecurityContext.RunAsUser = uid
				cc.Linux.SecurityContext.NoNewPrivs = nnp
			}})
		got := strings.TrimSpace(p.containerLog(t, name, id, "euid="))
		want := "uid=1000 euid=1000"
		if !nnp && gen == genCurrent {
			want = "uid=1000 euid=0"
		}
		if got != want {
			t.Errorf("runsc %s, no_new_privs=%v: setuid-root binary printed %q, want %q", gen, nnp, got, want)
		}
	}
	p.stopRemove(t, true)
}

// testCRIMemoryLimitOneContainer: a one-container pod limited to 15 MiB:
// allocating 20 MiB is OOMKilled with exit code 137 within 60s; a process
// that holds 14 MiB, and one that allocates 5 MiB over and over, stay under
// their limit and are never killed. (10 MiB over and over can be killed:
// memory the application frees is returned to the host lazily, so two
// allocations can be charged at once.) The sandbox cgroup is the limit plus
// container_overhead_mib plus the sandbox's own memory, measured by the
// shim when the container joins.
func (e *criEnv) testCRIMemoryLimitOneContainer(t *testing.T) {
	const limit = 15 * mib
	res := func(cc *runtimeapi.ContainerConfig) {
		cc.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: limit}
	}
	for _, under := range []struct{ name, script, done string }{
		{"hold-14m", "head -c 14m /dev/zero > /dev/shm/held || exit 1; echo held-14m; exec sleep 100000", "held-14m"},
		{"alloc-5m-20x", "i=0; while [ $i -lt 20 ]; do dd if=/dev/zero of=/dev/null bs=5M count=1 2>/dev/null || exit 1; i=$((i+1)); echo -n \"$i \"; done; echo allocated-20-times; exec sleep 100000", "allocated-20-times"},
	} {
		p, _ := e.runResourcePod(t, "memok", nil)
		si := p.sandboxInfo(t)
		_, _, memDir := sandboxLimits(t, si.Pid)
		idle := atoi(readTrim(t, memStatFile(memDir, "usage")))
		okID := p.start(t, criContainer{name: "under", mutate: res, command: []string{"sh", "-c", under.script}})
		mem, _, _ := sandboxLimits(t, si.Pid)
		own := atoi(mem) - limit - shimpkg.DefaultContainerOverheadMiB*mib
		if d := own - idle; d < -2*mib || d > 2*mib {
			t.Errorf("%s: sandbox cgroup memory limit %s = the container's 15 MiB + %d MiB + %.1f MiB for the sandbox itself, want that last within 2 MiB of the idle sandbox's %.1f MiB",
				under.name, mem, shimpkg.DefaultContainerOverheadMiB, float64(own)/mib, float64(idle)/mib)
		}
		out := p.containerLog(t, "under", okID, under.done)
		// A process past its limit is killed within 0.5 s (below): give
		// the one under it three times that to show it is not.
		time.Sleep(1500 * time.Millisecond)
		st := p.status(t, okID)
		if !strings.Contains(out, under.done) || st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("%s: a container under its 15 MiB limit: state %v exit %d reason %q, log %q; want it running",
				under.name, st.GetState(), st.GetExitCode(), st.GetReason(), out)
		}
		peak := atoi(readTrim(t, memStatFile(memDir, "peak")))
		t.Logf("%s: sandbox idle %.1f MiB, its own memory counted %.1f MiB, limit %.1f MiB, peak %.1f MiB",
			under.name, float64(idle)/mib, float64(own)/mib, float64(atoi(mem))/mib, float64(peak)/mib)
		stop := time.Now()
		p.stopRemove(t, true)
		// containerd 2.x polled this pod's stats: a control connection the
		// shim kept open would hold the killed sandbox for runsc's
		// control-rpc-stop-timeout (15 s) before it exits.
		if d := time.Since(stop); d > 5*time.Second {
			t.Errorf("%s: pod stopped and removed in %v, want well under runsc's 15 s control-rpc-stop-timeout", under.name, d.Round(time.Millisecond))
		} else {
			t.Logf("%s: pod stopped and removed in %v", under.name, d.Round(time.Millisecond))
		}
	}

	// Over the limit.
	p, _ := e.runResourcePod(t, "memoom", nil)
	start := time.Now()
	id := p.start(t, criContainer{name: "hog", mutate: res, command: []string{"sh", "-c",
		"dd if=/dev/zero of=/dev/null bs=20M count=1; echo survived; exec sleep 100000"}})
	var st *runtimeapi.ContainerStatus
	for deadline := start.Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if st = p.status(t, id); st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a container allocating 20 MiB under a 15 MiB limit still %v after 60s; log %q", st.GetState(), p.containerLog(t, "hog", id, ""))
		}
	}
	t.Logf("OOM after %v: exit code %d reason %q", time.Since(start).Round(time.Millisecond), st.GetExitCode(), st.GetReason())
	if st.GetReason() != "OOMKilled" || st.GetExitCode() != 137 {
		t.Errorf("a container allocating 20 MiB under a 15 MiB limit: exit code %d reason %q, want 137 OOMKilled; log %q",
			st.GetExitCode(), st.GetReason(), p.containerLog(t, "hog", id, ""))
	}
	// The host's OOM killer killed the sandbox itself: the pod goes
	// NOTREADY on its own (and containerd 1.6's StopPodSandbox, racing with
	// its own handling of that exit, could otherwise leave it READY).
	oom := time.Now()
	for deadline := time.Now().Add(criWaitTimeout); ; time.Sleep(100 * time.Millisecond) {
		ps, err := e.c.Runtime.PodSandboxStatus(criCtx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id})
		if err != nil {
			t.Fatalf("PodSandboxStatus %s: %v", p.id, err)
		}
		if ps.GetStatus().GetState() == runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
			t.Logf("pod NOTREADY %v after the container's exit was seen", time.Since(oom).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s still %v %s after its sandbox was OOM-killed", p.id, ps.GetStatus().GetState(), criWaitTimeout)
		}
	}
	p.stopRemove(t, true)
}

// testCRIShareProcessNamespace: a pod with a PID namespace per pod
// (shareProcessNamespace): the second container sees the first one's
// processes. Under runc the pause process is PID 1 of that namespace;
// runsc 20221219 leaves the pause container out (the first app container
// is PID 1); current runsc: see want.
func (e *criEnv) testCRIShareProcessNamespace(t *testing.T) {
	gen, _ := criGen(t)
	p := e.runPod(t, "sharepid", harness.HandlerRunsc, func(cfg *runtimeapi.PodSandboxConfig) {
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	})
	first := p.start(t, criContainer{name: "first", command: []string{"sleep", "100001"}})
	second := p.start(t, criContainer{name: "second", command: []string{"sleep", "100002"}})
	_ = first
	out := p.execOK(t, second, "ps", "-o", "pid,args")
	t.Logf("ps in the second container:\n%s", out)
	got := fmt.Sprint("sees first:", strings.Contains(out, "sleep 100001"), " sees pause:", strings.Contains(out, "/pause"), " pid 1: ", psPID1(out))
	want := map[runscGen]string{
		gen2022:    "sees first:true sees pause:false pid 1: sleep 100001",
		genCurrent: "sees first:true sees pause:true pid 1: /pause",
	}[gen]
	if got != want {
		t.Errorf("runsc %s, shareProcessNamespace: %s, want %s", gen, got, want)
	}
	p.stopRemove(t, true)
}

// psPID1 is the command of PID 1 in `ps -o pid,args` output.
func psPID1(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "1" {
			return strings.Join(f[1:], " ")
		}
	}
	return ""
}

// testCRISysctls: a pod's sysctls are accepted but not applied by runsc
// (the /proc/sys files do not exist in the pod's containers); the shim
// warns naming the sandbox container, whose spec containerd puts them in.
func (e *criEnv) testCRISysctls(t *testing.T) {
	p := e.runPod(t, "sysctls", harness.HandlerRunsc, func(cfg *runtimeapi.PodSandboxConfig) {
		cfg.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100"}
	})
	id := p.start(t, criContainer{name: "sysctls", command: []string{"sleep", "100000"}})
	r := p.exec(t, id, "cat", "/proc/sys/kernel/shm_rmid_forced")
	if r.ExitCode == 0 {
		t.Errorf("/proc/sys/kernel/shm_rmid_forced readable (%q): runsc applies sysctls now, update docs/compatibility.md", r.Stdout)
	}
	warned := false
	for _, l := range e.c.LogGrep("runsc does not apply linux.sysctl") {
		if strings.Contains(l, "id="+p.id) && strings.Contains(l, "kernel.shm_rmid_forced") && strings.Contains(l, "fs.mqueue.msg_max") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no shim warning naming the pod's sandbox %s and its ignored sysctls in the containerd log", p.id)
	}
	p.stopRemove(t, true)
}

// testCRISIGTERMShellPID1: StopContainer (grace period 5s) of a container
// whose PID 1 is a shell without a SIGTERM handler: under runc PID 1
// ignores SIGTERM and is killed after the grace period (137); under runsc
// it exits at once with 143 (TestCompatRawSIGTERMShellInit: runsc does).
func (e *criEnv) testCRISIGTERMShellPID1(t *testing.T) {
	for _, h := range []string{harness.HandlerRunsc, harness.HandlerRunc} {
		p := e.runPod(t, "sigterm-"+h, h, nil)
		id := p.start(t, criContainer{name: "shell", command: []string{"sh", "-c", "while :; do sleep 1; done"}})
		start := time.Now()
		if _, err := e.c.Runtime.StopContainer(criCtx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 5}); err != nil {
			t.Fatalf("StopContainer %s: %v", id, err)
		}
		took := time.Since(start)
		st := p.status(t, id)
		t.Logf("handler %s: StopContainer took %v, exit code %d", h, took.Round(time.Millisecond), st.GetExitCode())
		switch h {
		case harness.HandlerRunsc:
			if st.GetExitCode() != 143 || took > 4*time.Second {
				t.Errorf("runsc: exit code %d after %v, want 143 before the 5s grace period ended", st.GetExitCode(), took)
			}
		default:
			if st.GetExitCode() != 137 || took < 5*time.Second {
				t.Errorf("runc: exit code %d after %v, want 137 after the 5s grace period", st.GetExitCode(), took)
			}
		}
		p.stopRemove(t, true)
	}
}

// testCRIReadonlyRootfs: readOnlyRootFilesystem: writes to the rootfs fail
// with EROFS, volumes (here the /dev/shm and /etc/hosts mounts) stay as
// they are.
func (e *criEnv) testCRIReadonlyRootfs(t *testing.T) {
	p := e.runPod(t, "rorootfs", harness.HandlerRunsc, nil)
	id := p.start(t, criContainer{name: "ro", command: []string{"sleep", "100000"},
		mutate: func(cc *runtimeapi.ContainerConfig) { cc.Linux.SecurityContext.ReadonlyRootfs = true }})
	r := p.exec(t, id, "sh", "-c", "touch /new 2>&1; touch /dev/shm/new && echo shm-writable")
	got := strings.TrimSpace(string(r.Stdout))
	if want := "touch: /new: Read-only file system\nshm-writable"; got != want {
		t.Errorf("read-only rootfs: %q, want %q", got, want)
	}
	p.stopRemove(t, true)
}

// testCRIHostPID: hostPID: the pod runs, but the container sees only the
// sandbox's processes, never the host's: the Sentry has its own PID
// namespace (runsc).
func (e *criEnv) testCRIHostPID(t *testing.T) {
	p := e.runPod(t, "hostpid", harness.HandlerRunsc, func(cfg *runtimeapi.PodSandboxConfig) {
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_NODE
	})
	id := p.start(t, criContainer{name: "hostpid", command: []string{"sleep", "100003"}})
	out := p.execOK(t, id, "ps", "-o", "pid,args")
	n := len(strings.Split(strings.TrimSpace(out), "\n")) - 1
	t.Logf("hostPID container sees %d processes:\n%s", n, out)
	if strings.Contains(out, "containerd") || n > 5 {
		t.Errorf("hostPID: the container sees host processes (%d):\n%s", n, out)
	}
	if !strings.Contains(out, "sleep 100003") {
		t.Errorf("hostPID: the container does not see its own process:\n%s", out)
	}
	p.stopRemove(t, true)
}

// testCRIDevices: CRI ContainerConfig.Devices (what kubelet passes for a
// device plugin's allocation): host /dev/zero as /dev/mydev and
// /dev/loop-control as /dev/myloop. Under runc both appear and work
// (/dev/mydev reads zeroes). runsc 20221219 creates neither; current runsc
// creates both nodes, but as gVisor's own devices by number: 1:5 is its
// emulated /dev/zero, 10:237 has no driver (open: ENXIO)
// (TestCompatRawDevices: runsc does this).
func (e *criEnv) testCRIDevices(t *testing.T) {
	gen, _ := criGen(t)
	want := map[string]string{
		harness.HandlerRunc:  "mydev:true reads zeroes:true myloop:true opens:true",
		harness.HandlerRunsc: map[runscGen]string{gen2022: "mydev:false reads zeroes:false myloop:false opens:false", genCurrent: "mydev:true reads zeroes:true myloop:true opens:false"}[gen],
	}
	for _, h := range []string{harness.HandlerRunsc, harness.HandlerRunc} {
		t.Run(h, func(t *testing.T) {
			p := e.runPod(t, "devices-"+h, h, nil)
			id := p.start(t, criContainer{name: "devices", command: []string{"sleep", "100000"},
				mutate: func(cc *runtimeapi.ContainerConfig) {
					cc.Devices = []*runtimeapi.Device{
						{ContainerPath: "/dev/mydev", HostPath: "/dev/zero", Permissions: "rwm"},
						{ContainerPath: "/dev/myloop", HostPath: "/dev/loop-control", Permissions: "rw"},
					}
				}})
			r := p.exec(t, id, "sh", "-c", "for d in mydev myloop; do [ -c /dev/$d ] && echo char-$d; done; head -c 4 /dev/mydev | od -An -tx1; (exec 3</dev/myloop) && echo opened-myloop; echo done")
			out := string(r.Stdout) + string(r.Stderr)
			got := fmt.Sprint("mydev:", strings.Contains(out, "char-mydev"), " reads zeroes:", strings.Contains(out, "00 00 00 00"),
				" myloop:", strings.Contains(out, "char-myloop"), " opens:", strings.Contains(out, "opened-myloop"))
			t.Logf("handler %s (runsc %s): %s; output %q", h, gen, got, out)
			if got != want[h] {
				t.Errorf("handler %s (runsc %s): devices %s, want %s; output %q", h, gen, got, want[h], out)
			}
			p.stopRemove(t, true)
		})
	}
}

// testCRILSM: a container's appArmorProfile (Localhost, a profile that
// does not exist) and seLinuxOptions, for runsc and runc. containerd
// decides what reaches the runtime: on a host without AppArmor (this CI
// host) it refuses the profile for either handler ("apparmor is not
// supported"); with SELinux off (enable_selinux = false, containerd's
// default) it drops the SELinux options and the container runs. On a host
// with AppArmor the profile reaches runsc, which ignores it
// (TestCompatRawLSM) and the shim warns: the container runs.
func (e *criEnv) testCRILSM(t *testing.T) {
	aa, se := hostLSM()
	t.Logf("host kernel: AppArmor enabled %v, SELinux enabled %v", aa, se)
	for _, h := range []string{harness.HandlerRunsc, harness.HandlerRunc} {
		t.Run(h, func(t *testing.T) {
			p := e.runPod(t, "lsm-"+h, h, nil)
			for _, c := range []struct {
				name   string
				mutate func(*runtimeapi.LinuxContainerSecurityContext)
				want   string // "" runs, else CreateContainer's error contains it
			}{
				{"apparmor", func(sc *runtimeapi.LinuxContainerSecurityContext) {
					sc.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "runsc-shim-compat-nonexistent"}
				}, map[bool]string{false: "apparmor is not supported", true: ""}[aa]},
				{"selinux", func(sc *runtimeapi.LinuxContainerSecurityContext) {
					sc.SelinuxOptions = &runtimeapi.SELinuxOption{User: "system_u", Role: "system_r", Type: "container_t", Level: "s0:c1,c2"}
				}, ""},
			} {
				if aa && c.name == "apparmor" && h == harness.HandlerRunc {
					continue // runc applies it: a nonexistent profile fails (not measured here)
				}
				id, err := p.createErr(t, criContainer{name: c.name, command: []string{"sleep", "100000"},
					mutate: func(cc *runtimeapi.ContainerConfig) { c.mutate(cc.Linux.SecurityContext) }})
				if err == nil {
					_, err = e.c.Runtime.StartContainer(criCtx(t), &runtimeapi.StartContainerRequest{ContainerId: id})
				}
				t.Logf("handler %s, %s: container %q, %v", h, c.name, id, err)
				switch {
				case c.want == "" && err != nil:
					t.Errorf("handler %s, %s: %v, want the container running", h, c.name, err)
				case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
					t.Errorf("handler %s, %s: %v, want an error containing %q", h, c.name, err, c.want)
				}
			}
			p.stopRemove(t, true)
		})
	}
}

// readTrim is a file's content without surrounding space.
func readTrim(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// memStatFile is a memory cgroup's usage or peak usage file, in the host's
// cgroup mode.
func memStatFile(dir, which string) string {
	v1 := map[string]string{"usage": "memory.usage_in_bytes", "peak": "memory.max_usage_in_bytes"}
	v2 := map[string]string{"usage": "memory.current", "peak": "memory.peak"}
	if cgroups.Mode() == cgroups.Unified {
		return filepath.Join(dir, v2[which])
	}
	return filepath.Join(dir, v1[which])
}
