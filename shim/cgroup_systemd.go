package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/oci"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/systemd"
)

// The systemd cgroup driver.
//
// A sandbox whose cgroupsPath is "slice:prefix:name" (containerd's CRI sends
// that for a pod whose cgroup parent is a slice, e.g. kubelet's systemd
// driver), or any sandbox when runsc.toml sets systemd-cgroup = "true", lives
// in the transient scope unit "<prefix>-<name>.scope" in that slice, created
// through systemd's D-Bus API as runc's systemd driver does. runsc itself
// cannot be trusted with it: Debian's runsc 20221219 ignores --systemd-cgroup
// on cgroup v1 and creates a directory literally named "slice:prefix:name",
// and current runsc implements it on cgroup v2 only. So the shim:
//
//  1. starts `runsc create` held before it runs runsc (runsc.CreateOpts.Place),
//  2. creates the scope with that pid (Slice=, Delegate=yes, the spec's
//     limits as unit properties) and waits for systemd's job,
//  3. rewrites the bundle's cgroupsPath to the scope's cgroupfs path, which
//     runsc (both generations) joins like any cgroupfs path, and releases
//     runsc: the gofer and sandbox it forks start inside the scope;
//  4. sizes, updates (unit properties and cgroupfs), reads stats and OOM
//     kills of that cgroup;
//  5. stops the unit at delete (also in the `delete` action after a lost shim).
//
// A container that joins a pod's sandbox runs inside the sandbox: its own
// systemd cgroupsPath is dropped from its spec, so that runsc creates no
// directory for it; its limits resize the sandbox's scope; its `runsc
// start`, which starts its gofer, is attached to the scope first (runsc
// would move the gofer into the v1 hierarchies only, and systemd, watching
// the unified one on a hybrid host, would neither kill nor wait for it).

// cgroupDriver decides how the sandbox's cgroup is made for a container
// about to be created, and prepares its spec. It returns nil for the
// cgroupfs driver (runsc makes the cgroup from the spec). Malformed systemd
// paths are InvalidArgument, an unreachable systemd FailedPrecondition,
// before anything is created.
func cgroupDriver(ctx context.Context, cfg *Config, cfgPath, id, bundle string, spec *specs.Spec, subcontainer bool) (*systemdScope, error) {
	path := oci.CgroupsPath(spec)
	if !cfg.SystemdCgroup && !oci.IsSystemdCgroupsPath(path) {
		return nil, nil
	}
	from := "the spec's linux.cgroupsPath"
	if cfg.SystemdCgroup {
		from = fmt.Sprintf("systemd-cgroup = \"true\" in [runsc_config] of %s", configName(cfgPath))
		if path == "" {
			// runsc's own default for --systemd-cgroup.
			path = ":runsc:" + id
		} else if !oci.IsSystemdCgroupsPath(path) {
			return nil, fmt.Errorf("container %q: %s needs a cgroupsPath of the form slice:prefix:name, got %q: %w",
				id, from, path, errdefs.ErrInvalidArgument)
		}
	}
	sc, err := oci.ParseSystemdCgroupsPath(path)
	if err != nil {
		return nil, fmt.Errorf("container %q: %w", id, err)
	}
	if subcontainer {
		// Its processes run in the pod's sandbox, in the sandbox's scope.
		if spec.Linux != nil && spec.Linux.CgroupsPath != "" {
			spec.Linux.CgroupsPath = ""
			if err := oci.SaveSpec(bundle, spec); err != nil {
				return nil, fmt.Errorf("container %q: drop systemd cgroupsPath %q from the spec: %w", id, path, err)
			}
		}
		return nil, nil
	}
	if err := systemd.Check(ctx); err != nil {
		return nil, fmt.Errorf("container %q: cgroupsPath %q (from %s) asks for the systemd cgroup driver, which needs systemd: %w",
			id, path, from, err)
	}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	return &systemdScope{
		path:   sc,
		bundle: bundle,
		spec:   spec,
		scope: systemd.Scope{
			Unit:        sc.Unit(),
			Slice:       sc.Slice,
			Description: "gVisor sandbox " + id,
			V2:          unifiedCgroups,
		},
	}, nil
}

func configName(path string) string {
	if path == "" {
		return "the runtime options"
	}
	return path
}

// systemdScope is a sandbox's scope unit (proc.SandboxCgroup).
type systemdScope struct {
	path   oci.SystemdCgroup
	scope  systemd.Scope
	bundle string
	spec   *specs.Spec

	mu sync.Mutex
	// cgroup is the scope's cgroupfs path, known once it was placed.
	cgroup string
	// started: this shim started the unit (and so may stop it: a failed
	// Start may mean another sandbox's unit has the name).
	started bool
	// foreign are the directories of the scope's path (and its slices')
	// that did not exist in the v1 hierarchies systemd does not manage
	// (cpuset, freezer...) before runsc ran: runsc creates them there
	// (mkdir -p) and removes only the scope's own, so the shim removes the
	// rest with the scope. Deepest first.
	foreign []string
}

// Place creates the scope with the held runsc process pid in it and points
// runsc's spec at the scope's cgroupfs path.
func (s *systemdScope) Place(ctx context.Context, pid int) error {
	var res *specs.LinuxResources
	if s.spec.Linux != nil {
		res = s.spec.Linux.Resources
	}
	if err := s.scope.Start(ctx, pid, res); err != nil {
		return fmt.Errorf("create systemd scope %s in %s for cgroupsPath %q: %w", s.scope.Unit, s.scope.Slice, s.path, err)
	}
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	cg, err := scopeCgroup(pid, s.scope.Unit)
	var foreign []string
	if err == nil {
		foreign = missingCgroupDirs(cgroupV1Root, cg)
		// For the `delete` action, should this shim be lost.
		err = writeScopeRecord(s.bundle, scopeRecord{Unit: s.scope.Unit, Dirs: foreign})
	}
	if err == nil {
		s.spec.Linux.CgroupsPath = cg
		err = oci.SaveSpec(s.bundle, s.spec)
	}
	if err != nil {
		if serr := s.Remove(context.WithoutCancel(ctx)); serr != nil {
			log.G(ctx).WithError(serr).Warn("stop systemd scope")
		}
		return fmt.Errorf("systemd scope %s for cgroupsPath %q: %w", s.scope.Unit, s.path, err)
	}
	s.mu.Lock()
	s.cgroup, s.foreign = cg, foreign
	s.mu.Unlock()
	log.G(ctx).WithField("unit", s.scope.Unit).WithField("cgroup", cg).Debug("sandbox in systemd scope")
	return nil
}

// Remove stops the scope and removes the directories runsc made for it
// outside systemd's hierarchies.
func (s *systemdScope) Remove(ctx context.Context) error {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		return nil
	}
	if err := s.scope.Stop(ctx); err != nil {
		return fmt.Errorf("remove systemd scope %s: %w", s.scope.Unit, err)
	}
	s.mu.Lock()
	foreign := s.foreign
	s.foreign, s.started = nil, false
	s.mu.Unlock()
	removeCgroupDirs(ctx, foreign)
	if err := os.Remove(filepath.Join(s.bundle, scopeFile)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove %s: %w", scopeFile, err)
	}
	return nil
}

// removeCgroupDirs removes the (empty) cgroup directories dirs, which must
// be below cgroupV1Root.
func removeCgroupDirs(ctx context.Context, dirs []string) {
	for _, dir := range dirs {
		if filepath.Clean(dir) != dir || !strings.HasPrefix(dir, cgroupV1Root+"/") {
			log.G(ctx).WithField("dir", dir).Warn("not removing a cgroup directory outside " + cgroupV1Root)
			continue
		}
		// Not empty or busy: another sandbox's runsc uses it now.
		if err := unix.Rmdir(dir); err != nil && err != unix.ENOENT && err != unix.ENOTEMPTY && err != unix.EBUSY {
			log.G(ctx).WithError(err).WithField("dir", dir).Warn("remove cgroup directory")
		}
	}
}

// scopeFile records, in the bundle, the sandbox's scope and the cgroup
// directories the shim removes with it, for the `delete` action.
const scopeFile = "systemd-scope.json"

type scopeRecord struct {
	Unit string   `json:"unit"`
	Dirs []string `json:"dirs,omitempty"`
}

func writeScopeRecord(bundle string, r scopeRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, scopeFile), b, 0o600); err != nil {
		return fmt.Errorf("record the systemd scope in the bundle: %w", err)
	}
	return nil
}

// removeLostScope is the `delete` action's part of the systemd driver: it
// stops the scope of a sandbox whose shim was lost and removes the
// directories recorded with it. Only a scope the shim recorded as started
// (it may be another sandbox's otherwise); a shim lost before it recorded
// the scope left a held runsc process that exits at once, and systemd
// stops the emptied scope itself.
func removeLostScope(ctx context.Context, bundle, unit string) {
	var rec scopeRecord
	b, err := os.ReadFile(filepath.Join(bundle, scopeFile))
	if err != nil {
		return
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Unit != unit {
		log.G(ctx).WithError(err).WithField("unit", unit).Warnf("%s does not name the sandbox's unit: not stopping it", scopeFile)
		return
	}
	if err := (systemd.Scope{Unit: unit}).Stop(ctx); err != nil {
		log.G(ctx).WithError(err).Warn("stop the sandbox's systemd scope")
		return
	}
	removeCgroupDirs(ctx, rec.Dirs)
	_ = os.Remove(filepath.Join(bundle, scopeFile))
}

// cgroupV1Root is where the v1 hierarchies are mounted.
var cgroupV1Root = "/sys/fs/cgroup"

// missingCgroupDirs returns, deepest first, the directories of cgroup path
// cg (and of its parents) that do not exist in the v1 hierarchies under
// root other than systemd's own (name=systemd, unified). None on cgroup v2.
func missingCgroupDirs(root, cg string) []string {
	if unifiedCgroups {
		return nil
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		// Symlinks (cpu -> cpu,cpuacct) name a hierarchy listed as a
		// directory too.
		if !e.IsDir() || name == "systemd" || name == "unified" {
			continue
		}
		h := filepath.Join(root, name)
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err != nil {
			continue
		}
		for dir := filepath.Join(h, cg); dir != h && strings.HasPrefix(dir, h+"/"); dir = filepath.Dir(dir) {
			if _, err := os.Stat(dir); err == nil {
				break
			}
			out = append(out, dir)
		}
	}
	// Deepest first within each hierarchy already; across hierarchies the
	// order does not matter.
	return out
}

// cgroupPath is the scope's cgroupfs path ("" before Place).
func (s *systemdScope) cgroupPath() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cgroup
}

// scopeCgroup returns the cgroupfs path systemd put pid in (as this
// process sees the hierarchies: in the memory controller's on cgroup v1,
// the unified one on v2) and checks that it is the scope's own: a systemd
// that cannot manage the memory controller (read-only v1 hierarchies in a
// container) leaves it where it was.
func scopeCgroup(pid int, unit string) (string, error) {
	controller, hierarchy := "memory", "memory controller's"
	if unifiedCgroups {
		controller, hierarchy = "", "unified"
	}
	cg, err := systemd.CgroupOf(pid, controller)
	if err != nil {
		return "", fmt.Errorf("cgroup of the sandbox's runsc process %d: %w", pid, err)
	}
	if !strings.HasSuffix(cg, "/"+unit) {
		return "", fmt.Errorf("systemd did not move the sandbox's runsc process %d into the scope's cgroup in the %s hierarchy (it is in %s): systemd cannot manage that controller here: %w",
			pid, hierarchy, cg, errdefs.ErrFailedPrecondition)
	}
	return cg, nil
}

// systemdCallTimeout bounds a D-Bus call made outside a request's context.
const systemdCallTimeout = 30 * time.Second

// systemdHostCgroup is a scope's cgroup: limits go to the unit's properties
// (so that systemd keeps them) and to cgroupfs.
type systemdHostCgroup struct {
	hostCgroup
	scope systemd.Scope
}

func (c systemdHostCgroup) update(r *specs.LinuxResources) error {
	ctx, cancel := context.WithTimeout(context.Background(), systemdCallTimeout)
	defer cancel()
	if err := c.scope.SetResources(ctx, r); err != nil {
		return err
	}
	return c.hostCgroup.update(r)
}
