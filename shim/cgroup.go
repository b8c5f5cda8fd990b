package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/oci"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/systemd"
)

// hostCgroup is the host cgroup the sandbox process runs in, where the host
// kernel enforces the pod's limits.
type hostCgroup interface {
	update(*specs.LinuxResources) error
	// stat returns the cgroup's metrics in containerd's format for the
	// host's cgroup mode.
	stat() (any, error)
}

type cgroupV1 struct{ cg cgroup1.Cgroup }

func (c cgroupV1) update(r *specs.LinuxResources) error { return c.cg.Update(r) }
func (c cgroupV1) stat() (any, error)                   { return c.cg.Stat(cgroup1.IgnoreNotExist) }

type cgroupV2 struct{ m *cgroup2.Manager }

func (c cgroupV2) update(r *specs.LinuxResources) error { return c.m.Update(cgroup2.ToResources(r)) }
func (c cgroupV2) stat() (any, error)                   { return c.m.Stat() }

// loadHostCgroup loads the sandbox's cgroup, in the host's cgroup mode:
// the cgroup at path (the systemd driver's scope, the same path in every
// hierarchy) or, without one, the cgroups of the sandbox process pid.
func loadHostCgroup(pid int, path string) (hostCgroup, error) {
	if unifiedCgroups {
		if path == "" {
			var err error
			if path, err = cgroup2.PidGroupPath(pid); err != nil {
				return nil, fmt.Errorf("cgroup of sandbox pid %d: %w", pid, err)
			}
		}
		m, err := cgroup2.Load(path)
		if err != nil {
			return nil, fmt.Errorf("load cgroup %s: %w", path, err)
		}
		return cgroupV2{m}, nil
	}
	if path != "" {
		cg, err := cgroup1.Load(cgroup1.StaticPath(path))
		if err != nil {
			return nil, fmt.Errorf("load cgroups %s: %w", path, err)
		}
		return cgroupV1{cg}, nil
	}
	cg, err := cgroup1.Load(cgroup1.PidPath(pid))
	if err != nil {
		return nil, fmt.Errorf("load cgroups of sandbox pid %d: %w", pid, err)
	}
	return cgroupV1{cg}, nil
}

// oomCounterFile returns the file where the kernel counts OOM kills in the
// sandbox's memory cgroup (at path, or that of pid): memory.oom_control
// (v1) or memory.events (v2).
func oomCounterFile(pid int, path string) (string, error) {
	if unifiedCgroups {
		if path == "" {
			var err error
			if path, err = cgroup2.PidGroupPath(pid); err != nil {
				return "", err
			}
		}
		return filepath.Join("/sys/fs/cgroup", path, "memory.events"), nil
	}
	if path == "" {
		var err error
		if path, err = cgroup1.PidPath(pid)(cgroup1.Memory); err != nil {
			return "", err
		}
	}
	return filepath.Join("/sys/fs/cgroup/memory", path, "memory.oom_control"), nil
}

// readOOMKills reads the "oom_kill N" counter of an OOM counter file.
func readOOMKills(file string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, nil
}

// pod is the sandbox shared by a pod's containers (or the sandbox of one
// standalone container): its host cgroup, sized to the pod, and the counter
// of the OOM kills in it.
type pod struct {
	mu  sync.Mutex
	pid int
	// path is the sandbox's cgroup when the shim made it (the systemd
	// driver's scope), "" when runsc did; scope is that unit.
	path  string
	scope *systemd.Scope
	// oomFile counts the host OOM kills in the sandbox's memory cgroup.
	oomFile string
	cg      hostCgroup // loaded when first needed
	// fixed: the sandbox's limits come from its own spec or the pod-level
	// CRI annotations, not from its containers.
	fixed bool
	// overhead is the sandbox's own memory, added to the sum of its
	// containers' memory limits when the sandbox's cgroup is sized from
	// them: the Sentry, the pause container and its gofer are charged to
	// that cgroup (sandbox_overhead_mib; -1 until measured: the cgroup's
	// usage when the first container joins). perContainer is added for each
	// container that joins (its gofer and the Sentry's state for it;
	// container_overhead_mib).
	overhead, perContainer int64
	// containers are the resources of the containers that joined the sandbox.
	containers map[string]*specs.LinuxResources
	applied    *specs.LinuxResources
	// gone is set once the sandbox has exited: runsc removes its cgroup,
	// and writing limits would only recreate directories.
	gone bool
	// members are the containers that joined the sandbox.
	members map[string]bool
	// cpuFile is the sandbox cgroup's CPU counter, kept open once found
	// (read with pread at every stats poll of a pod member).
	cpuFile *os.File
	// memUsage and memStat are the sandbox cgroup's memory usage and
	// memory.stat, kept open once found; statBuf is their read buffer.
	memUsage, memStat *os.File
	statBuf           []byte
	// sentryMem is the memory the Sentry last reported for each member.
	sentryMem map[string]uint64
	// control is the sandbox's control server, whose connection the pod
	// members' stats polls share (nil: each call connects).
	control *runsc.Control
	// lastOOM is the last OOM count read, kept for when the counter file
	// has gone with the cgroup.
	lastOOM uint64
}

// newPod prepares the pod of a sandbox whose process is pid, in the cgroup
// at path made by the shim in scope (nil, "": the cgroup runsc made). The
// sandbox's limits are the pod-level CRI annotations when containerd sets
// them, otherwise its containers' limits plus overhead bytes.
func newPod(pid int, path string, scope *systemd.Scope, spec *specs.Spec, overhead, perContainer int64) (*pod, error) {
	oomFile, err := oomCounterFile(pid, path)
	if err != nil {
		return nil, fmt.Errorf("find the memory cgroup of sandbox pid %d: %w", pid, err)
	}
	p := &pod{pid: pid, path: path, scope: scope, oomFile: oomFile, overhead: overhead, perContainer: perContainer,
		containers: make(map[string]*specs.LinuxResources)}
	if oci.MemoryLimit(spec) > 0 {
		// A standalone container: runsc applied its limits to the cgroup
		// (or, systemd driver, systemd did from the scope's properties).
		p.fixed = true
	}
	if r := oci.SandboxResources(spec); r != nil {
		p.fixed = true
		if err := p.apply(r); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// oomKills is the number of OOM kills in the sandbox's cgroup so far (the
// last count read once the cgroup is gone).
func (p *pod) oomKills() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, err := readOOMKills(p.oomFile); err == nil && n > p.lastOOM {
		p.lastOOM = n
	}
	return p.lastOOM
}

// exited records that the sandbox is gone.
func (p *pod) exited() {
	p.mu.Lock()
	p.gone = true
	p.mu.Unlock()
	p.release()
}

// release closes what the pod keeps open for stats polls: the CPU counter
// and the control connection. The sandbox's exit and its delete release it.
func (p *pod) release() {
	p.mu.Lock()
	files := []*os.File{p.cpuFile, p.memUsage, p.memStat}
	p.cpuFile, p.memUsage, p.memStat = nil, nil, nil
	p.mu.Unlock()
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
	if p.control != nil {
		p.control.Close()
	}
}

// update applies r to the sandbox's cgroup directly (a standalone container).
func (p *pod) update(r *specs.LinuxResources) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return fmt.Errorf("the sandbox has exited: %w", errdefs.ErrFailedPrecondition)
	}
	return p.apply(r)
}

// stat reads the sandbox cgroup's metrics.
func (p *pod) stat() (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return nil, fmt.Errorf("the sandbox has exited: %w", errdefs.ErrNotFound)
	}
	if err := p.load(); err != nil {
		return nil, err
	}
	return p.cg.stat()
}

// cpuUsage is the sandbox's host cgroup CPU time in ns (0 when unknown).
// It reads the one counter (cpuacct.usage on v1, cpu.stat's usage_usec on
// v2), not the whole cgroup's stats: pod members' stats polls need it.
func (p *pod) cpuUsage() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return 0
	}
	if p.cpuFile == nil {
		name, err := cpuCounterFile(p.pid)
		if err != nil {
			return 0
		}
		if p.cpuFile, err = os.Open(name); err != nil {
			return 0
		}
	}
	// A cgroup file is generated afresh by every read at offset 0.
	var buf [512]byte
	n, err := p.cpuFile.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0
	}
	return parseCPUCounter(buf[:n], unifiedCgroups)
}

// hostMemory reads the sandbox cgroup's memory usage and inactive file
// cache (v1 memory.usage_in_bytes and total_inactive_file, v2
// memory.current and inactive_file): what the host kernel charges the pod,
// tmpfs included. ok is false when they cannot be read. p.mu is held.
func (p *pod) hostMemory() (usage, inactive uint64, ok bool) {
	if p.gone || p.oomFile == "" {
		return 0, 0, false
	}
	dir := filepath.Dir(p.oomFile)
	usageName, inactiveKey := "memory.usage_in_bytes", "total_inactive_file"
	if unifiedCgroups {
		usageName, inactiveKey = "memory.current", "inactive_file"
	}
	var err error
	if p.memUsage == nil {
		if p.memUsage, err = os.Open(filepath.Join(dir, usageName)); err != nil {
			return 0, 0, false
		}
	}
	if p.memStat == nil {
		if p.memStat, err = os.Open(filepath.Join(dir, "memory.stat")); err != nil {
			return 0, 0, false
		}
	}
	if p.statBuf == nil {
		p.statBuf = make([]byte, 16<<10)
	}
	n, err := p.memUsage.ReadAt(p.statBuf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, false
	}
	if usage, err = strconv.ParseUint(string(bytes.TrimSpace(p.statBuf[:n])), 10, 64); err != nil {
		return 0, 0, false
	}
	n, err = p.memStat.ReadAt(p.statBuf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, false
	}
	return usage, statValue(p.statBuf[:n], inactiveKey), true
}

// statValue is the value of key in a cgroup "key value" file (0: absent).
func statValue(b []byte, key string) uint64 {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if v, ok := bytes.CutPrefix(line, []byte(key)); ok && len(v) > 0 && v[0] == ' ' {
			n, _ := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return n
		}
	}
	return 0
}

// attributeHost adds to member id's memory, as the Sentry reported it in
// st, its share of what the host charges the sandbox beyond the Sentry's
// figures for all members: the pod's tmpfs (/dev/shm, shared by the pod's
// containers), and the Sentry's and gofers' own memory. The members'
// figures then sum to the sandbox cgroup's usage, which is the pod's
// (ListPodSandboxStats), and memory a container writes to tmpfs is counted.
// The share is added as file cache (it is shmem on the host: rssBytes stays
// the Sentry's anonymous memory), with the member's share of the host's
// inactive file cache, so that the working set follows the host's.
func (p *pod) attributeHost(id string, st *runsc.Stats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.members[id] {
		return
	}
	usage, inactive, ok := p.hostMemory()
	if !ok {
		return
	}
	if p.sentryMem == nil {
		p.sentryMem = map[string]uint64{}
	}
	p.sentryMem[id] = st.Memory.Usage.Usage
	var sentry uint64
	for _, v := range p.sentryMem {
		sentry += v
	}
	rank, n := 0, len(p.members)
	for m := range p.members {
		if m < id {
			rank++
		}
	}
	if usage > sentry {
		extra := shareOf(usage-sentry, rank, n)
		st.Memory.Usage.Usage += extra
		st.Memory.Cache += extra
	}
	if st.Memory.Raw == nil {
		st.Memory.Raw = map[string]uint64{}
	}
	if _, ok := st.Memory.Raw["inactive_file"]; !ok {
		st.Memory.Raw["inactive_file"] = st.Memory.Raw["total_inactive_file"]
	}
	st.Memory.Raw["inactive_file"] += shareOf(inactive, rank, n)
	delete(st.Memory.Raw, "total_inactive_file")
	if st.Memory.Usage.Usage > st.Memory.Usage.Max {
		st.Memory.Usage.Max = st.Memory.Usage.Usage
	}
}

// shareOf is the share of v of the member of the given rank among n: v
// split evenly, the first members taking the remainder's units, so that
// the shares sum to v.
func shareOf(v uint64, rank, n int) uint64 {
	if n <= 1 {
		return v
	}
	s := v / uint64(n)
	if uint64(rank) < v%uint64(n) {
		s++
	}
	return s
}

// parseCPUCounter reads the CPU time in ns from cpuacct.usage (v1: the
// number of ns) or cpu.stat (v2: its usage_usec line).
func parseCPUCounter(b []byte, unified bool) uint64 {
	if !unified {
		v, _ := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
		return v
	}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if v, ok := bytes.CutPrefix(line, []byte("usage_usec ")); ok {
			n, _ := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			return n * 1000
		}
	}
	return 0
}

// cpuCounterFile is the file counting the CPU time of pid's cgroup.
func cpuCounterFile(pid int) (string, error) {
	if unifiedCgroups {
		path, err := cgroup2.PidGroupPath(pid)
		if err != nil {
			return "", err
		}
		return filepath.Join("/sys/fs/cgroup", path, "cpu.stat"), nil
	}
	path, err := cgroup1.PidPath(pid)(cgroup1.Cpuacct)
	if err != nil {
		return "", err
	}
	return filepath.Join("/sys/fs/cgroup/cpuacct", path, "cpuacct.usage"), nil
}

func (p *pod) load() error {
	if p.cg != nil {
		return nil
	}
	cg, err := loadHostCgroup(p.pid, p.path)
	if err != nil {
		return err
	}
	if p.scope != nil {
		cg = systemdHostCgroup{hostCgroup: cg, scope: *p.scope}
	}
	p.cg = cg
	return nil
}

func (p *pod) apply(r *specs.LinuxResources) error {
	if err := p.load(); err != nil {
		return err
	}
	if err := p.cg.update(r); err != nil {
		return fmt.Errorf("apply resources to the sandbox cgroup: %w", err)
	}
	p.applied = r
	return nil
}

// setContainer records a joined container's resources (nil: it left) and
// resizes the sandbox's cgroup to the pod: the sum of its containers' limits
// plus the sandbox's own overhead, or no limit if any container has none.
func (p *pod) setMember(id string, in bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.members == nil {
		p.members = map[string]bool{}
	}
	if in {
		p.members[id] = true
	} else {
		delete(p.members, id)
		delete(p.sentryMem, id)
	}
}

// memberRank is the place of member id among the sandbox's members in id
// order, and their number (0, 0 for a container that is not a member).
func (p *pod) memberRank(id string) (rank, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.members[id] {
		return 0, 0
	}
	for m := range p.members {
		if m < id {
			rank++
		}
	}
	return rank, len(p.members)
}

func (p *pod) setContainer(id string, r *specs.LinuxResources) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r == nil {
		delete(p.containers, id)
	} else {
		p.containers[id] = r
	}
	if p.fixed || p.gone {
		return nil
	}
	if p.overhead < 0 {
		// The first container joins: what the sandbox is charged now is
		// its own (the Sentry, the pause container, their gofer).
		p.overhead = p.measureOverhead()
	}
	want := podResources(p.containers, p.overhead, p.perContainer)
	if resourcesEqual(want, p.applied) {
		return nil
	}
	return p.apply(want)
}

// measureOverhead is the sandbox's memory usage now, rounded up to a MiB
// (FallbackSandboxOverheadMiB if it cannot be read).
func (p *pod) measureOverhead() int64 {
	file := filepath.Join(filepath.Dir(p.oomFile), "memory.usage_in_bytes")
	if unifiedCgroups {
		file = filepath.Join(filepath.Dir(p.oomFile), "memory.current")
	}
	b, err := os.ReadFile(file)
	if err == nil {
		var v int64
		if v, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 {
			return (v + 1<<20 - 1) &^ (1<<20 - 1)
		}
	}
	log.L.WithError(err).WithField("pid", p.pid).Warnf("sandbox memory usage unreadable: its own memory counted as %d MiB", FallbackSandboxOverheadMiB)
	return FallbackSandboxOverheadMiB << 20
}

// podResources sums container limits, plus the sandbox's own overhead and
// perContainer for each container, into the sandbox's.
func podResources(containers map[string]*specs.LinuxResources, overhead, perContainer int64) *specs.LinuxResources {
	var (
		mem      int64 = overhead
		memLimit       = len(containers) > 0
		quota    int64
		cpuLimit = len(containers) > 0
		shares   uint64
	)
	for _, r := range containers {
		if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
			mem += *r.Memory.Limit + perContainer
		} else {
			memLimit = false
		}
		if r.CPU != nil && r.CPU.Quota != nil && *r.CPU.Quota > 0 {
			period := uint64(100000)
			if r.CPU.Period != nil && *r.CPU.Period > 0 {
				period = *r.CPU.Period
			}
			quota += *r.CPU.Quota * 100000 / int64(period)
		} else {
			cpuLimit = false
		}
		if r.CPU != nil && r.CPU.Shares != nil {
			shares += *r.CPU.Shares
		}
	}
	out := &specs.LinuxResources{Memory: &specs.LinuxMemory{}, CPU: &specs.LinuxCPU{}}
	noLimit := int64(-1)
	if memLimit {
		out.Memory.Limit = &mem
	} else {
		out.Memory.Limit = &noLimit
	}
	period := uint64(100000)
	out.CPU.Period = &period
	if cpuLimit {
		out.CPU.Quota = &quota
	} else {
		out.CPU.Quota = &noLimit
	}
	if shares > 0 {
		out.CPU.Shares = &shares
	}
	return out
}

func resourcesEqual(a, b *specs.LinuxResources) bool {
	if a == nil || b == nil {
		return a == b
	}
	return ptrEq(a.Memory.Limit, b.Memory.Limit) && ptrEq(a.CPU.Quota, b.CPU.Quota) && ptrEq(a.CPU.Shares, b.CPU.Shares)
}

func ptrEq[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// validateResources rejects resources no cgroup would take, naming the field.
func validateResources(r *specs.LinuxResources) error {
	if r == nil {
		return fmt.Errorf("no resources given: %w", errdefs.ErrInvalidArgument)
	}
	var errs []error
	if m := r.Memory; m != nil {
		if m.Limit != nil && *m.Limit != -1 && *m.Limit < 4<<20 {
			errs = append(errs, fmt.Errorf("memory limit %d: must be -1 (unlimited) or at least 4 MiB", *m.Limit))
		}
		if m.Swap != nil && *m.Swap < -1 {
			errs = append(errs, fmt.Errorf("memory swap %d: must be -1 or positive", *m.Swap))
		}
	}
	if c := r.CPU; c != nil {
		if c.Quota != nil && *c.Quota != -1 && *c.Quota < 1000 {
			errs = append(errs, fmt.Errorf("cpu quota %d: must be -1 (unlimited) or at least 1000us", *c.Quota))
		}
		if c.Period != nil && *c.Period != 0 && (*c.Period < 1000 || *c.Period > 1000000) {
			errs = append(errs, fmt.Errorf("cpu period %d: must be between 1000 and 1000000us", *c.Period))
		}
		if c.Shares != nil && *c.Shares > math.MaxInt32 {
			errs = append(errs, fmt.Errorf("cpu shares %s: too large", strconv.FormatUint(*c.Shares, 10)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid resources: %w: %w", errors.Join(errs...), errdefs.ErrInvalidArgument)
	}
	return nil
}

// newPod sets up the sandbox cgroup of a container that started a sandbox.
// Without a cgroup of its own (no cgroupsPath) the sandbox shares the shim's:
// nothing is sized or watched. Failures are warnings.
func (s *service) newPod(ctx context.Context, c *container) {
	if oci.CgroupsPath(c.spec) == "" {
		return
	}
	var (
		path  string
		scope *systemd.Scope
	)
	if c.scope != nil {
		path, scope = c.scope.cgroupPath(), &c.scope.scope
	}
	p, err := newPod(c.init.Pid(), path, scope, c.spec, c.overhead, c.perContainer)
	if err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Warn("sandbox cgroup: limits and OOM reporting disabled")
		return
	}
	p.control = c.runsc.NewControl(c.id)
	c.pod, c.oomBase = p, p.oomKills()
	s.mu.Lock()
	s.pods[c.id] = p
	s.mu.Unlock()
}

// joinPod sizes the pod's sandbox cgroup for a container joining it, before
// runsc create.
func (s *service) joinPod(c *container) error {
	if !c.init.Subcontainer() {
		return nil
	}
	s.mu.Lock()
	p := s.pods[c.sandboxID]
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	p.setMember(c.id, true)
	if err := p.setContainer(c.id, c.resources); err != nil {
		p.setMember(c.id, false)
		return err
	}
	c.pod, c.oomBase = p, p.oomKills()
	if p.scope != nil {
		// runsc moves the member's gofer into the sandbox's cgroup in the
		// v1 hierarchies only: on a hybrid host it stays in the shim's
		// cgroup in the unified one, which systemd watches, so that the
		// scope's stop neither kills nor waits for it and can find its
		// v1 directories busy (left behind). The `runsc start` that
		// starts it runs in the scope instead.
		scope, id := *p.scope, c.id
		c.init.JoinSandboxCgroup(func(ctx context.Context, pid int) error {
			if err := scope.Attach(ctx, pid); err != nil {
				log.G(ctx).WithError(err).WithField("id", id).Warn("container's runsc processes stay outside the sandbox's systemd scope in the hierarchies runsc does not join")
				return nil
			}
			log.G(ctx).WithField("id", id).WithField("unit", scope.Unit).WithField("pid", pid).Debug("container's runsc start in the sandbox's systemd scope")
			return nil
		})
	}
	return nil
}

// leavePod resizes the pod without c, or forgets the sandbox c started.
func (s *service) leavePod(c *container) {
	if c.pod == nil {
		return
	}
	if c.init.Subcontainer() {
		c.pod.setMember(c.id, false)
		if err := c.pod.setContainer(c.id, nil); err != nil {
			log.G(s.ctx).WithError(err).WithField("id", c.id).Warn("resize sandbox cgroup")
		}
		return
	}
	s.mu.Lock()
	delete(s.pods, c.id)
	s.mu.Unlock()
	c.pod.release()
}
