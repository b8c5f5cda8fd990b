package shim

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/cgroups/v3"
	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// unifiedCgroups reports whether the host runs cgroup v2 only; containerd
// decodes Stats as the metrics type of the host's cgroup mode.
var unifiedCgroups = cgroups.Mode() == cgroups.Unified

func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	if c.pod != nil && !c.init.Subcontainer() {
		// A container that started its sandbox: the host kernel accounts
		// the whole sandbox in its cgroup, in the very format containerd
		// wants, without starting runsc (containerd 2.x polls every second).
		m, err := c.pod.stat()
		if err == nil {
			data, err := typeurl.MarshalAnyToProto(m)
			if err != nil {
				return nil, errToTTRPC(fmt.Errorf("encode stats: %w", err))
			}
			return &taskAPI.StatsResponse{Stats: data}, nil
		}
		log.G(ctx).WithError(err).WithField("id", r.ID).Debug("sandbox cgroup stats: asking runsc")
	}
	st, err := c.stats(ctx)
	if err != nil {
		return nil, errToTTRPC(fmt.Errorf("stats of %q: %w", r.ID, err))
	}
	limit := c.memoryLimit()
	var m any
	if unifiedCgroups {
		m = metricsV2(st, limit)
	} else {
		m = metricsV1(st, limit)
	}
	data, err := typeurl.MarshalAnyToProto(m)
	if err != nil {
		return nil, errToTTRPC(fmt.Errorf("encode stats: %w", err))
	}
	return &taskAPI.StatsResponse{Stats: data}, nil
}

// effectiveLimit is the memory limit the container sees: its own, else the
// host's memory.
func effectiveLimit(st *runsc.Stats, limit uint64) uint64 {
	if limit == 0 {
		limit = st.Memory.Usage.Limit
	}
	if limit == 0 {
		var info unix.Sysinfo_t
		if unix.Sysinfo(&info) == nil {
			limit = uint64(info.Totalram) * uint64(info.Unit)
		}
	}
	return limit
}

// inactiveFile is the reclaimable file cache: usage minus it is the working set.
func inactiveFile(st *runsc.Stats) uint64 {
	if v, ok := st.Memory.Raw["inactive_file"]; ok {
		return v
	}
	if v, ok := st.Memory.Raw["total_inactive_file"]; ok {
		return v
	}
	return 0
}

// anon is the memory that is not file cache: what containerd's CRI reports
// as rssBytes (v1 total_rss, v2 anon). The Sentry reports usage and cache.
func anon(st *runsc.Stats) uint64 {
	if v, ok := st.Memory.Raw["rss"]; ok {
		return v
	}
	if st.Memory.Usage.Usage > st.Memory.Cache {
		return st.Memory.Usage.Usage - st.Memory.Cache
	}
	return 0
}

// metricsV1 converts runsc's stats to containerd's cgroup v1 metrics.
func metricsV1(st *runsc.Stats, limit uint64) *v1.Metrics {
	limit = effectiveLimit(st, limit)
	return &v1.Metrics{
		CPU: &v1.CPUStat{Usage: &v1.CPUUsage{
			Total:  st.CPU.Usage.Total,
			Kernel: st.CPU.Usage.Kernel,
			User:   st.CPU.Usage.User,
			PerCPU: st.CPU.Usage.PerCPU,
		}},
		Memory: &v1.MemoryStat{
			RSS:               anon(st),
			TotalRSS:          anon(st),
			Cache:             st.Memory.Cache,
			TotalCache:        st.Memory.Cache,
			TotalInactiveFile: inactiveFile(st),
			InactiveFile:      inactiveFile(st),
			Usage: &v1.MemoryEntry{
				Usage:   st.Memory.Usage.Usage,
				Limit:   limit,
				Max:     st.Memory.Usage.Max,
				Failcnt: st.Memory.Usage.Failcnt,
			},
			Swap: &v1.MemoryEntry{Usage: st.Memory.Swap.Usage, Limit: st.Memory.Swap.Limit},
		},
		Pids: &v1.PidsStat{Current: st.Pids.Current, Limit: st.Pids.Limit},
	}
}

// metricsV2 converts runsc's stats to containerd's cgroup v2 metrics.
func metricsV2(st *runsc.Stats, limit uint64) *v2.Metrics {
	limit = effectiveLimit(st, limit)
	return &v2.Metrics{
		CPU: &v2.CPUStat{
			UsageUsec:  st.CPU.Usage.Total / 1000,
			UserUsec:   st.CPU.Usage.User / 1000,
			SystemUsec: st.CPU.Usage.Kernel / 1000,
		},
		Memory: &v2.MemoryStat{
			Usage:        st.Memory.Usage.Usage,
			UsageLimit:   limit,
			MaxUsage:     st.Memory.Usage.Max,
			Anon:         anon(st),
			File:         st.Memory.Cache,
			InactiveFile: inactiveFile(st),
			SwapUsage:    st.Memory.Swap.Usage,
			SwapLimit:    st.Memory.Swap.Limit,
		},
		Pids: &v2.PidsStat{Current: st.Pids.Current, Limit: st.Pids.Limit},
	}
}

// Update applies new CPU and memory limits. The host kernel enforces them on
// the sandbox's cgroup: a standalone container's directly, a pod container's
// by resizing the pod's sandbox (the runsc release this shim targets has no
// `runsc update`).
func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	if r.Resources == nil {
		return nil, errToTTRPC(fmt.Errorf("update %q: no resources given: %w", r.ID, errdefs.ErrInvalidArgument))
	}
	v, err := typeurl.UnmarshalAny(r.Resources)
	if err != nil {
		return nil, errToTTRPC(fmt.Errorf("update %q: decode resources: %v: %w", r.ID, err, errdefs.ErrInvalidArgument))
	}
	res, ok := v.(*specs.LinuxResources)
	if !ok {
		return nil, errToTTRPC(fmt.Errorf("update %q: resources are a %T, not Linux resources: %w", r.ID, v, errdefs.ErrInvalidArgument))
	}
	if err := validateResources(res); err != nil {
		return nil, errToTTRPC(fmt.Errorf("update %q: %w", r.ID, err))
	}
	if c.pod == nil {
		return nil, errToTTRPC(fmt.Errorf("update %q: its sandbox has no cgroup of its own (no linux.cgroupsPath in the spec): %w", r.ID, errdefs.ErrFailedPrecondition))
	}
	if c.init.Subcontainer() {
		err = c.pod.setContainer(c.id, res)
	} else {
		err = c.pod.update(res)
	}
	if err != nil {
		return nil, errToTTRPC(fmt.Errorf("update %q: %w", r.ID, err))
	}
	c.mu.Lock()
	c.resources = res
	if res.Memory != nil && res.Memory.Limit != nil {
		c.memLimit = 0
		if *res.Memory.Limit > 0 {
			c.memLimit = uint64(*res.Memory.Limit)
		}
	}
	c.mu.Unlock()
	return empty, nil
}

// stats asks runsc for the container's accounting. A container whose
// process has exited has nothing left in runsc (current runsc fails `events`
// for a stopped container with no message, exit 128), and containerd keeps
// polling it until it is deleted: as with runc's cgroup after its processes
// are gone, its CPU time is final and its memory and pids are zero.
func (c *container) stats(ctx context.Context) (*runsc.Stats, error) {
	stopped := func() bool {
		select {
		case <-c.init.Done():
			return true
		default:
			return false
		}
	}
	if stopped() {
		return c.stoppedStats(), nil
	}
	st, err := c.runscStats(ctx)
	if err != nil {
		if stopped() {
			return c.stoppedStats(), nil
		}
		return nil, err
	}
	c.monotonicCPU(st)
	return st, nil
}

// runscStats asks the Sentry: a pod member through its sandbox's control
// socket (no runsc process per poll), else `runsc events --stats`.
func (c *container) runscStats(ctx context.Context) (*runsc.Stats, error) {
	if c.init.Subcontainer() {
		var (
			host uint64
			ctl  *runsc.Control
		)
		if c.pod != nil {
			host, ctl = c.pod.cpuUsage(), c.pod.control
		}
		st, err := c.runsc.ControlStats(ctx, ctl, c.id, c.sandboxID, host)
		if err == nil && st.SandboxWide && c.pod != nil {
			rank, n := c.pod.memberRank(c.id)
			splitSandboxWide(st, rank, n)
		}
		if err == nil && c.pod != nil {
			c.pod.attributeHost(c.id, st)
		}
		if !errors.Is(err, runsc.ErrNoControlSocket) {
			return st, err
		}
		log.G(ctx).WithError(err).WithField("id", c.id).Debug("stats through the sandbox's control socket: asking runsc events")
	}
	return c.runsc.Stats(ctx, c.id)
}

// splitSandboxWide turns the sandbox's memory figures into one member's
// share, the member of the given rank among n: each member would otherwise
// report the whole sandbox's memory and a pod's total (kubelet sums its
// containers) would count it once per member. The sandbox's figures are
// split evenly, as current runsc does when its per-container accounting is
// not available; the first members take the remainder's bytes, so that the
// members' figures sum to the sandbox's exactly. The peak (Max) and the
// limits stay the sandbox's.
func splitSandboxWide(st *runsc.Stats, rank, n int) {
	if n <= 1 || rank < 0 || rank >= n {
		return
	}
	share := func(v uint64) uint64 { return shareOf(v, rank, n) }
	st.Memory.Usage.Usage = share(st.Memory.Usage.Usage)
	st.Memory.Cache = share(st.Memory.Cache)
	st.Memory.Swap.Usage = share(st.Memory.Swap.Usage)
	for k, v := range st.Memory.Raw {
		st.Memory.Raw[k] = share(v)
	}
}

func (c *container) stoppedStats() *runsc.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &runsc.Stats{}
	st.CPU.Usage.Total = c.cpuMax
	return st
}

// monotonicCPU keeps the container's CPU usage from going backwards: runsc's
// counter for a container that joined a pod's sandbox is not cumulative (it
// drops as the container's exited threads are forgotten), and consumers such
// as the CRI compute rates from successive readings.
func (c *container) monotonicCPU(st *runsc.Stats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.CPU.Usage.Total < c.cpuMax {
		st.CPU.Usage.Total = c.cpuMax
	}
	c.cpuMax = st.CPU.Usage.Total
}
