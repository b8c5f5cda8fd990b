package shim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	runcshim "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/runc"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/fifo"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/oci"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/proc"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// RuntimeName is the runtime type containerd selects this shim with.
const RuntimeName = "io.containerd.runsc.v1"

// Version is the shim's version, set at build time.
var Version = "dev"

// Main runs the shim binary: the `start` action (handled here, so that one
// binary speaks both bootstrap protocols), and everything else through
// containerd's shim library (server, `delete`, -info).
func Main() {
	if versionAction(os.Args[1:]) {
		printVersion(os.Stdout, runsc.DefaultCommand)
		return
	}
	if args, ok := startAction(os.Args[1:]); ok {
		if err := runStart(context.Background(), args); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %s\n", RuntimeName, err)
			os.Exit(1)
		}
		return
	}
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugins.EventPlugin, plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			pp, err := ic.GetByID(plugins.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			ss, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			return NewTaskService(ic.Context, pp.(shim.Publisher), ss.(shutdown.Service))
		},
	})
	// With -debug (containerd's log level is debug), pkg/shim serves this
	// on the shim's debug socket: goroutine and heap profiles of a
	// long-lived pod shim (`curl --unix-socket <socket> http://shim/debug/pprof/goroutine?debug=1`).
	registry.Register(&plugin.Registration{
		Type: plugins.InternalPlugin,
		ID:   "pprof",
		InitFn: func(*plugin.InitContext) (any, error) {
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, nil
		},
	})
	shim.RunShim(context.Background(), &manager{})
}

// socketEnv passes the server its socket address, which it removes when it
// exits (the bundle's address file may be gone by then).
const socketEnv = "RUNSC_SHIM_SOCKET"

// DebugSocket is the debug (pprof) socket of the shim serving address.
func DebugSocket(address string) string {
	return strings.TrimPrefix(address, "unix://") + ".debug"
}

// startFlags are the flags containerd passes to the `start` action (the same
// set pkg/shim parses).
type startFlags struct {
	namespace, id, address, bundle string
	debug                          bool
}

// startAction parses args and reports whether they ask for `start`.
func startAction(args []string) (startFlags, bool) {
	var f startFlags
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&f.debug, "debug", false, "")
	fs.Bool("v", false, "")
	fs.Bool("version", false, "")
	fs.Bool("info", false, "")
	fs.StringVar(&f.namespace, "namespace", "", "")
	fs.StringVar(&f.id, "id", "", "")
	fs.String("socket", "", "")
	fs.String("debug-socket", "", "")
	fs.StringVar(&f.bundle, "bundle", "", "")
	fs.StringVar(&f.address, "address", "", "")
	fs.String("publish-binary", "", "")
	if err := fs.Parse(args); err != nil {
		return f, false
	}
	return f, fs.Arg(0) == "start"
}

// parseBootstrap detects containerd 2.3+'s bootstrap protocol: a protobuf
// BootstrapParams on stdin naming the same id and namespace as the flags.
// Older daemons send the runtime options (or nothing) there instead.
func parseBootstrap(input []byte, id, ns string) (*bootapi.BootstrapParams, bool) {
	if len(input) == 0 {
		return nil, false
	}
	var p bootapi.BootstrapParams
	if err := proto.Unmarshal(input, &p); err != nil {
		return nil, false
	}
	if p.InstanceID != id || p.Namespace != ns {
		return nil, false
	}
	return &p, true
}

func runStart(ctx context.Context, f startFlags) error {
	if f.namespace == "" || f.id == "" {
		return errors.New("start: -namespace and -id are required")
	}
	input, err := io.ReadAll(io.LimitReader(os.Stdin, 10<<20))
	if err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	params, v3 := parseBootstrap(input, f.id, f.namespace)
	if !v3 {
		params = &bootapi.BootstrapParams{
			InstanceID:             f.id,
			Namespace:              f.namespace,
			ContainerdGrpcAddress:  f.address,
			ContainerdTtrpcAddress: os.Getenv("TTRPC_ADDRESS"),
		}
		if f.debug {
			params.LogLevel = bootapi.LogLevel_LOG_LEVEL_DEBUG
		}
	}
	ctx = namespaces.WithNamespace(ctx, f.namespace)
	// containerd 1.6 reads stdout and stderr together as the address: log
	// to the shim log FIFO containerd is reading, or nowhere.
	logrus.SetOutput(io.Discard)
	if lf, err := fifo.OpenFifo(ctx, "log", syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		defer lf.Close()
		logrus.SetOutput(lf)
	}
	address, err := startServer(ctx, params)
	if err != nil {
		return err
	}
	if !v3 {
		// containerd up to 2.2 reads the plain address (1.6 reads stdout
		// and stderr together, so nothing else may be printed).
		_, err = io.WriteString(os.Stdout, address)
		return err
	}
	out, err := proto.Marshal(&bootapi.BootstrapResult{Version: 3, Address: address, Protocol: "ttrpc"})
	if err != nil {
		return fmt.Errorf("marshal bootstrap result: %w", err)
	}
	_, err = os.Stdout.Write(out)
	return err
}

// startServer starts the long-running shim server for the container in the
// current directory (its bundle), or returns the address of the shim that
// already serves its pod. The address is written to the bundle's `address`
// file, where containerd 1.6 looks after a restart.
func startServer(ctx context.Context, params *bootapi.BootstrapParams) (_ string, retErr error) {
	bundle, err := os.Getwd()
	if err != nil {
		return "", err
	}
	group := params.InstanceID
	if spec, err := oci.LoadSpec(bundle); err == nil {
		group = oci.GroupID(spec.Annotations, params.InstanceID)
	}
	socketDir := params.GetSocketDir()
	if socketDir == "" {
		socketDir = filepath.Join(defaults.DefaultStateDir, "s")
	} else if err := linkSocketDir(socketDir); err != nil {
		return "", err
	}
	address, err := shim.CreateSocketAddress(ctx, socketDir, params.ContainerdGrpcAddress, group, false)
	if err != nil {
		return "", fmt.Errorf("socket address: %w", err)
	}
	socket, err := shim.NewSocket(address)
	if err != nil {
		if !shim.SocketEaddrinuse(err) {
			return "", fmt.Errorf("create shim socket %s: %w", address, err)
		}
		if shim.CanConnect(address) {
			// The pod's shim is already running: share it.
			return address, writeAddress(address)
		}
		if err := shim.RemoveSocket(address); err != nil {
			return "", fmt.Errorf("remove stale shim socket: %w", err)
		}
		if socket, err = shim.NewSocket(address); err != nil {
			return "", fmt.Errorf("create shim socket %s: %w", address, err)
		}
	}
	// The server owns the socket now: closing our listener must not unlink it.
	socket.SetUnlinkOnClose(false)
	defer socket.Close()
	defer func() {
		if retErr != nil {
			_ = shim.RemoveSocket(address)
		}
	}()
	sf, err := socket.File()
	if err != nil {
		return "", err
	}
	defer sf.Close()

	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	args := []string{"-namespace", params.Namespace, "-id", params.InstanceID, "-address", params.ContainerdGrpcAddress}
	if params.LogLevel <= bootapi.LogLevel_LOG_LEVEL_DEBUG {
		debugSocket := DebugSocket(address)
		_ = os.Remove(debugSocket) // a dead shim's
		args = append(args, "-debug", "-debug-socket", debugSocket)
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = bundle
	cmd.Env = append(os.Environ(), socketEnv+"="+address)
	if params.ContainerdTtrpcAddress != "" && os.Getenv("TTRPC_ADDRESS") == "" {
		cmd.Env = append(cmd.Env, "TTRPC_ADDRESS="+params.ContainerdTtrpcAddress)
	}
	cmd.ExtraFiles = []*os.File{sf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start shim server: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = cmd.Process.Kill()
		}
	}()
	if err := writeAddress(address); err != nil {
		return "", err
	}
	// Best effort: hosts without CAP_SYS_RESOURCE refuse a lower score.
	if err := shim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		log.G(ctx).WithError(err).Warn("could not adjust the shim's OOM score")
	}
	_ = cmd.Process.Release()
	return address, nil
}

// linkSocketDir records containerd's socket directory in the bundle the way
// pkg/shim does, so that the server removes its socket on exit.
func linkSocketDir(dir string) error {
	const link = "s"
	if _, err := os.Lstat(link); err == nil {
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("replace socket dir link: %w", err)
		}
	}
	if err := os.Symlink(dir, link); err != nil {
		return fmt.Errorf("record socket dir: %w", err)
	}
	return nil
}

// writeAddress atomically writes the shim address to the bundle's `address`.
func writeAddress(address string) error {
	tmp := "address.tmp"
	if err := os.WriteFile(tmp, []byte(address), 0o600); err != nil {
		return fmt.Errorf("write address file: %w", err)
	}
	if err := os.Rename(tmp, "address"); err != nil {
		return fmt.Errorf("write address file: %w", err)
	}
	return nil
}

// manager implements pkg/shim's Shim for the actions it runs for us.
type manager struct{}

func (manager) Name() string { return RuntimeName }

// Start is not reached: Main handles `start` itself for every containerd.
func (manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (*bootapi.BootstrapResult, error) {
	address, err := startServer(ctx, params)
	if err != nil {
		return nil, err
	}
	return &bootapi.BootstrapResult{Version: 3, Address: address, Protocol: "ttrpc"}, nil
}

// Stop is the `delete` action: containerd runs it when a shim is gone. It
// removes the container from runsc (killing its sandbox), unmounts the rootfs
// and the dead shim's socket, and reports the recorded exit (or 137).
func (manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	if err := validateID("container", id); err != nil {
		return shim.StopStatus{}, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return shim.StopStatus{}, err
	}
	bundle := filepath.Join(filepath.Dir(cwd), id)
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return shim.StopStatus{}, err
	}
	settings, ok := readSettings(bundle)
	if !ok {
		settings.Command = runsc.DefaultCommand
		settings.Root = (&Config{}).RunscRoot(ns)
	}
	// Only when runsc still has state for the container (a lost shim): after
	// a normal Delete this costs nothing.
	r := &runsc.Runsc{Command: settings.Command, Root: settings.Root, Bundle: bundle, Flags: settings.Flags,
		Monitor: reaper.Default, IDSuffix: settings.IDSuffix}
	if matches, _ := filepath.Glob(filepath.Join(settings.Root, r.ID(id)+"_sandbox:*.state")); len(matches) > 0 {
		// pkg/shim reaps every child here too: wait through the reaper.
		if err := r.Delete(ctx, id, true); err != nil {
			log.G(ctx).WithError(err).Warn("runsc delete")
		}
		// containerd runs this action for every container of a lost pod
		// shim at once: a member's delete racing its sandbox's can leave
		// runsc's lock files behind (as in the service's Delete).
		ids := []string{id}
		if spec, err := oci.LoadSpec(bundle); err == nil {
			if sid := oci.SandboxID(spec); sid != "" && sid != id && validateID("sandbox", sid) == nil {
				ids = append(ids, sid)
			}
		}
		r.RemoveStaleLocks(ids...)
	}
	if settings.SystemdUnit != "" {
		// The sandbox is gone: so goes its scope (nothing if it stopped
		// by itself already).
		removeLostScope(ctx, bundle, settings.SystemdUnit)
	}
	if err := mount.UnmountRecursive(filepath.Join(bundle, "rootfs"), 0); err != nil {
		log.G(ctx).WithError(err).Warn("unmount rootfs")
	}
	if address, err := shim.ReadAddress(filepath.Join(bundle, "address")); err == nil && !shim.CanConnect(address) {
		_ = shim.RemoveSocket(address)
		// A killed shim's debug socket too.
		_ = os.Remove(DebugSocket(address))
	}
	if e, err := runcshim.ReadExitStatus(bundle); err == nil {
		return shim.StopStatus{Pid: e.Pid, ExitStatus: e.Status, ExitedAt: e.Timestamp}, nil
	}
	pid, _ := runc.ReadPidFile(filepath.Join(bundle, proc.InitPidFile))
	return shim.StopStatus{Pid: pid, ExitStatus: 128 + int(syscall.SIGKILL), ExitedAt: time.Now()}, nil
}

// Info answers `-info`: the runtime's name, version and OCI features. Stats
// and resource limits work with cgroup v1 and v2 hosts alike (the shim reads
// the host's mode itself), with the cgroupfs and the systemd cgroup drivers.
func (manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	yes, no := true, false
	f := &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Linux: &features.Linux{
			Cgroup: &features.Cgroup{V1: &yes, V2: &yes, Systemd: &yes, SystemdUser: &no},
		},
	}
	fa, err := typeurl.MarshalAnyToProto(f)
	if err != nil {
		return nil, fmt.Errorf("encode features: %w", err)
	}
	return &types.RuntimeInfo{
		Name:     RuntimeName,
		Version:  &types.RuntimeVersion{Version: Version},
		Features: fa,
	}, nil
}
