package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sys/unix"
)

// Default locations of the containerd builds the tests run against.
const (
	Containerd16Binary = "/usr/bin/containerd"
	// Containerd24Env names the environment variable that overrides
	// Containerd24Default (path of the containerd 2.4 binary; ctr and
	// containerd-shim-runc-v2 are expected beside it).
	Containerd24Env     = "CONTAINERD24"
	Containerd24Default = "/var/cache/runsc-shim-ci/bin/containerd"
)

// Versions lists the containerd versions the integration tests cover.
var Versions = []string{"1.6", "2.4"}

// DefaultNamespace is the containerd namespace the harness's clients use.
const DefaultNamespace = "runsc-test"

// CRI plugin ids, disabled unless DaemonOptions.EnableCRI. containerd 1.6 has
// one CRI plugin; 2.x splits it into the gRPC service and two CRI services,
// and its pod sandbox controller needs them (it errors without them).
var criPlugins = map[string][]string{
	"1": {"io.containerd.grpc.v1.cri"},
	"2": {
		"io.containerd.grpc.v1.cri",
		"io.containerd.cri.v1.images",
		"io.containerd.cri.v1.runtime",
		"io.containerd.podsandbox.controller.v1.podsandbox",
	},
}

// DaemonBinaries returns the containerd and ctr binaries for a version
// ("1.6" or "2.4"). They are not checked for existence.
func DaemonBinaries(version string) (containerd, ctr string, err error) {
	switch version {
	case "1.6":
		containerd = Containerd16Binary
	case "2.4":
		containerd = os.Getenv(Containerd24Env)
		if containerd == "" {
			containerd = Containerd24Default
		}
	default:
		return "", "", fmt.Errorf("unknown containerd version %q (want 1.6 or 2.4)", version)
	}
	return containerd, filepath.Join(filepath.Dir(containerd), "ctr"), nil
}

// DaemonOptions configures StartDaemon.
type DaemonOptions struct {
	// Version is "1.6" or "2.4"; it picks the binary unless Binary is set.
	Version string
	// Binary overrides the containerd binary.
	Binary string
	// ShimDirs are put first on the daemon's PATH, in order, so the shims
	// in them win over installed ones. The directory of the containerd
	// binary follows them (for its containerd-shim-runc-v2).
	ShimDirs []string
	// Namespace of the returned client; DefaultNamespace if empty.
	Namespace string
	// EnableCRI keeps the CRI plugins enabled (they are disabled by default).
	EnableCRI bool
	// ExtraConfig is appended verbatim to the generated config (version 2
	// syntax), e.g. CRI plugin tables.
	ExtraConfig string
	// LogLevel of the daemon; "debug" if empty (shim logs need debug).
	LogLevel string
	// StartTimeout bounds the wait for the daemon to serve; 30s if zero.
	StartTimeout time.Duration
	// Env is added to the daemon's environment (and so the shims').
	Env []string
	// Logf receives progress messages.
	Logf Logf
	// ConfigFile, if set, is the config file the daemon runs with, as is
	// (no generated config; ExtraConfig and EnableCRI do not apply): the
	// daemon gets its private root, state and gRPC address from the
	// --root, --state and --address flags. The file must keep every other
	// host-wide path (ttrpc socket, NRI socket, plugin dirs) private.
	ConfigFile string
}

// Daemon is a private containerd whose files all live under Dir.
type Daemon struct {
	Version      string
	Binary       string // containerd
	Ctr          string // the ctr beside the binary
	Dir          string // temp dir holding everything below
	Root         string
	State        string
	Address      string // gRPC socket
	TTRPCAddress string
	ConfigPath   string
	LogPath      string
	Namespace    string
	PATH         string // the daemon's PATH

	// Client is connected to Address with Namespace as default namespace.
	Client *client.Client

	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	logFile *os.File
	logf    Logf
}

// StartDaemon starts containerd with a generated config in a fresh temp dir
// and waits until its API serves. On error nothing is left running.
func StartDaemon(ctx context.Context, opts DaemonOptions) (_ *Daemon, retErr error) {
	bin := opts.Binary
	ctr := ""
	if bin == "" {
		var err error
		bin, ctr, err = DaemonBinaries(opts.Version)
		if err != nil {
			return nil, err
		}
	} else {
		ctr = filepath.Join(filepath.Dir(bin), "ctr")
	}
	if _, err := lookBinary(bin); err != nil {
		return nil, err
	}
	if opts.Version != "" {
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("%s --version: %w: %s", bin, err, out)
		}
		if !strings.Contains(string(out), " "+opts.Version+".") &&
			!strings.Contains(string(out), " v"+opts.Version+".") {
			return nil, fmt.Errorf("%s is not containerd %s: %s", bin, opts.Version, strings.TrimSpace(string(out)))
		}
	}

	// Unix socket paths are limited to 107 bytes: keep the dir short.
	dir, err := os.MkdirTemp("/tmp", "ctd")
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		Version:      opts.Version,
		Binary:       bin,
		Ctr:          ctr,
		Dir:          dir,
		Root:         filepath.Join(dir, "root"),
		State:        filepath.Join(dir, "state"),
		Address:      filepath.Join(dir, "c.sock"),
		TTRPCAddress: filepath.Join(dir, "c.sock.ttrpc"),
		ConfigPath:   filepath.Join(dir, "config.toml"),
		LogPath:      filepath.Join(dir, "containerd.log"),
		Namespace:    opts.Namespace,
		exited:       make(chan struct{}),
		logf:         opts.Logf,
	}
	if d.Namespace == "" {
		d.Namespace = DefaultNamespace
	}
	defer func() {
		if retErr != nil {
			if tail := d.LogTail(60); tail != "" {
				retErr = fmt.Errorf("%w\ncontainerd log tail (%s):\n%s", retErr, d.LogPath, tail)
			}
			_ = d.Stop()
		}
	}()

	args := []string{"--config", d.ConfigPath}
	if opts.ConfigFile != "" {
		d.ConfigPath = opts.ConfigFile
		args = []string{"--config", d.ConfigPath, "--root", d.Root, "--state", d.State, "--address", d.Address}
	} else if err := os.WriteFile(d.ConfigPath, []byte(d.config(opts)), 0o644); err != nil {
		return d, err
	}
	d.logFile, err = os.Create(d.LogPath)
	if err != nil {
		return d, err
	}

	pathDirs := append([]string{}, opts.ShimDirs...)
	pathDirs = append(pathDirs, filepath.Dir(bin))
	if p := os.Getenv("PATH"); p != "" {
		pathDirs = append(pathDirs, p)
	} else {
		pathDirs = append(pathDirs, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	d.PATH = strings.Join(pathDirs, ":")

	cmd := exec.Command(bin, args...)
	cmd.Env = append(envWithout(os.Environ(), "PATH"), "PATH="+d.PATH)
	cmd.Env = append(cmd.Env, opts.Env...)
	cmd.Stdout = d.logFile
	cmd.Stderr = d.logFile
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	d.logf.printf("starting containerd %s (%s) in %s", opts.Version, bin, dir)
	if err := cmd.Start(); err != nil {
		return d, fmt.Errorf("start %s: %w", bin, err)
	}
	d.cmd = cmd
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()

	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if err := d.waitServing(ctx, timeout); err != nil {
		return d, err
	}
	return d, nil
}

func (d *Daemon) config(opts DaemonOptions) string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "version = 2\n")
	fmt.Fprintf(&b, "root = %s\n", q(d.Root))
	fmt.Fprintf(&b, "state = %s\n", q(d.State))
	fmt.Fprintf(&b, "imports = []\n")
	var disabled []string
	if !opts.EnableCRI {
		major := strings.SplitN(opts.Version, ".", 2)[0]
		ids, ok := criPlugins[major]
		if !ok {
			ids = criPlugins["2"]
		}
		for _, id := range ids {
			disabled = append(disabled, q(id))
		}
	}
	fmt.Fprintf(&b, "disabled_plugins = [%s]\n\n", strings.Join(disabled, ", "))
	fmt.Fprintf(&b, "[grpc]\n  address = %s\n\n", q(d.Address))
	fmt.Fprintf(&b, "[ttrpc]\n  address = %s\n\n", q(d.TTRPCAddress))
	level := opts.LogLevel
	if level == "" {
		level = "debug"
	}
	fmt.Fprintf(&b, "[debug]\n  level = %s\n\n", q(level))
	fmt.Fprintf(&b, "[plugins]\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = %s\n\n", q(filepath.Join(d.Dir, "opt")))
	if opts.ExtraConfig != "" {
		b.WriteString(opts.ExtraConfig)
		b.WriteString("\n")
	}
	return b.String()
}

func envWithout(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func (d *Daemon) waitServing(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("containerd exited during startup: %v", d.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("containerd did not serve on %s within %s: %v", d.Address, timeout, lastErr)
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := os.Stat(d.Address); err != nil {
			lastErr = err
			continue
		}
		c, err := client.New(d.Address, client.WithDefaultNamespace(d.Namespace), client.WithTimeout(5*time.Second))
		if err != nil {
			lastErr = err
			continue
		}
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := c.IsServing(sctx)
		scancel()
		if err != nil || !ok {
			lastErr = err
			c.Close()
			continue
		}
		d.Client = c
		d.logf.printf("containerd %s serving on %s", d.Version, d.Address)
		return nil
	}
}

// Context returns ctx with the daemon's namespace.
func (d *Daemon) Context(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, d.Namespace)
}

// TaskBundle is where containerd keeps the task bundle of container id.
func (d *Daemon) TaskBundle(id string) string {
	return filepath.Join(d.State, "io.containerd.runtime.v2.task", d.Namespace, id)
}

// CtrArgs returns the argv prefix to run the daemon's own ctr against it.
func (d *Daemon) CtrArgs() []string {
	return []string{d.Ctr, "--address", d.Address, "--namespace", d.Namespace}
}

// LogTail returns the last n lines of the daemon log.
func (d *Daemon) LogTail(n int) string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogGrep returns the daemon log lines that contain s.
func (d *Daemon) LogGrep(s string) []string {
	f, err := os.Open(d.LogPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// Stop closes the client, stops containerd (SIGTERM, then SIGKILL after
// 10s), kills any process still referring to the daemon's dir (shims,
// runsc sandboxes and gofers a test leaked), unmounts everything under the
// dir and removes it. It reports what it had to kill or unmount in the
// error, joined with real failures.
func (d *Daemon) Stop() error {
	var errs []error
	if d.Client != nil {
		d.Client.Close()
		d.Client = nil
	}
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			d.logf.printf("containerd did not exit on SIGTERM, killing")
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	}
	if d.logFile != nil {
		d.logFile.Close()
	}
	if d.Dir == "" {
		return nil
	}
	if killed := killProcessesMentioning(d.Dir, d.logf); len(killed) > 0 {
		errs = append(errs, fmt.Errorf("killed leftover processes: %s", strings.Join(killed, "; ")))
	}
	if err := unmountUnder(d.Dir, d.logf); err != nil {
		errs = append(errs, err)
	}
	if os.Getenv("HARNESS_KEEP") != "" {
		d.logf.printf("HARNESS_KEEP set: keeping %s", d.Dir)
	} else if err := os.RemoveAll(d.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killProcessesMentioning SIGKILLs processes whose command line contains s.
func killProcessesMentioning(s string, logf Logf) []string {
	var killed []string
	self := os.Getpid()
	for _, p := range processes() {
		if p.pid == self || !strings.Contains(p.cmdline, s) {
			continue
		}
		if err := unix.Kill(p.pid, unix.SIGKILL); err == nil {
			killed = append(killed, fmt.Sprintf("%d %s", p.pid, shorten(p.cmdline, 160)))
			logf.printf("killed leftover process %d: %s", p.pid, shorten(p.cmdline, 160))
		}
	}
	if len(killed) > 0 {
		time.Sleep(500 * time.Millisecond)
	}
	return killed
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string, logf Logf) error {
	var errs []error
	for range 3 {
		var points []string
		for _, m := range mounts() {
			if m.mountPoint == dir || strings.HasPrefix(m.mountPoint, dir+"/") {
				points = append(points, m.mountPoint)
			}
		}
		if len(points) == 0 {
			return nil
		}
		sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
		errs = errs[:0]
		for _, p := range points {
			logf.printf("unmounting leftover mount %s", p)
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

type procInfo struct {
	pid     int
	cmdline string // NULs replaced by spaces
	argv    []string
}

func processes() []procInfo {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		argv := strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
		out = append(out, procInfo{pid: pid, cmdline: strings.Join(argv, " "), argv: argv})
	}
	return out
}

type mountInfo struct {
	mountPoint string
	line       string
}

func mounts() []mountInfo {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []mountInfo
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		out = append(out, mountInfo{mountPoint: unescapeMount(f[4]), line: line})
	}
	return out
}

// unescapeMount undoes the octal escapes (\040 etc.) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
