package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/oci"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/proc"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// settingsFile records, in the bundle, how runsc was run for a container so
// that the `delete` action can clean up after a lost shim.
const settingsFile = "runsc-shim.json"

type runscSettings struct {
	Command string   `json:"command"`
	Root    string   `json:"root"`
	Flags   []string `json:"flags,omitempty"`
	// IDSuffix is what the container's runsc id adds to its id (absent
	// for containers of shims before it existed).
	IDSuffix string `json:"id_suffix,omitempty"`
	// SystemdUnit is the sandbox's scope unit (systemd cgroup driver),
	// which the `delete` action stops.
	SystemdUnit string `json:"systemd_unit,omitempty"`
}

// container is one container served by this shim: its init process and
// its exec processes.
type container struct {
	id     string
	bundle string
	runsc  *runsc.Runsc
	init   *proc.Init

	// lifecycle orders a process's /tasks/start before its /tasks/exit.
	lifecycle sync.Mutex

	sandboxID string
	spec      *specs.Spec
	// pod is the sandbox's cgroup sizing and OOM counter (nil when the
	// sandbox has no cgroup of its own); oomBase is its OOM count when the
	// container joined.
	pod     *pod
	oomBase uint64
	// scope is the sandbox's systemd scope (systemd cgroup driver) when
	// this container started the sandbox; nil with the cgroupfs driver.
	scope *systemdScope

	mu    sync.Mutex
	execs map[string]proc.Process
	// resources are the container's own limits; memLimit the memory one in
	// bytes (0: none).
	resources *specs.LinuxResources
	memLimit  uint64
	// cpuMax is the highest CPU usage reported, in ns.
	cpuMax uint64
	// overhead is the memory the sandbox gets for itself beyond its
	// containers' limits, if this container starts one
	// (sandbox_overhead_mib; -1: measured), and perContainer what it gets
	// for each container that joins it (container_overhead_mib).
	overhead, perContainer int64
}

// gvisorSandbox is the id of the sandbox c runs in: its own, or for a
// container that joined a pod's, the pod's.
func (c *container) gvisorSandbox() string {
	if c.init.Subcontainer() {
		return c.sandboxID
	}
	return c.id
}

func (c *container) memoryLimit() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.memLimit
}

// newContainer prepares a container from a Create request; init.Create
// runs runsc.
func newContainer(ctx context.Context, platform stdio.Platform, ns string, r *taskAPI.CreateTaskRequest) (*container, error) {
	cfg, cfgPath, err := ConfigFromOptions(r.Options)
	if err != nil {
		return nil, err
	}
	cfg = cfg.ForID(r.ID)
	applyLogConfig(ctx, cfg)
	rs, err := newRunsc(ctx, cfg, cfgPath, ns, r.Bundle)
	if err != nil {
		return nil, err
	}
	spec, err := oci.LoadSpec(r.Bundle)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	rs.Flags = append(rs.Flags, compatFlags(ctx, r.ID, cfg, rs.Features, spec)...)
	warnIgnoredSpec(ctx, r.ID, spec)
	sandboxID := oci.SandboxID(spec)
	if sandboxID != "" {
		if err := validateID("sandbox (from the spec's annotations)", sandboxID); err != nil {
			return nil, err
		}
	}
	subcontainer := oci.Kind(spec) == oci.Container && sandboxID != "" && sandboxID != r.ID
	scope, err := cgroupDriver(ctx, cfg, cfgPath, r.ID, r.Bundle, spec, subcontainer)
	if err != nil {
		return nil, err
	}
	var (
		unit      string
		sandboxCg proc.SandboxCgroup
	)
	if scope != nil {
		unit, sandboxCg = scope.scope.Unit, scope
	}
	if err := writeSettings(r.Bundle, rs, unit); err != nil {
		return nil, err
	}
	init := proc.NewInit(proc.InitConfig{
		ID:       r.ID,
		Bundle:   r.Bundle,
		Runsc:    rs,
		Platform: platform,
		Stdio: stdio.Stdio{
			Stdin:    r.Stdin,
			Stdout:   r.Stdout,
			Stderr:   r.Stderr,
			Terminal: r.Terminal,
		},
		Rootfs:       mount.FromProto(r.Rootfs),
		Spec:         spec,
		Subcontainer: subcontainer,
		Cgroup:       sandboxCg,
		Checkpoint:   r.Checkpoint,
	})
	var res *specs.LinuxResources
	if spec.Linux != nil {
		res = spec.Linux.Resources
	}
	return &container{
		id:           r.ID,
		bundle:       r.Bundle,
		runsc:        rs,
		init:         init,
		execs:        make(map[string]proc.Process),
		sandboxID:    sandboxID,
		spec:         spec,
		resources:    res,
		memLimit:     oci.MemoryLimit(spec),
		scope:        scope,
		overhead:     cfg.SandboxOverhead(),
		perContainer: cfg.ContainerOverhead(),
	}, nil
}

// newRunsc resolves the runsc binary and root from the configuration.
func newRunsc(ctx context.Context, cfg *Config, cfgPath, ns, bundle string) (*runsc.Runsc, error) {
	name := cfg.RunscBinary()
	from := "the default"
	if cfgPath != "" {
		from = "binary_name in " + cfgPath
	}
	binary, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("runsc binary %q (%s) not found: %v: %w", name, from, err, errdefs.ErrFailedPrecondition)
	}
	features, err := runsc.Probe(ctx, binary, reaper.Default)
	if err != nil {
		return nil, fmt.Errorf("runsc binary %q (%s): %v: %w", name, from, err, errdefs.ErrFailedPrecondition)
	}
	if err := cfg.checkFlags(features, cfgPath); err != nil {
		return nil, err
	}
	root := cfg.RunscRoot(ns)
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("create runsc root %s: %w", root, err)
	}
	return &runsc.Runsc{
		Command:  binary,
		Root:     root,
		Bundle:   bundle,
		Flags:    cfg.RunscFlags(),
		Monitor:  reaper.Default,
		IDSuffix: runsc.IDSuffix,
		Features: features,
	}, nil
}

func writeSettings(bundle string, r *runsc.Runsc, unit string) error {
	b, err := json.Marshal(runscSettings{Command: r.Command, Root: r.Root, Flags: r.Flags, IDSuffix: r.IDSuffix, SystemdUnit: unit})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, settingsFile), b, 0o600); err != nil {
		return fmt.Errorf("record runsc settings in bundle: %w", err)
	}
	return nil
}

// readSettings returns how runsc ran for the bundle; ok is false if the
// shim never recorded it.
func readSettings(bundle string) (runscSettings, bool) {
	var s runscSettings
	b, err := os.ReadFile(filepath.Join(bundle, settingsFile))
	if err != nil || json.Unmarshal(b, &s) != nil {
		return s, false
	}
	return s, true
}

// logSetup is what applyLogConfig did to the shim's logger: one shim
// serves a pod's containers for weeks, and each Create must not add another
// hook (and an open file) for the same log_path.
var logSetup struct {
	sync.Mutex
	level string
	paths map[string]bool
}

// applyLogConfig applies log_level and log_path from runsc.toml to the shim's
// logger, once per level and path. Failures are warnings: logging must never
// fail a container.
func applyLogConfig(ctx context.Context, cfg *Config) {
	logSetup.Lock()
	defer logSetup.Unlock()
	if cfg.LogLevel != "" && cfg.LogLevel != logSetup.level {
		if err := log.SetLevel(cfg.LogLevel); err != nil {
			log.G(ctx).WithError(err).Warn("set shim log level")
		} else {
			logSetup.level = cfg.LogLevel
		}
	}
	if cfg.LogPath == "" || logSetup.paths[cfg.LogPath] {
		return
	}
	if err := os.MkdirAll(filepath.Dir(cfg.LogPath), 0o755); err != nil {
		log.G(ctx).WithError(err).Warn("create shim log directory")
		return
	}
	f, err := os.OpenFile(cfg.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		log.G(ctx).WithError(err).Warn("open shim log file")
		return
	}
	if logSetup.paths == nil {
		logSetup.paths = make(map[string]bool)
	}
	logSetup.paths[cfg.LogPath] = true
	log.L.Logger.AddHook(&fileHook{f: f})
}

func (c *container) process(execID string) (proc.Process, error) {
	if execID == "" {
		return c.init, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[execID]
	if !ok {
		return nil, fmt.Errorf("exec %q in container %q: %w", execID, c.id, errdefs.ErrNotFound)
	}
	return p, nil
}

// delete releases everything the container holds.
func (c *container) delete(ctx context.Context) error {
	return c.init.Delete(ctx)
}

// waitExecs waits, at most d, until every exec of the container that is
// running has exited (its exit is recorded and published under the
// lifecycle lock, which the caller takes next).
func (c *container) waitExecs(d time.Duration) {
	c.mu.Lock()
	var running []proc.Process
	for _, e := range c.execs {
		if e.Status() == proc.Running {
			running = append(running, e)
		}
	}
	c.mu.Unlock()
	if len(running) == 0 {
		return
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for _, e := range running {
		select {
		case <-e.Done():
		case <-deadline.C:
			log.L.WithField("id", c.id).WithField("exec", e.ID()).Warn("container exited but its exec did not: reporting the container's exit first")
			return
		}
	}
}

// lifecycleBarrier returns once whoever holds the lifecycle lock now (a
// handleExit publishing an exit) has released it.
func (c *container) lifecycleBarrier() {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
}
