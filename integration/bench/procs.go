package main

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

// proc is a process seen in /proc.
type proc struct {
	pid  int
	argv []string
}

func (p proc) cmdline() string { return strings.Join(p.argv, " ") }

func listProcs() []proc {
	var out []proc
	for _, p := range harness.Processes() {
		out = append(out, proc{pid: p.Pid, argv: p.Argv})
	}
	return out
}

// procKind classifies a process of ours in containerd namespace ns: a
// shim serving the daemon at address, or a runsc process whose state root
// is <runscRoot>/<ns>. It returns "" for any other process.
func procKind(p proc, address, runscRoot, ns string) string {
	base := filepath.Base(p.argv[0])
	switch {
	case base == "containerd-shim-runsc-v1" || base == "containerd-shim-runc-v2":
		if argValue(p.argv, "-address") != address || argValue(p.argv, "-namespace") != ns {
			return ""
		}
		if base == "containerd-shim-runc-v2" {
			return "shim runc"
		}
		return "shim runsc"
	case strings.HasPrefix(base, "runsc"):
		if argValue(p.argv, "--root") != filepath.Join(runscRoot, ns) {
			return ""
		}
		if base == "runsc" {
			return "runsc " + subcommand(p.argv[1:])
		}
		// runsc names its children by role: runsc-sandbox, runsc-gofer.
		return base
	}
	return ""
}

// argValue returns the value of flag (given as "flag value" or
// "flag=value") in argv.
func argValue(argv []string, flag string) string {
	for i, a := range argv {
		if a == flag && i+1 < len(argv) {
			return argv[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// subcommand is the first argument that is not a flag.
func subcommand(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return "?"
}

// memKiB returns VmRSS from /proc/<pid>/status, and Pss and Anonymous
// (the process's own heap, stacks and Go data: what another instance
// really adds) from /proc/<pid>/smaps_rollup, in KiB (-1 when unreadable).
func memKiB(pid int) (rss, pss, anon int64) {
	rss, pss, anon = -1, -1, -1
	if v, ok := procField(filepath.Join("/proc", strconv.Itoa(pid), "status"), "VmRSS:"); ok {
		rss = v
	}
	rollup := filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup")
	if v, ok := procField(rollup, "Pss:"); ok {
		pss = v
	}
	if v, ok := procField(rollup, "Anonymous:"); ok {
		anon = v
	}
	return rss, pss, anon
}

func procField(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		fields := strings.Fields(line[len(key):])
		if len(fields) == 0 {
			return 0, false
		}
		v, err := strconv.ParseInt(fields[0], 10, 64)
		return v, err == nil
	}
	return 0, false
}

// MemGroup is the memory of all processes of one kind.
type MemGroup struct {
	Kind      string `json:"kind"`
	Count     int    `json:"count"`
	RSSKiB    int64  `json:"rss_kib"`
	PSSKiB    int64  `json:"pss_kib"`
	MaxRSS    int64  `json:"max_rss_kib"`
	PerPod    int64  `json:"rss_per_pod_kib"`
	PSSPerPod int64  `json:"pss_per_pod_kib"`
	// Anon* is smaps_rollup's Anonymous: private heap, stacks and Go data.
	AnonKiB    int64 `json:"anon_kib"`
	AnonPerPod int64 `json:"anon_per_pod_kib"`
}

// memoryByKind sums the memory of the shims and runsc processes of
// namespace ns by kind; pods divides the totals into per-pod figures.
func memoryByKind(address, runscRoot, ns string, pods int) []MemGroup {
	groups := map[string]*MemGroup{}
	for _, p := range listProcs() {
		kind := procKind(p, address, runscRoot, ns)
		if kind == "" {
			continue
		}
		rss, pss, anon := memKiB(p.pid)
		if rss < 0 {
			continue
		}
		g := groups[kind]
		if g == nil {
			g = &MemGroup{Kind: kind}
			groups[kind] = g
		}
		g.Count++
		g.RSSKiB += rss
		if pss > 0 {
			g.PSSKiB += pss
		}
		if anon > 0 {
			g.AnonKiB += anon
		}
		g.MaxRSS = max(g.MaxRSS, rss)
	}
	var out []MemGroup
	for _, g := range groups {
		if pods > 0 {
			g.PerPod = g.RSSKiB / int64(pods)
			g.PSSPerPod = g.PSSKiB / int64(pods)
			g.AnonPerPod = g.AnonKiB / int64(pods)
		}
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}
