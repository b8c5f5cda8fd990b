package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DensityReport is section 4 for one runtime: n pods (CRI) or containers
// (client) started at once.
type DensityReport struct {
	Mode    string `json:"mode"` // "cri" (pods) or "client" (containers)
	Runtime string `json:"runtime"`
	N       int    `json:"n"`
	// AllRunning is the wall time from the first start to the last
	// running one.
	AllRunning float64 `json:"all_running_ms"`
	// EachStart is the latency of each pod's start under that load.
	EachStart Summary    `json:"each_start"`
	Memory    []MemGroup `json:"memory"`
	// Shim* are the shim processes' totals divided by N.
	ShimRSSPerPod int64 `json:"shim_rss_per_pod_kib"`
	ShimPSSPerPod int64 `json:"shim_pss_per_pod_kib"`
	ShimMaxRSS    int64 `json:"shim_max_rss_kib"`
	ShimCount     int   `json:"shim_processes"`
	// RunscCalls counts the runsc processes the shim started (runsc
	// wrapper log, runsc only) while the n started, and while they sat
	// idle for IdleSeconds afterwards (e.g. `events` for the daemon's
	// stats polling, `wait` per container).
	RunscCallsStart map[string]int `json:"runsc_calls_during_start,omitempty"`
	RunscCallsIdle  map[string]int `json:"runsc_calls_while_idle,omitempty"`
	IdleSeconds     float64        `json:"idle_seconds,omitempty"`
	// IdleCPUPercent is the CPU time the shims and everything they
	// started and reaped (runsc calls) used while the pods sat idle, in
	// percent of one CPU: what serving containerd's stats polling costs.
	IdleCPUPercent float64 `json:"idle_cpu_percent_of_one_cpu"`
	// ShimSideRSSPerPod / ShimSidePSSPerPod add to the shim any resident
	// helper it keeps per pod (a `runsc wait` per container).
	ShimSideRSSPerPod int64 `json:"shim_side_rss_per_pod_kib"`
	ShimSidePSSPerPod int64 `json:"shim_side_pss_per_pod_kib"`
	// StartCPU is the CPU time each kind of process used from the first
	// start to the last running one: on a host with few CPUs the start
	// of n at once is bound by it (wall time >= total / CPUs).
	StartCPU []CPUGroup `json:"start_cpu,omitempty"`
}

// CPUGroup is the CPU time one kind of process used while the pods
// started, own and reaped children's apart.
type CPUGroup struct {
	Kind string `json:"kind"`
	// OwnMs is the processes' own user+system time; ChildrenMs that of
	// the children they reaped (a shim's: its runsc or runc calls;
	// containerd's: the shim start-up processes).
	OwnMs      float64 `json:"own_ms"`
	ChildrenMs float64 `json:"children_ms"`
}

// procCPU returns pid's own and reaped children's user+system time in
// clock ticks, from /proc/<pid>/stat.
func procCPU(pid int) (own, children int64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	// After the comm: state(3) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, false
	}
	v := func(k int) int64 { n, _ := strconv.ParseInt(f[k], 10, 64); return n }
	return v(11) + v(12), v(13) + v(14), true
}

// cpuByKind is the CPU time (clock ticks, own and children's) of the
// daemon with pid daemonPid and of the shims and runsc processes of its
// namespace ns, by kind.
func cpuByKind(daemonPid int, address, runscRoot, ns string) map[string][2]int64 {
	out := map[string][2]int64{}
	add := func(kind string, pid int) {
		own, ch, ok := procCPU(pid)
		if !ok {
			return
		}
		t := out[kind]
		out[kind] = [2]int64{t[0] + own, t[1] + ch}
	}
	if daemonPid > 0 {
		add("containerd", daemonPid)
	}
	for _, p := range listProcs() {
		if kind := procKind(p, address, runscRoot, ns); kind != "" {
			add(kind, p.pid)
		}
	}
	return out
}

// cpuDelta turns two cpuByKind snapshots into CPU groups in ms, largest
// first.
func cpuDelta(before, after map[string][2]int64) []CPUGroup {
	var out []CPUGroup
	for kind, a := range after {
		b := before[kind]
		g := CPUGroup{Kind: kind, OwnMs: float64(a[0]-b[0]) * 1000 / clockTicks, ChildrenMs: float64(a[1]-b[1]) * 1000 / clockTicks}
		if g.OwnMs+g.ChildrenMs > 0 {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].OwnMs+out[i].ChildrenMs > out[j].OwnMs+out[j].ChildrenMs
	})
	return out
}

// shimsCPU is the CPU time (user+system, own and reaped children's) of the
// shim processes of kind shimKind, in clock ticks.
func shimsCPU(address, runscRoot, ns, shimKind string) int64 {
	var total int64
	for _, p := range listProcs() {
		if procKind(p, address, runscRoot, ns) != shimKind {
			continue
		}
		own, ch, _ := procCPU(p.pid)
		total += own + ch
	}
	return total
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times.
const clockTicks = 100

// starter starts pod or container i and returns how to remove it.
type starter func(ctx context.Context, i int) (stop func(), err error)

// density starts n at once with start, waits for all to run, lets the
// processes settle, reads their memory and removes everything.
// runscRoot is the runsc root of the runtime's runsc.toml (to find its
// sandboxes); argv, if not nil, is the wrapper that runtime's runsc calls
// go through (to count them).
func (e *env) density(ctx context.Context, mode, runtime, shimKind string, n int, start starter, runscRoot string, argv *argvSetup) (*DensityReport, error) {
	logSize := func() int64 {
		if argv == nil {
			return 0
		}
		st, err := os.Stat(argv.log)
		if err != nil {
			return 0
		}
		return st.Size()
	}
	countCalls := func(from, to int64) map[string]int {
		if argv == nil {
			return nil
		}
		calls, _, err := argv.calls(from)
		if err != nil {
			return nil
		}
		m := map[string]int{}
		n := from
		for _, c := range calls {
			if n >= to {
				break
			}
			n += int64(len(c.line)) + 1
			m[c.sub]++
		}
		return m
	}
	off0 := logSize()
	ns := e.d.Namespace
	if mode == "cri" {
		ns = criNamespace
	}
	var (
		mu    sync.Mutex
		stops []func()
		errs  []error
		lat   []float64
		wg    sync.WaitGroup
	)
	defer func() {
		// Remove in parallel too: 30 sandboxes one after another take long.
		var cw sync.WaitGroup
		sem := make(chan struct{}, 8)
		for _, s := range stops {
			cw.Add(1)
			sem <- struct{}{}
			go func() {
				defer cw.Done()
				defer func() { <-sem }()
				s()
			}()
		}
		cw.Wait()
	}()
	cpuBefore := cpuByKind(e.d.Pid(), e.d.Address, runscRoot, ns)
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s0 := time.Now()
			stop, err := start(ctx, i)
			el := time.Since(s0)
			mu.Lock()
			defer mu.Unlock()
			if stop != nil {
				stops = append(stops, stop)
			}
			if err != nil {
				errs = append(errs, err)
				return
			}
			lat = append(lat, ms(el))
		}()
	}
	wg.Wait()
	all := time.Since(t0)
	burstCPU := cpuDelta(cpuBefore, cpuByKind(e.d.Pid(), e.d.Address, runscRoot, ns))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("density %s %s: %d of %d failed: %w", mode, runtime, len(errs), n, err)
	}
	e.logf("density %s %s: %d running after %s", mode, runtime, n, all.Round(time.Millisecond))
	off1 := logSize()
	// Let the shims finish their post-start work (event publishing, the
	// Go runtime's first GC cycles) before reading their memory.
	idle := time.Now()
	cpu0 := shimsCPU(e.d.Address, runscRoot, ns, shimKind)
	select {
	case <-time.After(e.o.settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r := &DensityReport{
		Mode: mode, Runtime: runtime, N: n,
		AllRunning: round2(ms(all)),
		EachStart:  summarize("start of one under load", lat),
		Memory:     memoryByKind(e.d.Address, runscRoot, ns, n),
		StartCPU:   burstCPU,
	}
	idleFor := time.Since(idle)
	r.IdleCPUPercent = round2(float64(shimsCPU(e.d.Address, runscRoot, ns, shimKind)-cpu0) / clockTicks / idleFor.Seconds() * 100)
	r.IdleSeconds = round2(idleFor.Seconds())
	if argv != nil {
		r.RunscCallsStart = countCalls(off0, off1)
		r.RunscCallsIdle = countCalls(off1, logSize())
	}
	r.EachStart.Raw = nil
	for _, g := range r.Memory {
		if g.Kind == shimKind {
			r.ShimRSSPerPod, r.ShimPSSPerPod, r.ShimMaxRSS, r.ShimCount = g.PerPod, g.PSSPerPod, g.MaxRSS, g.Count
		}
		if g.Kind == shimKind || g.Kind == "runsc wait" {
			r.ShimSideRSSPerPod += g.PerPod
			r.ShimSidePSSPerPod += g.PSSPerPod
		}
	}
	return r, nil
}

// clientStarter starts sleeping containers through the containerd client.
func (e *env) clientStarter(runtime string, rtOpts any) starter {
	return func(ctx context.Context, i int) (func(), error) {
		r, _, err := e.startSleeper(ctx, fmt.Sprintf("dens-%d-%d", i, time.Now().UnixNano()%1e6), runtime, rtOpts)
		if err != nil {
			return nil, err
		}
		return func() { r.stop(e) }, nil
	}
}
