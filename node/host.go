// Package node installs, removes and diagnoses containerd-shim-runsc-v1 on
// a Kubernetes node: it finds the node's containerd, merges a runsc runtime
// into its configuration without losing anything, writes runsc.toml with
// settings that work on the host, installs the shim, restarts containerd
// and verifies that a container runs in gVisor. cmd/runsc-node is its CLI.
//
// Every host path (containerd's config, the shim's destination, the state
// file, containerd's socket) is resolved under Options.HostRoot, so that a
// DaemonSet that mounts the host's root at /host runs it with
// --host-root /host. Binaries it runs (containerd, runsc) are named by host
// paths too and run from runsc-node's own mount namespace through that
// mount.
package node

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Host is the node's filesystem as seen from runsc-node.
type Host struct {
	// Root is where the host's root directory is mounted ("/" when
	// runsc-node runs on the host itself).
	Root string
}

// Path resolves the absolute host path p under the host root. It refuses
// relative paths and paths that climb out with "..".
func (h Host) Path(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("host path %q is not absolute", p)
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("host path %q contains a NUL byte", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("host path %q contains \"..\"", p)
		}
	}
	root := h.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, filepath.Clean(p)), nil
}

// MustPath is Path for paths this package built itself (constants, or
// already validated); an invalid one is a bug.
func (h Host) mustPath(p string) string {
	r, err := h.Path(p)
	if err != nil {
		panic(err)
	}
	return r
}

// Exists reports whether the host path exists.
func (h Host) Exists(p string) bool {
	r, err := h.Path(p)
	if err != nil {
		return false
	}
	_, err = os.Stat(r)
	return err == nil
}

// LookPath finds an executable named name in the host's PATH dirs (or
// the given dirs), returning its host path.
func (h Host) LookPath(name string, dirs []string) (string, error) {
	if strings.Contains(name, "/") {
		r, err := h.Path(name)
		if err != nil {
			return "", err
		}
		if err := isExecutable(r); err != nil {
			return "", err
		}
		return name, nil
	}
	if len(dirs) == 0 {
		dirs = filepath.SplitList(DefaultPATH)
	}
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		r, err := h.Path(p)
		if err != nil {
			continue
		}
		if isExecutable(r) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in %s (under host root %s)", name, strings.Join(dirs, ":"), h.Root)
}

func isExecutable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// DefaultPATH is the PATH assumed for a containerd that is not running
// (systemd's default for services).
const DefaultPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Process is a running process of the host (runsc-node runs with hostPID).
type Process struct {
	Pid  int
	Argv []string
	// Exe is /proc/<pid>/exe: it can be executed from any mount namespace.
	Exe string
	// ExeTarget is where the exe link points (a host path).
	ExeTarget string
	Env       []string
}

// EnvValue returns the value of key in the process's environment.
func (p *Process) EnvValue(key string) (string, bool) {
	for _, kv := range p.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// ConfigFlag returns the value of containerd's --config / -c flag.
func (p *Process) ConfigFlag() string {
	for i := 1; i < len(p.Argv); i++ {
		a := p.Argv[i]
		for _, f := range []string{"--config", "-config", "-c", "--c"} {
			if a == f && i+1 < len(p.Argv) {
				return p.Argv[i+1]
			}
			if v, ok := strings.CutPrefix(a, f+"="); ok {
				return v
			}
		}
	}
	return ""
}

// procRoot is the procfs runsc-node reads; a variable for tests.
var procRoot = "/proc"

func readProcess(pid int) (*Process, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return nil, fmt.Errorf("read process %d: %w", pid, err)
	}
	p := &Process{Pid: pid, Exe: filepath.Join(dir, "exe")}
	p.Argv = strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
	p.ExeTarget, _ = os.Readlink(p.Exe)
	p.ExeTarget = strings.TrimSuffix(p.ExeTarget, " (deleted)")
	if env, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
		p.Env = strings.Split(string(bytes.TrimRight(env, "\x00")), "\x00")
	}
	return p, nil
}

// SocketOwner returns the process listening on the unix socket at the
// host path address, or nil if none is (containerd is not running).
func SocketOwner(address string) (*Process, error) {
	inodes, err := listeningInodes(address)
	if err != nil {
		return nil, err
	}
	if len(inodes) == 0 {
		return nil, nil
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(procRoot, e.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join(procRoot, e.Name(), "fd", fd.Name()))
			if err != nil {
				continue
			}
			if ino, ok := strings.CutPrefix(l, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
				return readProcess(pid)
			}
		}
	}
	return nil, nil
}

// listeningInodes returns the inodes of listening unix sockets bound to path.
func listeningInodes(path string) (map[string]bool, error) {
	f, err := os.Open(filepath.Join(procRoot, "net", "unix"))
	if err != nil {
		return nil, fmt.Errorf("list unix sockets: %w", err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Num RefCount Protocol Flags Type St Inode Path
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[3] != "00010000" {
			continue
		}
		if fields[7] == path {
			out[fields[6]] = true
		}
	}
	return out, sc.Err()
}
