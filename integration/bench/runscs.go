package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

// RunscsReport is section 6: the same work under each runsc generation
// and, for current runsc, each platform it supports here, side by side.
type RunscsReport struct {
	Runscs []RunscVariant `json:"runscs"`
	// Lifecycle is the client path of `true` through this shim (as
	// section 1), Raw the same bundle under `runsc run`, Exec an exec of
	// `true` in a running container through the shim: one entry per runsc,
	// in Runscs order.
	Lifecycle []Summary `json:"lifecycle"`
	Raw       []Summary `json:"raw_run"`
	Exec      []Summary `json:"exec"`
	// Memory is what one idle container (sleep) costs on the host:
	// its sandbox and gofer processes.
	Memory []MemGroup `json:"sandbox_memory"`
	Notes  []string   `json:"notes,omitempty"`
}

// RunscVariant is one runsc binary and platform.
type RunscVariant struct {
	Name     string `json:"name"`
	Binary   string `json:"binary"`
	Version  string `json:"version"`
	Platform string `json:"platform"`

	cfg     harness.RunscConfig
	opts    *runtimeoptions.Options
	rawRoot string
	bundle  string
}

// runscVariants are Debian's runsc on ptrace (the only platform of 2022
// that works here: no KVM) and current runsc on ptrace and systrap (its
// default), when -runsc-current names one.
func (e *env) runscVariants() ([]*RunscVariant, []string, error) {
	vs := []*RunscVariant{{Name: "debian", Binary: harness.RunscBinary, Platform: "ptrace"}}
	var notes []string
	if p := e.o.runscCurrent; p == "" {
		notes = append(notes, "no current runsc (-runsc-current or $RUNSC_CURRENT; `make bench` builds it): Debian's runsc only")
	} else {
		vs = append(vs,
			&RunscVariant{Name: "current", Binary: p, Platform: "ptrace"},
			&RunscVariant{Name: "current", Binary: p, Platform: "systrap"})
	}
	for _, v := range vs {
		out, err := exec.Command(v.Binary, "--version").Output()
		if err != nil {
			return nil, nil, fmt.Errorf("%s --version: %w", v.Binary, err)
		}
		first, _, _ := strings.Cut(string(out), "\n")
		v.Version = strings.TrimPrefix(strings.TrimSpace(first), "runsc version ")
	}
	return vs, notes, nil
}

func (v *RunscVariant) label() string {
	return fmt.Sprintf("runsc %s, %s", v.Version, v.Platform)
}

func (e *env) runscsBench(ctx context.Context) (_ *RunscsReport, retErr error) {
	vs, notes, err := e.runscVariants()
	if err != nil {
		return nil, err
	}
	r := &RunscsReport{Notes: notes}
	var lifecycle, raw, execs []*variant
	for i, v := range vs {
		dir := filepath.Join(e.work, fmt.Sprintf("runscs-%d", i))
		v.cfg, err = harness.WriteRunscConfigFor(dir, v.Binary, map[string]string{"platform": v.Platform})
		if err != nil {
			return nil, err
		}
		v.opts = &runtimeoptions.Options{ConfigPath: v.cfg.Path}
		v.rawRoot = filepath.Join(dir, "raw-root")
		if err := os.MkdirAll(v.rawRoot, 0o755); err != nil {
			return nil, err
		}
		if v.bundle, err = e.raw.bundle(ctx, e.d, e.img, fmt.Sprintf("true-runscs-%d", i), "/bin/true"); err != nil {
			return nil, err
		}
		r.Runscs = append(r.Runscs, *v)
		sleeper, _, err := e.startSleeper(ctx, e.nextID(fmt.Sprintf("rs%d", i)), runscRuntime, v.opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.label(), err)
		}
		defer sleeper.stop(e)
		lifecycle = append(lifecycle, &variant{name: "shim, " + v.label(), run: func(ctx context.Context, ph *phaseSamples) (time.Duration, error) {
			return e.clientTrue(ctx, runscRuntime, v.opts, ph)
		}})
		raw = append(raw, &variant{name: "raw runsc run, " + v.label(), run: func(ctx context.Context, _ *phaseSamples) (time.Duration, error) {
			args := []string{"--root=" + v.rawRoot, "--log=" + filepath.Join(v.bundle, "log.json"), "--log-format=json",
				"--network=none", "--platform=" + v.Platform, "run", "--bundle", v.bundle, e.raw.nextID("rawrs")}
			return runCmd(ctx, v.Binary, args)
		}})
		execs = append(execs, &variant{name: "shim exec, " + v.label(), run: func(ctx context.Context, ph *phaseSamples) (time.Duration, error) {
			return e.clientExec(ctx, sleeper, ph)
		}})
	}
	defer func() {
		for _, v := range vs {
			for _, id := range listIDs(v.Binary, v.rawRoot) {
				if out, err := exec.Command(v.Binary, "--root="+v.rawRoot, "delete", "--force", id).CombinedOutput(); err != nil {
					retErr = errors.Join(retErr, fmt.Errorf("%s delete --force %s: %v: %s", v.Binary, id, err, strings.TrimSpace(string(out))))
				}
			}
		}
	}()
	// Memory first, while the sleepers are idle and alone in their roots.
	time.Sleep(2 * time.Second)
	for _, v := range vs {
		g := MemGroup{Kind: v.label()}
		procs := listProcs()
		// runsc's sandbox and gofer carry the root in their argv; the
		// platform's stub processes are the sandbox's children.
		ours := map[int]bool{}
		for _, p := range procs {
			if strings.Contains(p.cmdline(), "--root="+v.cfg.Root) && !strings.Contains(p.cmdline(), harness.ShimBinaryName) {
				ours[p.pid] = true
			}
		}
		// The stubs have no command line: walk every pid in /proc.
		all := allPids()
		for _, pid := range all {
			for pp, n := ppid(pid), 0; pp > 1 && n < 8 && !ours[pid]; pp, n = ppid(pp), n+1 {
				if ours[pp] {
					ours[pid] = true
				}
			}
		}
		for _, pid := range all {
			if !ours[pid] {
				continue
			}
			rss, pss, anon := memKiB(pid)
			if rss < 0 {
				continue
			}
			g.Count++
			g.RSSKiB += rss
			g.PSSKiB += max(pss, 0)
			g.AnonKiB += max(anon, 0)
			g.MaxRSS = max(g.MaxRSS, rss)
		}
		r.Memory = append(r.Memory, g)
	}
	for _, group := range []struct {
		what string
		vs   []*variant
		out  *[]Summary
	}{{"runscs lifecycle", lifecycle, &r.Lifecycle}, {"runscs raw run", raw, &r.Raw}, {"runscs exec", execs, &r.Exec}} {
		if err := e.interleave(ctx, group.what, e.o.warmup, e.o.runs, group.vs); err != nil {
			return r, err
		}
		for _, v := range group.vs {
			*group.out = append(*group.out, v.summary())
		}
	}
	return r, nil
}

// ppid is pid's parent (0 when unknown).
func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// allPids lists every process in /proc.
func allPids() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}
