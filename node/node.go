package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/identifiers"
)

// Defaults of Options (host paths).
const (
	DefaultAddress  = "/run/containerd/containerd.sock"
	DefaultConfig   = "/etc/containerd/config.toml"
	DefaultShimDir  = "/usr/local/bin"
	DefaultStateDir = "/var/lib/runsc-node"
	ShimName        = "containerd-shim-runsc-v1"
	// BackupSuffix is appended to the config file's name for its backup.
	BackupSuffix = ".runsc-node.bak"
	stateFile    = "state.json"
	// VerifyNamespace is the containerd namespace of the verify container.
	DefaultVerifyNamespace = "k8s.io"
)

// Options are the command line of runsc-node.
type Options struct {
	HostRoot string
	// ContainerdConfig is the host path of containerd's config; "" means
	// the running containerd's --config, else DefaultConfig.
	ContainerdConfig string
	// ContainerdAddress is the host path of containerd's gRPC socket.
	ContainerdAddress string
	// ContainerdBin is the containerd binary (host path); "" means the
	// running process's executable, else containerd on PATH.
	ContainerdBin string
	// ShimSrc is the shim binary to install (a path of runsc-node's own
	// filesystem, i.e. shipped with runsc-node).
	ShimSrc string
	// Runsc is the runsc binary (host path or a name on the host's PATH).
	// When set, runsc.toml names it as binary_name.
	Runsc string
	// ShimDir, RunscConfig and StateDir are host paths.
	ShimDir     string
	RunscConfig string
	StateDir    string
	NoRestart   bool
	DryRun      bool
	// Force lets uninstall restore the backup over a config changed since
	// the install.
	Force bool
	// VerifyImage is the image of the verify container; "" picks an image
	// present in VerifyNamespace whose name contains "busybox".
	VerifyImage     string
	VerifyNamespace string
	// Out receives the report.
	Out io.Writer
}

// Node is what runsc-node found out about the node.
type Node struct {
	opts Options
	host Host
	out  io.Writer
	// Process is the running containerd (nil if none listens on the
	// address).
	Process *Process
	// Bin is the host path of the containerd binary (run through runHost).
	Bin string
	// Config is the host path of containerd's config.
	Config  string
	Version Version
}

func (o *Options) defaults() {
	if o.HostRoot == "" {
		o.HostRoot = "/"
	}
	if o.ContainerdAddress == "" {
		o.ContainerdAddress = DefaultAddress
	}
	if o.ShimDir == "" {
		o.ShimDir = DefaultShimDir
	}
	if o.RunscConfig == "" {
		o.RunscConfig = DefaultRunscConfig
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.VerifyNamespace == "" {
		o.VerifyNamespace = DefaultVerifyNamespace
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
}

func (o *Options) validate() error {
	if !filepath.IsAbs(o.HostRoot) {
		return fmt.Errorf("--host-root %q is not an absolute path", o.HostRoot)
	}
	if st, err := os.Stat(o.HostRoot); err != nil || !st.IsDir() {
		return fmt.Errorf("--host-root %q is not a directory", o.HostRoot)
	}
	for name, p := range map[string]string{
		"--containerd-address": o.ContainerdAddress, "--shim-dir": o.ShimDir,
		"--runsc-config": o.RunscConfig, "--state-dir": o.StateDir,
	} {
		if _, err := (Host{Root: o.HostRoot}).Path(p); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if o.ContainerdConfig != "" {
		if _, err := (Host{Root: o.HostRoot}).Path(o.ContainerdConfig); err != nil {
			return fmt.Errorf("--containerd-config: %w", err)
		}
	}
	if err := identifiers.Validate(o.VerifyNamespace); err != nil {
		return fmt.Errorf("--verify-namespace: %w", err)
	}
	if strings.ContainsAny(o.RunscConfig, "\"\\\n") {
		return fmt.Errorf("--runsc-config %q contains a quote, backslash or newline", o.RunscConfig)
	}
	return nil
}

// Discover finds containerd: the process serving the address, its binary,
// config file and version.
func Discover(ctx context.Context, opts Options) (*Node, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	n := &Node{opts: opts, host: Host{Root: opts.HostRoot}, out: opts.Out}
	p, err := SocketOwner(opts.ContainerdAddress)
	if err != nil {
		n.note("cannot look for the containerd process: %v", err)
	}
	n.Process = p
	n.Config = opts.ContainerdConfig
	if n.Config == "" {
		n.Config = DefaultConfig
		if p != nil {
			if c := p.ConfigFlag(); c != "" {
				if !filepath.IsAbs(c) {
					return nil, fmt.Errorf("containerd (pid %d) runs with a relative --config %q: pass --containerd-config", p.Pid, c)
				}
				n.Config = c
			}
		}
	}
	switch {
	case opts.ContainerdBin != "":
		bin, err := n.host.LookPath(opts.ContainerdBin, n.containerdPATH())
		if err != nil {
			return nil, fmt.Errorf("--containerd-bin: %w", err)
		}
		n.Bin = bin
	case p != nil && p.ExeTarget != "" && n.host.Exists(p.ExeTarget):
		n.Bin = p.ExeTarget
	default:
		bin, err := n.host.LookPath("containerd", nil)
		if err != nil {
			return nil, fmt.Errorf("containerd is not running on %s and not installed: %w (pass --containerd-bin)", opts.ContainerdAddress, err)
		}
		n.Bin = bin
	}
	out, err := n.runHost(ctx, n.Bin, "--version")
	if err != nil {
		return nil, fmt.Errorf("containerd version: %w", err)
	}
	if n.Version, err = ParseVersion(string(out)); err != nil {
		return nil, err
	}
	return n, nil
}

// containerdPATH is the PATH of the running containerd (its shims'), or
// DefaultPATH.
func (n *Node) containerdPATH() []string {
	if n.Process != nil {
		if v, ok := n.Process.EnvValue("PATH"); ok {
			return filepath.SplitList(v)
		}
	}
	return filepath.SplitList(DefaultPATH)
}

func (n *Node) note(format string, args ...any) {
	fmt.Fprintf(n.out, format+"\n", args...)
}

// runHost runs the host binary bin (a host path) and returns its stdout; a
// failure quotes stderr. Under a host root other than "/" it runs chrooted
// into it, so that the host's dynamically linked binaries find their
// libraries and the host paths in args (and in containerd's imports) mean
// what they mean on the host.
func (n *Node) runHost(ctx context.Context, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if !filepath.IsAbs(bin) {
		return nil, fmt.Errorf("host binary %q is not an absolute path", bin)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	if root := filepath.Clean(n.host.Root); root != "/" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		cmd.Dir = "/"
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(lastLines(stderr.String(), 5)))
	}
	return stdout.Bytes(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ConfigDump is `containerd --config <config> config dump`: the effective
// config (built-in defaults, the file and its imports).
func (n *Node) ConfigDump(ctx context.Context) ([]byte, error) {
	cfg, err := n.host.Path(n.Config)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(cfg); errors.Is(err, os.ErrNotExist) {
		// No file: containerd runs with its built-in defaults (and
		// `config dump` refuses a --config that does not exist).
		return n.runHost(ctx, n.Bin, "config", "default")
	}
	return n.runHost(ctx, n.Bin, "--config", n.Config, "config", "dump")
}

func (n *Node) read(path string) ([]byte, error) {
	p, err := n.host.Path(path)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

func (n *Node) glob(pattern string) ([]string, error) {
	p, err := n.host.Path(pattern)
	if err != nil {
		return nil, err
	}
	m, err := filepath.Glob(p)
	if err != nil {
		return nil, err
	}
	root := filepath.Clean(n.host.Root)
	out := make([]string, 0, len(m))
	for _, x := range m {
		if root != "/" {
			x = strings.TrimPrefix(x, root)
		}
		out = append(out, x)
	}
	return out, nil
}

// writeAtomic writes data to the host path p through a temp file in the
// same directory and a rename.
func (n *Node) writeAtomic(p string, data []byte, mode os.FileMode) error {
	r, err := n.host.Path(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(r), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(r), "."+filepath.Base(r)+".runsc-node-")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), r); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var errNotInstalled = errors.New("runsc-node has not installed anything on this node")
