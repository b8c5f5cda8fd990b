package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRINamespace is the containerd namespace of the CRI plugin.
const CRINamespace = "k8s.io"

// CRIImageLabels are the labels CRI puts on the images it pulls; the images
// the harness imports for CRI get them too.
var CRIImageLabels = map[string]string{"io.cri-containerd.image": "managed"}

// Runtime handlers of a CRI daemon (RunPodSandboxRequest.RuntimeHandler).
const (
	// HandlerRunsc runs pods with the runsc shim, runsc network "host".
	HandlerRunsc = "runsc"
	// HandlerRunscDebug is HandlerRunsc with runsc's debug log into
	// CRIDaemon.RunscDebugLogDir.
	HandlerRunscDebug = "runsc-debug"
	// HandlerRunscNetstack is HandlerRunsc with runsc's own network stack
	// (network "sandbox", runsc's default) in the pod's network namespace.
	HandlerRunscNetstack = "runsc-netstack"
	// HandlerRunc runs pods with containerd's runc shim, for comparison.
	HandlerRunc = "runc"
)

// CRIDaemonOptions configures StartCRIDaemon.
type CRIDaemonOptions struct {
	// Version is "1.6" or "2.4".
	Version string
	// ShimDirs go first on the daemon's PATH (the runsc shim under test).
	ShimDirs []string
	// RunscFlags are added to the [runsc_config] of the runsc handlers,
	// besides network = "host".
	RunscFlags map[string]string
	// PauseBinary is a static pause built by BuildPause; built into the
	// CRI dir if empty.
	PauseBinary string
	// StartTimeout bounds daemon start-up and CRI readiness; 60s if zero.
	StartTimeout time.Duration
	// RuncSystemdCgroup sets SystemdCgroup = true in the runc handler's
	// options, as on a node whose kubelet uses the systemd cgroup driver
	// (containerd 2.x reports the CRI's cgroup driver from it).
	RuncSystemdCgroup bool
	Logf              Logf
}

// CRIDaemon is a containerd with the CRI plugin serving the runsc, runsc-debug
// and runc runtime handlers, a private CNI bridge network, the pause image
// as sandbox image and busybox, both imported in the CRI namespace.
type CRIDaemon struct {
	*Daemon
	// K8s is a view of Daemon in CRINamespace, for TaskBundle, Leftovers...
	// (never Stop it).
	K8s *Daemon
	// Dir holds runsc configs, runsc roots, debug logs and the CNI network;
	// it is not under Daemon.Dir so that it can be set up before the daemon.
	Dir string
	// Runsc, RunscDebug and RunscNetstack are the runsc.toml of the runsc
	// handlers.
	Runsc, RunscDebug, RunscNetstack RunscConfig
	// RunscDebugLogDir receives runsc's debug logs of HandlerRunscDebug pods.
	RunscDebugLogDir string
	Network          *CNINetwork

	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient
	conn    *grpc.ClientConn
	logf    Logf
}

// StartCRIDaemon builds (unless given) the pause binary, writes runsc
// configs and a CNI network, starts containerd with the CRI enabled, imports
// the pause and busybox images for CRI and waits until the CRI runtime and
// network report ready. On error everything is cleaned up.
func StartCRIDaemon(ctx context.Context, opts CRIDaemonOptions) (_ *CRIDaemon, retErr error) {
	dir, err := os.MkdirTemp("/tmp", "cri")
	if err != nil {
		return nil, err
	}
	c := &CRIDaemon{Dir: dir, logf: opts.Logf}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, c.Stop())
		}
	}()
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}

	pause := opts.PauseBinary
	if pause == "" {
		if pause, err = BuildPause(filepath.Join(dir, "pause")); err != nil {
			return c, err
		}
	}
	flags := map[string]string{"network": "host"}
	for k, v := range opts.RunscFlags {
		flags[k] = v
	}
	if c.Runsc, err = WriteRunscConfig(filepath.Join(dir, "runsc"), flags); err != nil {
		return c, err
	}
	c.RunscDebugLogDir = filepath.Join(dir, "runsc-debug-logs") + "/"
	dflags := map[string]string{"debug": "true", "debug-log": c.RunscDebugLogDir}
	for k, v := range flags {
		dflags[k] = v
	}
	if c.RunscDebug, err = WriteRunscConfig(filepath.Join(dir, "runsc-debug"), dflags); err != nil {
		return c, err
	}
	nflags := map[string]string{}
	for k, v := range flags {
		nflags[k] = v
	}
	nflags["network"] = "sandbox"
	if c.RunscNetstack, err = WriteRunscConfig(filepath.Join(dir, "runsc-netstack"), nflags); err != nil {
		return c, err
	}
	if c.Network, err = NewCNINetwork(filepath.Join(dir, "cni")); err != nil {
		return c, err
	}

	d, err := StartDaemon(ctx, DaemonOptions{
		Version:      opts.Version,
		ShimDirs:     opts.ShimDirs,
		Namespace:    CRINamespace,
		EnableCRI:    true,
		ExtraConfig:  c.config(opts.Version, opts.RuncSystemdCgroup),
		StartTimeout: timeout,
		Logf:         opts.Logf,
	})
	if err != nil {
		return c, err
	}
	c.Daemon = d
	view := *d
	c.K8s = &view

	ictx := namespaces.WithNamespace(ctx, CRINamespace)
	archive, err := PauseArchive(pause)
	if err != nil {
		return c, err
	}
	if _, err := ImportArchive(ictx, d.Client, archive, PauseRef, CRIImageLabels, opts.Logf); err != nil {
		return c, err
	}
	if archive, err = BusyboxArchive(BusyboxBinary, BusyboxRef); err != nil {
		return c, err
	}
	if _, err := ImportArchive(ictx, d.Client, archive, BusyboxRef, CRIImageLabels, opts.Logf); err != nil {
		return c, err
	}

	c.conn, err = grpc.NewClient("unix://"+d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return c, fmt.Errorf("dial CRI at %s: %w", d.Address, err)
	}
	c.Runtime = runtimeapi.NewRuntimeServiceClient(c.conn)
	c.Images = runtimeapi.NewImageServiceClient(c.conn)
	if err := c.waitReady(ctx, timeout); err != nil {
		return c, err
	}
	return c, nil
}

// config is the CRI part of the daemon config, in version 2 syntax, which
// containerd 2.x migrates (sandbox_image to the images plugin's
// pinned_images.sandbox, cni.bin_dir to bin_dirs, runtimes to the runtime
// plugin).
func (c *CRIDaemon) config(version string, runcSystemd bool) string {
	q := strconv.Quote
	const cri = `plugins."io.containerd.grpc.v1.cri"`
	var b strings.Builder
	fmt.Fprintf(&b, "[%s]\n", cri)
	fmt.Fprintf(&b, "  sandbox_image = %s\n", q(PauseRef))
	// This host cannot lower oom_score_adj: without this, pods fail.
	fmt.Fprintf(&b, "  restrict_oom_score_adj = true\n")
	fmt.Fprintf(&b, "  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n")
	fmt.Fprintf(&b, "  enable_selinux = false\n")
	fmt.Fprintf(&b, "[%s.containerd]\n", cri)
	fmt.Fprintf(&b, "  snapshotter = %s\n  default_runtime_name = %s\n", q(DefaultSnapshotter), q(HandlerRunc))
	fmt.Fprintf(&b, "[%s.containerd.runtimes.%s]\n  runtime_type = \"io.containerd.runc.v2\"\n", cri, HandlerRunc)
	if runcSystemd {
		fmt.Fprintf(&b, "[%s.containerd.runtimes.%s.options]\n  SystemdCgroup = true\n", cri, HandlerRunc)
	}
	for _, h := range []struct {
		name string
		cfg  RunscConfig
	}{{HandlerRunsc, c.Runsc}, {HandlerRunscDebug, c.RunscDebug}, {HandlerRunscNetstack, c.RunscNetstack}} {
		fmt.Fprintf(&b, "[%s.containerd.runtimes.%s]\n  runtime_type = %s\n", cri, q(h.name), q(RuntimeName))
		fmt.Fprintf(&b, "[%s.containerd.runtimes.%s.options]\n", cri, q(h.name))
		fmt.Fprintf(&b, "  TypeUrl = %s\n  ConfigPath = %s\n", q(RuntimeName+".options"), q(h.cfg.Path))
	}
	fmt.Fprintf(&b, "[%s.cni]\n  bin_dir = %s\n  conf_dir = %s\n  max_conf_num = 1\n", cri, q(CNIBinDir), q(c.Network.ConfDir))
	if !strings.HasPrefix(version, "1.") {
		// NRI would listen on the host-wide /var/run/nri/nri.sock.
		fmt.Fprintf(&b, "[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = true\n")
	}
	return b.String()
}

func (c *CRIDaemon) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := c.Runtime.Status(sctx, &runtimeapi.StatusRequest{})
		scancel()
		if err != nil {
			last = err.Error()
		} else {
			// Other conditions (containerd 2.x's deprecation warnings,
			// e.g. for cgroup v1) do not stop pods.
			ready := map[string]bool{}
			last = ""
			for _, cond := range st.GetStatus().GetConditions() {
				ready[cond.Type] = cond.Status
				last += fmt.Sprintf("%s=%v(%s: %s) ", cond.Type, cond.Status, cond.Reason, cond.Message)
			}
			if ready[runtimeapi.RuntimeReady] && ready[runtimeapi.NetworkReady] {
				c.logf.printf("CRI ready: %s", last)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRI not ready within %s: %s", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RunscRootFor is the runsc state root the shim uses for CRI containers
// run with cfg.
func RunscRootFor(cfg RunscConfig) string {
	return filepath.Join(cfg.Root, CRINamespace)
}

// Stop removes the pods a test left (reporting them), closes the CRI
// connection, stops the daemon (see Daemon.Stop), unmounts and removes the
// network namespaces and CNI cache entries of pods that could not be
// removed, removes the bridge and restores ip_forward, and removes Dir
// (unless HARNESS_KEEP is set).
func (c *CRIDaemon) Stop() error {
	var errs []error
	netnses, sandboxes := map[string]bool{}, map[string]bool{}
	if c.Runtime != nil {
		errs = append(errs, c.removePods(netnses, sandboxes))
	}
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	if c.Daemon != nil {
		errs = append(errs, c.Daemon.Stop())
	}
	if c.Dir != "" {
		if killed := killProcessesMentioning(c.Dir, c.logf); len(killed) > 0 {
			errs = append(errs, fmt.Errorf("killed leftover processes: %s", strings.Join(killed, "; ")))
		}
		errs = append(errs, unmountUnder(c.Dir, c.logf))
	}
	if c.Network != nil {
		for id, netns := range c.Network.cachedAttachments() {
			sandboxes[id] = true
			netnses[netns] = true
		}
		for netns := range netnses {
			if _, err := os.Lstat(netns); err != nil {
				continue
			}
			errs = append(errs, fmt.Errorf("network namespace left: %s", netns))
			if err := unix.Unmount(netns, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
				errs = append(errs, fmt.Errorf("unmount %s: %w", netns, err))
			}
			errs = append(errs, os.Remove(netns))
		}
		for id := range sandboxes {
			for _, e := range c.Network.CacheEntries(id) {
				errs = append(errs, fmt.Errorf("CNI cache entry left: %s", e))
				errs = append(errs, os.Remove(e))
			}
		}
		errs = append(errs, c.Network.Cleanup(c.logf))
	}
	if c.Dir != "" {
		if os.Getenv("HARNESS_KEEP") != "" {
			c.logf.printf("HARNESS_KEEP set: keeping %s", c.Dir)
		} else {
			errs = append(errs, os.RemoveAll(c.Dir))
		}
	}
	return errors.Join(errs...)
}

// removePods stops and removes every pod sandbox still known to the CRI,
// recording their network namespaces and ids, and reports them.
func (c *CRIDaemon) removePods(netnses, sandboxes map[string]bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	list, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list pods at daemon stop: %w", err)
	}
	var errs []error
	for _, p := range list.Items {
		sandboxes[p.Id] = true
		if st, err := c.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.Id, Verbose: true}); err == nil {
			if si, err := ParseSandboxInfo(st.GetInfo()); err == nil && si.NetNSPath() != "" {
				netnses[si.NetNSPath()] = true
			}
		}
		errs = append(errs, fmt.Errorf("pod %s (%s) still there at daemon stop", p.Id, p.GetMetadata().GetName()))
		if _, err := c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("StopPodSandbox %s: %w", p.Id, err))
		}
		if _, err := c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("RemovePodSandbox %s: %w", p.Id, err))
		}
	}
	return errors.Join(errs...)
}

// PodRecord is what a test learned about a pod while it ran, to check
// after RemovePodSandbox that the pod left nothing behind.
type PodRecord struct {
	SandboxID    string
	ContainerIDs []string
	// NetNS is the pod's network namespace path ("" for host network).
	NetNS string
	// ShimAddress is the shim socket read from the sandbox's bundle.
	ShimAddress string
	// RunscRoot is the runsc root of the pod's handler.
	RunscRoot string
}

// SandboxInfo is the part of the verbose PodSandboxStatus info the tests use.
type SandboxInfo struct {
	Pid         int    `json:"pid"`
	RuntimeType string `json:"runtimeType"`
	RuntimeSpec struct {
		Linux struct {
			Namespaces []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

// ParseSandboxInfo decodes the "info" entry of a verbose PodSandboxStatus.
func ParseSandboxInfo(info map[string]string) (SandboxInfo, error) {
	var si SandboxInfo
	raw, ok := info["info"]
	if !ok {
		return si, fmt.Errorf("verbose sandbox status has no \"info\" (keys %v)", keys(info))
	}
	if err := json.Unmarshal([]byte(raw), &si); err != nil {
		return si, fmt.Errorf("sandbox info: %w", err)
	}
	return si, nil
}

// NetNSPath returns the network namespace path of the sandbox's spec.
func (si SandboxInfo) NetNSPath() string {
	for _, ns := range si.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" {
			return ns.Path
		}
	}
	return ""
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// PodLeftovers lists what the pod left behind: for the sandbox and each
// container, Daemon.Leftovers in the CRI namespace (runsc and shim
// processes, mounts, runsc state, task bundle); plus any file under the
// daemon's root or state whose name contains one of the ids (CRI's sandbox
// and container dirs, the sandbox's /dev/shm), the netns, the shim socket,
// and the CNI cache entries of the pod.
func (c *CRIDaemon) PodLeftovers(p PodRecord) []string {
	ids := append([]string{p.SandboxID}, p.ContainerIDs...)
	var out []string
	for _, id := range ids {
		out = append(out, c.K8s.Leftovers(id, p.RunscRoot)...)
	}
	for _, root := range []string{c.Daemon.Root, c.Daemon.State} {
		_ = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			for _, id := range ids {
				if strings.Contains(e.Name(), id) {
					out = append(out, "path exists: "+path)
					if e.IsDir() {
						return fs.SkipDir
					}
					return nil
				}
			}
			return nil
		})
	}
	for _, path := range []string{p.NetNS, p.ShimAddress} {
		if path == "" {
			continue
		}
		if _, err := os.Lstat(path); err == nil {
			out = append(out, "path exists: "+path)
		}
	}
	for _, m := range mounts() {
		if p.NetNS != "" && m.mountPoint == p.NetNS {
			out = append(out, "netns mount: "+m.line)
		}
	}
	for _, e := range c.Network.CacheEntries(p.SandboxID) {
		out = append(out, "CNI cache entry: "+e)
	}
	return dedupe(out)
}

// WaitNoPodLeftovers polls PodLeftovers until it is empty or grace passed.
func (c *CRIDaemon) WaitNoPodLeftovers(grace time.Duration, p PodRecord) []string {
	deadline := time.Now().Add(grace)
	for {
		left := c.PodLeftovers(p)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Process is a process on the host, for tests that count them.
type Process struct {
	Pid     int
	Name    string // base name of argv[0]
	Cmdline string
	Argv    []string
}

// Processes lists the host's processes (those whose cmdline is readable).
func Processes() []Process {
	var out []Process
	for _, p := range processes() {
		out = append(out, Process{Pid: p.pid, Name: filepath.Base(p.argv[0]), Cmdline: p.cmdline, Argv: p.argv})
	}
	return out
}

// ProcessesMentioning lists the processes whose command line contains any
// of subs.
func ProcessesMentioning(subs ...string) []Process {
	var out []Process
	self := os.Getpid()
	for _, p := range processes() {
		if p.pid == self {
			continue
		}
		for _, s := range subs {
			if s != "" && strings.Contains(p.cmdline, s) {
				out = append(out, Process{Pid: p.pid, Name: filepath.Base(p.argv[0]), Cmdline: p.cmdline, Argv: p.argv})
				break
			}
		}
	}
	return out
}
