package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

// The TestCompatRaw* tests measure, with the raw runsc under test on an
// OCI bundle (no containerd, no shim), each pod-spec feature of the
// compatibility table (docs/compatibility.md): they show what runsc itself
// does, per generation, and fail the day it changes.

// TestCompatRawMaskedPaths: runsc ignores linux.maskedPaths: a masked file
// stays readable and a masked directory listable (both generations).
func TestCompatRawMaskedPaths(t *testing.T) {
	r := newRawRunsc(t)
	b := r.bundle(t, "masked", "sh", "-c", "cat /masked-file; ls /masked-dir")
	b.writeFile(t, "/masked-file", "secret-file\n", 0o644)
	b.writeFile(t, "/masked-dir/inner", "x", 0o644)
	b.spec.Linux.MaskedPaths = append(b.spec.Linux.MaskedPaths, "/masked-file", "/masked-dir")
	res := b.mustRun(t)
	r.want(t, "masked file readable", strings.Contains(res.out, "secret-file"), map[runscGen]any{gen2022: true, genCurrent: true})
	r.want(t, "masked directory listable", strings.Contains(res.out, "inner"), map[runscGen]any{gen2022: true, genCurrent: true})
}

// TestCompatRawReadonlyPaths: runsc ignores linux.readonlyPaths: a file
// can be created in a read-only directory (both generations).
func TestCompatRawReadonlyPaths(t *testing.T) {
	r := newRawRunsc(t)
	b := r.bundle(t, "readonly", "sh", "-c", "touch /ro-dir/new && echo created")
	b.writeFile(t, "/ro-dir/f", "x", 0o644)
	b.spec.Linux.ReadonlyPaths = append(b.spec.Linux.ReadonlyPaths, "/ro-dir")
	res := b.mustRun(t)
	r.want(t, "touch in a read-only path succeeds", strings.Contains(res.out, "created"), map[runscGen]any{gen2022: true, genCurrent: true})
}

// TestCompatRawProcSysPaths: which of containerd's default masked and
// read-only paths under /proc and /sys exist in gVisor's own procfs and
// sysfs (they hold no host data), and that /proc/sys is not writable.
func TestCompatRawProcSysPaths(t *testing.T) {
	r := newRawRunsc(t)
	b := r.bundle(t, "procsys", "sh", "-c", `for p in "$@"; do [ -e $p ] && echo $p; done; ls -A /sys/firmware | wc -l; (echo x > /proc/sys/kernel/hostname) 2>/dev/null || echo proc-sys-not-writable`, "sh")
	b.spec.Process.Args = append(b.spec.Process.Args, append(append([]string{}, b.spec.Linux.MaskedPaths...), b.spec.Linux.ReadonlyPaths...)...)
	res := b.mustRun(t)
	present, _, _ := strings.Cut(res.out, "proc-sys-not-writable")
	r.want(t, "default masked/read-only paths present (then: entries in /sys/firmware)", strings.Join(strings.Fields(present), " "), map[runscGen]any{
		gen2022:    "/sys/firmware /proc/sys 0",
		genCurrent: "/sys/firmware /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger 0",
	})
	r.want(t, "/proc/sys not writable", strings.Contains(res.out, "proc-sys-not-writable"), map[runscGen]any{gen2022: true, genCurrent: true})
}

// TestCompatRawMemoryLimitIsSandboxLimit: runsc applies a container's
// memory limit to the cgroup of the whole sandbox (Sentry, gofer and the
// application together): under 15 MiB the sandbox dies while booting or at
// once (runsc 20221219: exit 137; current: usually `runsc run` fails, 128);
// 40 MiB runs a 20 MiB allocation; 30 MiB does not.
func TestCompatRawMemoryLimitIsSandboxLimit(t *testing.T) {
	r := newRawRunsc(t)
	run := func(mib int64) rawResult {
		b := r.bundle(t, "memlimit", "sh", "-c", "echo up; dd if=/dev/zero of=/dev/null bs=20M count=1 2>/dev/null; echo survived")
		lim := mib << 20
		b.spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &lim}
		res := b.run(t, 60*time.Second)
		if res.err != nil {
			t.Fatal(res.err)
		}
		return res
	}
	// Whether the Sentry dies during boot (no output) or just after
	// varies from run to run: only the failure is asserted.
	res := run(15)
	r.want(t, "15 MiB: the container fails (exit 137 or 128)", (res.exit == 137 || res.exit == 128) && !strings.Contains(res.out, "survived"),
		map[runscGen]any{gen2022: true, genCurrent: true})
	res = run(30)
	r.want(t, "30 MiB: exit of a 20 MiB allocation", fmt.Sprint(res.exit, strings.Contains(res.out, "survived")), map[runscGen]any{gen2022: "137 false", genCurrent: "137 false"})
	res = run(40)
	r.want(t, "40 MiB: exit of a 20 MiB allocation", fmt.Sprint(res.exit, strings.Contains(res.out, "survived")), map[runscGen]any{gen2022: "0 true", genCurrent: "0 true"})
}

// TestCompatRawSandboxIdleMemory: what an idle one-container sandbox
// (sleep) is charged in its host memory cgroup, the floor of any pod's
// overhead: 9-13 MiB for runsc 20221219, 12-17 MiB for current runsc here.
func TestCompatRawSandboxIdleMemory(t *testing.T) {
	r := newRawRunsc(t)
	b := r.bundle(t, "idle", "sleep", "100000")
	b.start(t)
	// A served exec: the sandbox has booted and runs the container.
	if res := b.exec(t, "true"); res.err != nil || res.exit != 0 {
		t.Fatalf("exec true in the idle sandbox: %v %v", res, res.err)
	}
	usage := readCgroupMiB(t, filepath.Join("/sys/fs/cgroup/memory", b.spec.Linux.CgroupsPath, "memory.usage_in_bytes"))
	t.Logf("idle sandbox: %.1f MiB charged", usage)
	r.want(t, "idle sandbox charge in range", inRange(usage, map[runscGen][2]float64{gen2022: {6, 16}, genCurrent: {8, 20}}[r.gen]), map[runscGen]any{gen2022: true, genCurrent: true})
}

func inRange(v float64, r [2]float64) bool { return v >= r[0] && v <= r[1] }

func readCgroupMiB(t *testing.T, file string) float64 {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	return float64(atoi(string(b))) / (1 << 20)
}

// seccompDeny is a profile allowing everything but chmod and sethostname.
func seccompDeny() *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{{
			Names:  []string{"chmod", "fchmod", "fchmodat", "fchmodat2", "sethostname"},
			Action: specs.ActErrno,
		}},
	}
}

func addCap(s *specs.Spec, name string) {
	c := s.Process.Capabilities
	for _, set := range []*[]string{&c.Bounding, &c.Effective, &c.Permitted} {
		*set = append(*set, name)
	}
}

func dropCap(s *specs.Spec, name string) {
	c := s.Process.Capabilities
	for _, set := range []*[]string{&c.Bounding, &c.Effective, &c.Permitted, &c.Inheritable, &c.Ambient} {
		var out []string
		for _, v := range *set {
			if v != name {
				out = append(out, v)
			}
		}
		*set = out
	}
}

const seccompScript = `grep Seccomp: /proc/self/status; touch /tmp/f; chmod 400 /tmp/f && echo chmod-allowed; hostname compat && echo sethostname-allowed`

// TestCompatRawSeccomp: runsc ignores linux.seccomp unless --oci-seccomp
// is given; with it, the profile is enforced inside the sandbox and
// /proc/self/status shows "Seccomp: 2" (both generations).
func TestCompatRawSeccomp(t *testing.T) {
	r := newRawRunsc(t)
	r.want(t, "has --oci-seccomp", r.features.HasFlag("oci-seccomp"), map[runscGen]any{gen2022: true, genCurrent: true})
	for _, flag := range []bool{false, true} {
		b := r.bundle(t, "seccomp", "sh", "-c", seccompScript)
		addCap(b.spec, "CAP_SYS_ADMIN")
		b.spec.Linux.Seccomp = seccompDeny()
		if flag {
			b.flags = append(b.flags, "--oci-seccomp")
		}
		res := b.mustRun(t)
		got := fmt.Sprint(seccompLine(res.out), " chmod:", strings.Contains(res.out, "chmod-allowed"), " sethostname:", strings.Contains(res.out, "sethostname-allowed"))
		want := "Seccomp: 0 chmod:true sethostname:true"
		if flag {
			want = "Seccomp: 2 chmod:false sethostname:false"
		}
		r.want(t, fmt.Sprintf("--oci-seccomp=%v: status, chmod and sethostname allowed", flag), got, map[runscGen]any{gen2022: want, genCurrent: want})
	}
	// containerd's RuntimeDefault profile loads and lets ordinary
	// commands run.
	b := r.bundle(t, "seccomp-default", "sh", "-c", "grep Seccomp: /proc/self/status; ls / >/dev/null && echo ok")
	b.spec.Linux.Seccomp = seccomp.DefaultProfile(b.spec)
	b.flags = append(b.flags, "--oci-seccomp")
	res := b.mustRun(t)
	r.want(t, "RuntimeDefault with --oci-seccomp", seccompLine(res.out)+" "+fmt.Sprint(strings.Contains(res.out, "ok")), map[runscGen]any{gen2022: "Seccomp: 2 true", genCurrent: "Seccomp: 2 true"})
}

// TestCompatRawSeccompPerContainer: with --oci-seccomp each container of a
// sandbox gets its own spec's filter: a container with the profile cannot
// chmod, its neighbour without one can (both generations).
func TestCompatRawSeccompPerContainer(t *testing.T) {
	r := newRawRunsc(t)
	sb := r.sandbox(t, "--oci-seccomp")
	for _, filtered := range []bool{true, false} {
		c := r.subcontainer(t, sb, "sh", "-c", seccompScript)
		c.flags = append(c.flags, "--oci-seccomp")
		addCap(c.spec, "CAP_SYS_ADMIN")
		if filtered {
			c.spec.Linux.Seccomp = seccompDeny()
		}
		res := c.mustRun(t)
		got := fmt.Sprint(seccompLine(res.out), " chmod:", strings.Contains(res.out, "chmod-allowed"))
		want := "Seccomp: 0 chmod:true"
		if filtered {
			want = "Seccomp: 2 chmod:false"
		}
		r.want(t, fmt.Sprintf("container with profile=%v", filtered), got, map[runscGen]any{gen2022: want, genCurrent: want})
	}
}

func seccompLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "Seccomp:"); ok {
			return "Seccomp: " + strings.TrimSpace(v)
		}
	}
	return "no Seccomp line"
}

// sandbox starts a pod-like sandbox (CRI annotations, `sleep`) with the
// extra runsc flags.
func (r *rawRunsc) sandbox(t *testing.T, flags ...string) *rawBundle {
	t.Helper()
	sb := r.bundle(t, "sandbox", "sleep", "100000")
	sb.spec.Annotations = map[string]string{"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": sb.id}
	sb.flags = append(sb.flags, flags...)
	sb.start(t)
	return sb
}

// subcontainer prepares a container joining sandbox sb.
func (r *rawRunsc) subcontainer(t *testing.T, sb *rawBundle, args ...string) *rawBundle {
	t.Helper()
	c := r.bundle(t, "member", args...)
	c.spec.Annotations = map[string]string{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sb.id}
	c.spec.Linux.CgroupsPath = ""
	c.flags = append([]string{}, sb.flags...)
	return c
}

// probeBinary builds a static helper: `probe euid` prints uid and euid,
// `probe shmstat <id>` the errno of shmctl(id, IPC_STAT).
func probeBinary(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	src := map[string]string{
		"go.mod": "module probe\n\ngo 1.22\n",
		"main.go": `package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

func main() {
	switch os.Args[1] {
	case "euid":
		fmt.Printf("uid=%d euid=%d\n", os.Getuid(), os.Geteuid())
	case "shmstat":
		id, _ := strconv.Atoi(os.Args[2])
		var buf [256]byte
		_, _, e := syscall.Syscall(syscall.SYS_SHMCTL, uintptr(id), 2, uintptr(unsafe.Pointer(&buf)))
		fmt.Printf("shmctl errno %d\n", int(e))
	}
}
`}
	for name, data := range src {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-o", "probe", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe helper: %v: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCompatRawSetuid: a setuid-root binary run by uid 1000 with
// no-new-privileges off: runsc 20221219 never raises the euid; current
// runsc does only with --allow-suid (and never with no-new-privileges).
func TestCompatRawSetuid(t *testing.T) {
	r := newRawRunsc(t)
	probe := probeBinary(t)
	r.want(t, "has --allow-suid", r.features.HasFlag("allow-suid"), map[runscGen]any{gen2022: false, genCurrent: true})
	for _, nnp := range []bool{false, true} {
		for _, allow := range []bool{false, true} {
			if allow && !r.features.HasFlag("allow-suid") {
				continue
			}
			b := r.bundle(t, "setuid", "/bin/probe", "euid")
			b.writeFile(t, "/bin/probe", string(probe), 0o755)
			if err := unix.Chmod(filepath.Join(b.rootfs, "bin/probe"), 0o4755); err != nil {
				t.Fatal(err)
			}
			b.spec.Process.User = specs.User{UID: 1000, GID: 1000}
			b.spec.Process.NoNewPrivileges = nnp
			if allow {
				b.flags = append(b.flags, "--allow-suid")
			}
			res := b.mustRun(t)
			want := "uid=1000 euid=1000"
			if allow && !nnp {
				want = "uid=1000 euid=0"
			}
			r.want(t, fmt.Sprintf("no-new-privileges=%v --allow-suid=%v", nnp, allow), strings.TrimSpace(res.out), map[runscGen]any{gen2022: want, genCurrent: want})
		}
	}
}

// TestCompatRawSetuidSandboxFlag: current runsc takes --allow-suid from
// the sandbox's `runsc create`, not from a joining container's: a
// container given the flag elevates only in a sandbox created with it,
// even when the sandbox's own spec has no-new-privileges on (the pause
// container's); the joining container's no-new-privileges still applies.
// runsc 20221219 has no such flag.
func TestCompatRawSetuidSandboxFlag(t *testing.T) {
	r := newRawRunsc(t)
	if !r.features.HasFlag("allow-suid") {
		r.want(t, "has --allow-suid", false, map[runscGen]any{gen2022: false, genCurrent: true})
		return
	}
	probe := probeBinary(t)
	for _, sbFlag := range []bool{false, true} {
		var flags []string
		if sbFlag {
			flags = []string{"--allow-suid"}
		}
		sb := r.sandbox(t, flags...)
		for _, nnp := range []bool{false, true} {
			c := r.subcontainer(t, sb, "/bin/probe", "euid")
			c.flags = []string{"--network=none", "--allow-suid"}
			c.writeFile(t, "/bin/probe", string(probe), 0o755)
			if err := unix.Chmod(filepath.Join(c.rootfs, "bin/probe"), 0o4755); err != nil {
				t.Fatal(err)
			}
			c.spec.Process.User = specs.User{UID: 1000, GID: 1000}
			c.spec.Process.NoNewPrivileges = nnp
			want := "uid=1000 euid=1000"
			if sbFlag && !nnp {
				want = "uid=1000 euid=0"
			}
			r.want(t, fmt.Sprintf("sandbox --allow-suid=%v, member no-new-privileges=%v", sbFlag, nnp), strings.TrimSpace(c.mustRun(t).out),
				map[runscGen]any{genCurrent: want})
		}
	}
}

// TestCompatRawSharedPIDNamespace: a container joining a sandbox whose
// spec names the sandbox's PID namespace (what containerd sets for
// shareProcessNamespace) sees the sandbox's processes with current runsc;
// runsc 20221219 always gives it a PID namespace of its own.
func TestCompatRawSharedPIDNamespace(t *testing.T) {
	r := newRawRunsc(t)
	sb := r.sandbox(t)
	pid := sb.state(t).Pid
	for _, share := range []bool{false, true} {
		c := r.subcontainer(t, sb, "sh", "-c", "echo pid=$$; ps -o args")
		if share {
			for i, n := range c.spec.Linux.Namespaces {
				if n.Type == specs.PIDNamespace {
					c.spec.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/pid", pid)
				}
			}
		}
		res := c.mustRun(t)
		got := fmt.Sprint("pid 1:", strings.Contains(res.out, "pid=1\n"), " sees sandbox:", strings.Contains(res.out, "sleep 100000"))
		want := map[runscGen]any{gen2022: "pid 1:true sees sandbox:false", genCurrent: "pid 1:true sees sandbox:false"}
		if share {
			want[genCurrent] = "pid 1:false sees sandbox:true"
		}
		r.want(t, fmt.Sprintf("shared PID namespace path=%v", share), got, want)
	}
}

// TestCompatRawHostIPC: without an IPC namespace in the spec (hostIPC),
// the host's SysV shared memory is still invisible: the Sentry implements
// IPC itself (both generations).
func TestCompatRawHostIPC(t *testing.T) {
	r := newRawRunsc(t)
	id, err := unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600)
	if err != nil {
		t.Fatalf("create host shm segment: %v", err)
	}
	t.Cleanup(func() { _, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil) })
	b := r.bundle(t, "hostipc", "/bin/probe", "shmstat", fmt.Sprint(id))
	b.writeFile(t, "/bin/probe", string(probeBinary(t)), 0o755)
	b.spec.Linux.Namespaces = withoutNamespace(b.spec.Linux.Namespaces, specs.IPCNamespace)
	res := b.mustRun(t)
	r.want(t, "shmctl(IPC_STAT) of the host's segment", strings.TrimSpace(res.out), map[runscGen]any{gen2022: "shmctl errno 22", genCurrent: "shmctl errno 22"})
}

func withoutNamespace(ns []specs.LinuxNamespace, typ specs.LinuxNamespaceType) []specs.LinuxNamespace {
	var out []specs.LinuxNamespace
	for _, n := range ns {
		if n.Type != typ {
			out = append(out, n)
		}
	}
	return out
}

// TestCompatRawHostNetworkSockets: with network "host" and no network
// namespace (hostNetwork), the host's interfaces are visible but a port
// listening on the host is not in the container's socket list (both
// generations).
func TestCompatRawHostNetworkSockets(t *testing.T) {
	r := newRawRunsc(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	port := l.Addr().(*net.TCPAddr).Port
	b := r.bundle(t, "hostnet", "sh", "-c", "netstat -ltn 2>/dev/null; ip -4 addr")
	b.spec.Linux.Namespaces = withoutNamespace(b.spec.Linux.Namespaces, specs.NetworkNamespace)
	b.flags = []string{"--network=host"}
	res := b.mustRun(t)
	r.want(t, fmt.Sprintf("host listener :%d listed", port), strings.Contains(res.out, fmt.Sprintf(":%d ", port)), map[runscGen]any{gen2022: false, genCurrent: false})
	r.want(t, "host loopback address visible", strings.Contains(res.out, "127.0.0.1/8"), map[runscGen]any{gen2022: true, genCurrent: true})
}

// TestCompatRawNetAdmin: with CAP_NET_ADMIN, creating a bridge or a dummy
// link fails (both generations, differently worded).
func TestCompatRawNetAdmin(t *testing.T) {
	r := newRawRunsc(t)
	b := r.bundle(t, "netadmin", "sh", "-c", "brctl addbr brcompat0 2>&1; ip link add dmcompat0 type dummy 2>&1; ip link del dmcompat0 >/dev/null 2>&1; true")
	addCap(b.spec, "CAP_NET_ADMIN")
	res := b.mustRun(t)
	brctl := "brctl: bridge brcompat0: Inappropriate ioctl for device"
	if r.gen == genCurrent {
		brctl = "brctl: can't change directory to '/sys/class/net': No such file or directory"
	}
	r.want(t, "brctl addbr fails", strings.Contains(res.out, brctl), map[runscGen]any{gen2022: true, genCurrent: true})
	r.want(t, "ip link add type dummy fails", strings.Contains(res.out, "RTNETLINK answers: Operation not supported"), map[runscGen]any{gen2022: true, genCurrent: true})
}

// TestCompatRawNetRaw: raw sockets need runsc's --net-raw whatever the
// capabilities: by default ping fails with CAP_NET_RAW too. With network
// "host" (the CRI handler's), runsc 20221219 fails with "Address family
// not supported"; current runsc with "permission denied", as runc does
// without CAP_NET_RAW. With --net-raw and CAP_NET_RAW ping works (network
// "none", loopback).
func TestCompatRawNetRaw(t *testing.T) {
	r := newRawRunsc(t)
	ping := func(network string, netRaw, capNetRaw bool) string {
		b := r.bundle(t, "netraw", "sh", "-c", "ping -c1 -W2 127.0.0.1 2>&1 | tail -1")
		b.flags = []string{"--network=" + network}
		if network == "host" {
			b.spec.Linux.Namespaces = withoutNamespace(b.spec.Linux.Namespaces, specs.NetworkNamespace)
		}
		if netRaw {
			b.flags = append(b.flags, "--net-raw")
		}
		if !capNetRaw {
			dropCap(b.spec, "CAP_NET_RAW")
		}
		return strings.TrimSpace(b.mustRun(t).out)
	}
	afns := "ping: can't create raw socket: Address family not supported by protocol"
	perm := "ping: permission denied (are you root?)"
	r.want(t, "host network, no CAP_NET_RAW", ping("host", false, false), map[runscGen]any{gen2022: afns, genCurrent: perm})
	r.want(t, "host network, CAP_NET_RAW", ping("host", false, true), map[runscGen]any{gen2022: afns, genCurrent: perm})
	got := ping("none", true, true)
	r.want(t, "network none, --net-raw, CAP_NET_RAW", strings.HasPrefix(got, "round-trip"), map[runscGen]any{gen2022: true, genCurrent: true})
}

// TestCompatRawMountPropagation: runsc refuses shared propagation (a
// volume with mountPropagation Bidirectional) and accepts rslave
// (HostToContainer), both generations.
func TestCompatRawMountPropagation(t *testing.T) {
	r := newRawRunsc(t)
	vol := t.TempDir()
	cases := []struct {
		name, rootProp string
		opts           []string
	}{
		{"rshared mount", "", []string{"rbind", "rshared"}},
		{"rootfsPropagation rshared", "rshared", []string{"rbind", "rprivate"}},
		{"rslave mount", "rslave", []string{"rbind", "rslave"}},
	}
	for _, c := range cases {
		b := r.bundle(t, "propagation", "sh", "-c", "grep -c ' /vol ' /proc/self/mountinfo")
		b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/vol", Type: "bind", Source: vol, Options: c.opts})
		b.spec.Linux.RootfsPropagation = c.rootProp
		res := b.mustRun(t)
		got := strings.TrimSpace(res.out)
		if i := strings.Index(got, "reading spec: "); i >= 0 {
			got = got[i:]
		}
		want := map[string]string{
			"rshared mount":             `reading spec: mount option "rshared" is not supported`,
			"rootfsPropagation rshared": `reading spec: root mount propagation option must specify private or slave: "rshared"`,
			"rslave mount":              "1",
		}[c.name]
		r.want(t, c.name, got, map[runscGen]any{gen2022: want, genCurrent: want})
	}
}

// TestCompatRawReadOnlyVolumeSubmount: a read-only (non-recursive) bind
// volume with a tmpfs mounted below it on the host: under runc the
// submount stays writable; under runsc it is read-only too (both
// generations).
func TestCompatRawReadOnlyVolumeSubmount(t *testing.T) {
	r := newRawRunsc(t)
	vol := t.TempDir()
	sub := filepath.Join(vol, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", sub, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
	b := r.bundle(t, "rosub", "sh", "-c", "touch /vol/top 2>&1; touch /vol/sub/new && echo sub-writable")
	b.spec.Mounts = append(b.spec.Mounts, specs.Mount{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind", "rprivate", "ro"}})
	res := b.mustRun(t)
	r.want(t, "top read-only", strings.Contains(res.out, "/vol/top: Read-only file system"), map[runscGen]any{gen2022: true, genCurrent: true})
	r.want(t, "tmpfs submount writable", strings.Contains(res.out, "sub-writable"), map[runscGen]any{gen2022: false, genCurrent: false})
}

// TestCompatRawSysctls: runsc accepts linux.sysctl but does not apply it:
// kernel.shm_rmid_forced and fs.mqueue.msg_max do not exist in gVisor's
// /proc/sys (both generations).
func TestCompatRawSysctls(t *testing.T) {
	r := newRawRunsc(t)
	b := r.bundle(t, "sysctl", "sh", "-c", "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/fs/mqueue/msg_max 2>&1; true")
	b.spec.Linux.Sysctl = map[string]string{"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100"}
	res := b.mustRun(t)
	r.want(t, "sysctl files missing", strings.Count(res.out, "No such file or directory"), map[runscGen]any{gen2022: 2, genCurrent: 2})
}

// TestCompatRawSIGTERMShellInit: SIGTERM to a container whose PID 1 is a
// shell without a SIGTERM handler: under runc (Linux) PID 1 ignores it;
// runsc kills it, exit status 143 (both generations).
func TestCompatRawSIGTERMShellInit(t *testing.T) {
	r := newRawRunsc(t)
	b := r.bundle(t, "sigterm", "sh", "-c", "while :; do sleep 1; done")
	b.save(t)
	// `runsc run` exits with the container's status (128+signal).
	run := exec.Command(r.bin, b.args("run", "--bundle", b.dir, b.id)...)
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err := exec.Command(r.bin, b.args("state", b.id)...).Output()
		if err == nil && strings.Contains(string(out), `"status": "running"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s not running within 30s: %s %v; log: %s", b.id, out, err, b.lastLog())
		}
	}
	b.killTERM(t)
	select {
	case err := <-done:
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("runsc run: %v", err)
		}
		r.want(t, "exit status after SIGTERM", code, map[runscGen]any{gen2022: 143, genCurrent: 143})
	case <-time.After(10 * time.Second):
		_ = run.Process.Kill()
		<-done
		r.want(t, "exits on SIGTERM within 10s", false, map[runscGen]any{gen2022: true, genCurrent: true})
	}
}

// TestCompatRawDevices: host devices in linux.devices with their cgroup
// rules, as containerd writes CRI ContainerConfig.Devices entries (what a
// device plugin returns): host /dev/zero (char 1:5) as /dev/mydev and
// /dev/loop-control (char 10:237) as /dev/myloop. Under runc both appear
// and work (runcRun). runsc 20221219 creates neither; current runsc
// creates both nodes, but they are gVisor's own devices by number: 1:5 is
// its emulated /dev/zero, 10:237 has no driver in the Sentry (open:
// ENXIO). No host device is passed through (GPUs need --nvproxy).
func TestCompatRawDevices(t *testing.T) {
	r := newRawRunsc(t)
	const script = "for d in mydev myloop; do [ -c /dev/$d ] && echo char-$d; done; head -c 4 /dev/mydev | od -An -tx1; (exec 3</dev/myloop) && echo opened-myloop; echo done"
	withDevices := func(b *rawBundle) {
		if b.spec.Linux.Resources == nil {
			b.spec.Linux.Resources = &specs.LinuxResources{}
		}
		for _, d := range []struct {
			path         string
			major, minor int64
		}{{"/dev/mydev", 1, 5}, {"/dev/myloop", 10, 237}} {
			mode := os.FileMode(0o666)
			root := uint32(0)
			b.spec.Linux.Devices = append(b.spec.Linux.Devices, specs.LinuxDevice{
				Path: d.path, Type: "c", Major: d.major, Minor: d.minor, FileMode: &mode, UID: &root, GID: &root})
			b.spec.Linux.Resources.Devices = append(b.spec.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: "c", Major: &d.major, Minor: &d.minor, Access: "rwm"})
		}
	}
	got := func(out string) string {
		return fmt.Sprint("mydev:", strings.Contains(out, "char-mydev"), " reads zeroes:", strings.Contains(out, "00 00 00 00"),
			" myloop:", strings.Contains(out, "char-myloop"), " opens:", strings.Contains(out, "opened-myloop"))
	}
	b := r.bundle(t, "devices", "sh", "-c", script)
	withDevices(b)
	res := b.mustRun(t)
	r.want(t, "devices /dev/mydev (host /dev/zero), /dev/myloop (host /dev/loop-control)", got(res.out), map[runscGen]any{
		gen2022:    "mydev:false reads zeroes:false myloop:false opens:false",
		genCurrent: "mydev:true reads zeroes:true myloop:true opens:false",
	})
	rb := r.bundle(t, "devices-runc", "sh", "-c", script)
	withDevices(rb)
	if out, want := got(runcRun(t, rb)), "mydev:true reads zeroes:true myloop:true opens:true"; out != want {
		t.Errorf("runc: %s, want %s", out, want)
	}
}

// TestCompatRawLSM: process.apparmorProfile, process.selinuxLabel and
// linux.mountLabel (what containerd's CRI writes for a pod's
// appArmorProfile and seLinuxOptions when the host has that LSM). runsc
// accepts an AppArmor profile, even a nonexistent one, and applies none
// (gVisor has no LSM: the Sentry is the isolation boundary); it refuses a
// process SELinux label ("SELinux is not supported") and ignores a mount
// label. runc is run on the same specs for comparison (logged): on a host
// without the LSM it fails all three.
func TestCompatRawLSM(t *testing.T) {
	r := newRawRunsc(t)
	aa, se := hostLSM()
	t.Logf("host kernel: AppArmor enabled %v, SELinux enabled %v", aa, se)
	const script = "echo ran"
	cases := []struct {
		name   string
		mutate func(*specs.Spec)
		want   map[runscGen]any
	}{
		{"apparmor", func(s *specs.Spec) { s.Process.ApparmorProfile = "runsc-shim-compat-nonexistent" },
			map[runscGen]any{gen2022: "runs", genCurrent: "runs"}},
		{"selinux-process", func(s *specs.Spec) { s.Process.SelinuxLabel = "system_u:system_r:container_t:s0:c1,c2" },
			map[runscGen]any{gen2022: "fails: SELinux is not supported", genCurrent: "fails: SELinux is not supported"}},
		{"selinux-mount", func(s *specs.Spec) { s.Linux.MountLabel = "system_u:object_r:container_file_t:s0:c1,c2" },
			map[runscGen]any{gen2022: "runs", genCurrent: "runs"}},
	}
	outcome := func(exit int, out string) string {
		switch {
		case exit == 0 && strings.Contains(out, "ran"):
			return "runs"
		case strings.Contains(out, "SELinux is not supported"):
			return "fails: SELinux is not supported"
		}
		return fmt.Sprintf("exit %d: %q", exit, out)
	}
	for _, c := range cases {
		b := r.bundle(t, c.name, "sh", "-c", script)
		c.mutate(b.spec)
		res := b.mustRun(t)
		r.want(t, c.name, outcome(res.exit, res.out), c.want)
		rb := r.bundle(t, c.name+"-runc", "sh", "-c", script)
		c.mutate(rb.spec)
		runcRun(t, rb)
	}
}

// hostLSM reports whether the host kernel has AppArmor and SELinux enabled.
func hostLSM() (apparmor, selinux bool) {
	raw, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	apparmor = err == nil && strings.TrimSpace(string(raw)) == "Y"
	_, err = os.Stat("/sys/fs/selinux/enforce")
	return apparmor, err == nil
}

// runcRun runs the bundle's spec with runc (the reference), with a
// private state root, and returns its output.
func runcRun(t *testing.T, b *rawBundle) string {
	t.Helper()
	bin := harness.RequireBinary(t, "runc")
	b.save(t)
	root := filepath.Join(b.dir, "runc-root")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--root", root, "run", "--bundle", b.dir, b.id).CombinedOutput()
	t.Logf("runc %s: %v, output %q", strings.Join(b.spec.Process.Args, " "), err, out)
	if ctx.Err() != nil {
		t.Fatalf("runc run %s: no exit within 30s", b.id)
	}
	return string(out)
}
