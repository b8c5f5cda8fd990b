package main

import (
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
)

// Targets the shim is held to.
const (
	execBudgetMs    = 15.0
	shimRSSBudgetKi = 10 * 1024
)

func targets(d *DaemonReport) []Target {
	var ts []Target
	add := func(name string, ok, have bool, detail string) {
		r := "SKIP"
		if have {
			r = "FAIL"
			if ok {
				r = "PASS"
			}
		}
		ts = append(ts, Target{Name: name, Result: r, Detail: detail})
	}

	if l := d.Lifecycle; l != nil {
		add("shim overhead <= runc shim overhead (start-to-exit of true, p50)",
			l.ShimOverhead <= l.RuncOverhead, true,
			fmt.Sprintf("runsc shim - raw runsc = %s ms (paired %s); runc shim - raw runc = %s ms (paired %s)",
				fmtMs(l.ShimOverhead), fmtMs(l.ShimOverheadPaired), fmtMs(l.RuncOverhead), fmtMs(l.RuncOverheadPaired)))
	} else {
		add("shim overhead <= runc shim overhead (start-to-exit of true, p50)", false, false, "lifecycle section not run")
	}

	if x := d.Exec; x != nil {
		shim, raw := x.Variants[0].P50, x.Variants[1].P50
		add(fmt.Sprintf("exec p50 <= raw runsc exec p50 + %.0f ms", execBudgetMs),
			shim <= raw+execBudgetMs, true,
			fmt.Sprintf("shim %s ms vs raw %s ms (+%s ms; paired %s)", fmtMs(shim), fmtMs(raw), fmtMs(x.Overhead), fmtMs(x.OverheadPaired)))
	} else {
		add(fmt.Sprintf("exec p50 <= raw runsc exec p50 + %.0f ms", execBudgetMs), false, false, "exec section not run")
	}

	var dens *DensityReport
	for _, r := range d.Density {
		if r.Runtime == runscRuntime {
			dens = r
		}
	}
	if dens != nil {
		add("shim RSS <= 10 MiB per pod",
			dens.ShimCount > 0 && dens.ShimRSSPerPod <= shimRSSBudgetKi, dens.ShimCount > 0,
			fmt.Sprintf("%d %ss: %s MiB RSS per %s (PSS %s MiB, largest process %s MiB RSS)",
				dens.N, podWord(dens.Mode), fmtMiB(dens.ShimRSSPerPod), podWord(dens.Mode), fmtMiB(dens.ShimPSSPerPod), fmtMiB(dens.ShimMaxRSS)))
	} else {
		add("shim RSS <= 10 MiB per pod", false, false, "density section not run")
	}

	// Issue 13's goals: density, stats cost, start path.
	var runcDens *DensityReport
	for _, r := range d.Density {
		if r.Runtime == runcRuntime {
			runcDens = r
		}
	}
	if dens != nil {
		add("density: shim-side memory per pod <= 6 MiB PSS and <= 20 MiB RSS (shim + resident helpers)",
			dens.ShimSidePSSPerPod <= 6*1024 && dens.ShimSideRSSPerPod <= 20*1024, dens.ShimCount > 0,
			fmt.Sprintf("%d %ss: %s MiB PSS, %s MiB RSS per %s", dens.N, podWord(dens.Mode),
				fmtMiB(dens.ShimSidePSSPerPod), fmtMiB(dens.ShimSideRSSPerPod), podWord(dens.Mode)))
		add("stats: serving containerd's polling of idle pods costs <= 2% of one CPU",
			dens.IdleCPUPercent <= 2, dens.ShimCount > 0,
			fmt.Sprintf("%d idle %ss for %.0f s: shims and their runsc calls used %.2f%% of one CPU%s", dens.N, podWord(dens.Mode),
				dens.IdleSeconds, dens.IdleCPUPercent, runcIdle(runcDens)))
		if runcDens != nil && runcDens.AllRunning > 0 {
			add("start: all pods running <= 1.8x runc's time", dens.AllRunning <= 1.8*runcDens.AllRunning, true,
				fmt.Sprintf("%d %ss: %s ms vs runc %s ms (%.2fx)%s", dens.N, podWord(dens.Mode), fmtMs(dens.AllRunning),
					fmtMs(runcDens.AllRunning), dens.AllRunning/runcDens.AllRunning, cpuVs(dens, runcDens)))
		}
	}
	for _, r := range d.Density {
		if strings.HasPrefix(r.Runtime, currentRuntime("")) && runcDens != nil && runcDens.AllRunning > 0 {
			add("start: all pods running <= 1.8x runc's time, "+r.Runtime, r.AllRunning <= 1.8*runcDens.AllRunning, true,
				fmt.Sprintf("%d %ss: %s ms vs runc %s ms (%.2fx)%s", r.N, podWord(r.Mode), fmtMs(r.AllRunning),
					fmtMs(runcDens.AllRunning), r.AllRunning/runcDens.AllRunning, cpuVs(r, runcDens)))
		}
	}
	if c := d.CRI; c != nil && !c.SandboxOnly {
		add("start: CRI pod start p50 <= runc's + 150 ms", c.Diff <= 150, true,
			fmt.Sprintf("runsc - runc p50 = %s ms (paired %s)", fmtMs(c.Diff), fmtMs(c.DiffPaired)))
		if c.Current != "" {
			add("start: CRI pod start p50 <= runc's + 150 ms, current runsc "+c.Current, c.DiffCurrent <= 150, true,
				fmt.Sprintf("runsc current - runc p50 = %s ms (paired %s)", fmtMs(c.DiffCurrent), fmtMs(c.DiffCurrentPaired)))
		}
	}
	if l := d.Lifecycle; l != nil && l.RuncOverhead > 0 {
		ratio := l.ShimOverhead / l.RuncOverhead
		add("start: shim overhead on a `true` run <= 1.0x the runc shim's", ratio <= 1.0, true,
			fmt.Sprintf("%s ms vs %s ms (%.2fx)", fmtMs(l.ShimOverhead), fmtMs(l.RuncOverhead), ratio))
	}

	if a := d.Argv; a != nil {
		var extra []string
		for _, l := range a.Lifecycles {
			if strings.HasPrefix(l.Name, "client: exec") {
				continue
			}
			for _, x := range l.CreateToRunning {
				extra = append(extra, fmt.Sprintf("%s [%s]", x, l.Name))
			}
		}
		var waiters, concurrent []string
		for _, l := range a.Lifecycles {
			waiters = append(waiters, l.Waiters...)
			concurrent = append(concurrent, l.Concurrent...)
		}
		detail := "only create and start between the create request and running"
		if len(extra) > 0 {
			detail = "extra runsc calls: " + strings.Join(extra, "; ")
		}
		if len(waiters) > 0 {
			detail += "; plus the allowed waiter: " + strings.Join(waiters, "; ")
		}
		if len(concurrent) > 0 {
			detail += "; not counted, serving containerd 2.x's stats polling: " + strings.Join(concurrent, "; ")
		}
		add("Create->running: no runsc call beyond create and start", len(extra) == 0, true, detail)
	} else {
		add("Create->running: no runsc call beyond create and start", false, false, "argv section not run")
	}
	return ts
}

// currentRuntime labels the density runs of CRI handler runsc-current.
func currentRuntime(version string) string {
	return runscRuntime + " with current runsc " + version
}

func podWord(mode string) string {
	if mode == "cri" {
		return "pod"
	}
	return "container"
}

func printMarkdown(w io.Writer, r *Report) {
	fmt.Fprintf(w, "# containerd-shim-runsc-v1 benchmark\n\n")
	fmt.Fprintf(w, "%s, %s CPUs, kernel %s, %s, %s; %.0f s in all.\n",
		r.Meta.Started.Format("2006-01-02 15:04"), r.Meta.Host["cpus"], r.Meta.Host["kernel"],
		r.Meta.Host["runsc"], r.Meta.Host["runc"], r.Meta.Seconds)
	fmt.Fprintf(w, "Warm-up %s rounds, %s measured rounds per variant, variants interleaved; times in ms.\n",
		r.Meta.Flags["warmup"], r.Meta.Flags["runs"])
	for _, d := range r.Daemons {
		fmt.Fprintf(w, "\n## containerd %s (%s)\n", d.Version, d.Full)
		if l := d.Lifecycle; l != nil {
			fmt.Fprintf(w, "\n### 1. Start-to-exit of `true`\n\n")
			fmt.Fprintf(w, "Client path: NewContainer (snapshot + spec) + NewTask + Wait + Start + exit + task Delete + container Delete. Raw: `runsc run` / `runc run`, same flags, spec from %s.\n\n", l.RawSpec)
			summaryTable(w, l.Variants)
			fmt.Fprintf(w, "\n| overhead | p50 diff | paired median |\n|---|---:|---:|\n")
			fmt.Fprintf(w, "| runsc shim − raw runsc | %s | %s |\n", fmtMs(l.ShimOverhead), fmtMs(l.ShimOverheadPaired))
			fmt.Fprintf(w, "| runc shim − raw runc | %s | %s |\n", fmtMs(l.RuncOverhead), fmtMs(l.RuncOverheadPaired))
			phaseTable(w, l.Variants)
		}
		if c := d.CRI; c != nil {
			fmt.Fprintf(w, "\n### 2. CRI pod start (RunPodSandbox + CreateContainer + StartContainer until running)\n\n")
			if c.SandboxOnly {
				fmt.Fprintf(w, "**Degraded**: %s\n\n", c.Degraded)
			}
			summaryTable(w, c.Variants)
			fmt.Fprintf(w, "\nrunsc − runc: p50 diff %s, paired median %s\n", fmtMs(c.Diff), fmtMs(c.DiffPaired))
			if c.Current != "" {
				fmt.Fprintf(w, "\nrunsc %s − runc: p50 diff %s, paired median %s\n", c.Current, fmtMs(c.DiffCurrent), fmtMs(c.DiffCurrentPaired))
			}
			phaseTable(w, c.Variants)
		} else if d.CRISkipped != "" {
			fmt.Fprintf(w, "\n### 2. CRI pod start\n\nskipped: %s\n", d.CRISkipped)
		}
		if x := d.Exec; x != nil {
			fmt.Fprintf(w, "\n### 3. Exec of `true` in a running container\n\n")
			fmt.Fprintf(w, "Shim: Exec + Wait + Start + exit + Delete. Raw: `runsc exec <id> /bin/true` (`runc exec`) in a raw container.\n\n")
			summaryTable(w, x.Variants)
			fmt.Fprintf(w, "\nrunsc shim exec − raw runsc exec: p50 diff %s, paired median %s; runc shim − raw runc: %s\n",
				fmtMs(x.Overhead), fmtMs(x.OverheadPaired), fmtMs(x.RuncOverhead))
			phaseTable(w, x.Variants)
		}
		if len(d.Density) > 0 {
			fmt.Fprintf(w, "\n### 4. Density\n\n")
			fmt.Fprintf(w, "| runtime | mode | n | all running | one start p50 | p95 | shim procs | shim RSS/pod MiB | shim PSS/pod MiB | largest shim RSS MiB |\n")
			fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, r := range d.Density {
				fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %d | %s | %s | %s |\n", r.Runtime, r.Mode, r.N,
					fmtMs(r.AllRunning), fmtMs(r.EachStart.P50), fmtMs(r.EachStart.P95), r.ShimCount,
					fmtMiB(r.ShimRSSPerPod), fmtMiB(r.ShimPSSPerPod), fmtMiB(r.ShimMaxRSS))
			}
			for _, r := range d.Density {
				if r.RunscCallsStart != nil {
					fmt.Fprintf(w, "\nrunsc processes the shims started (%s, %d %ss): while starting: %s; then idle for %.0f s: %s\n",
						r.Runtime, r.N, podWord(r.Mode), countList(r.RunscCallsStart), r.IdleSeconds, countList(r.RunscCallsIdle))
				}
			}
			fmt.Fprintf(w, "\nMemory by process kind (totals and per %s):\n\n", podWord(d.Density[0].Mode))
			fmt.Fprintf(w, "| runtime | kind | processes | RSS MiB | PSS MiB | RSS/pod MiB | PSS/pod MiB | anon/pod MiB |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
			for _, r := range d.Density {
				for _, g := range r.Memory {
					fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s |\n", r.Runtime, g.Kind, g.Count,
						fmtMiB(g.RSSKiB), fmtMiB(g.PSSKiB), fmtMiB(g.PerPod), fmtMiB(g.PSSPerPod), fmtMiB(g.AnonPerPod))
				}
			}
			writeStartCPU(w, d.Density)
		}
		if a := d.Argv; a != nil {
			fmt.Fprintf(w, "\n### 5. runsc processes spawned by the shim, per lifecycle\n\n")
			fmt.Fprintf(w, "| lifecycle | phase | runsc calls |\n|---|---|---|\n")
			for _, l := range a.Lifecycles {
				for _, p := range l.Phases {
					fmt.Fprintf(w, "| %s | %s | %s |\n", l.Name, p.Phase, countList(p.Calls))
				}
				consistent := ""
				if !l.Consistent {
					consistent = " (differed between runs)"
				}
				fmt.Fprintf(w, "| %s | **total** (%d runs)%s | **%s** |\n", l.Name, l.Runs, consistent, countList(l.Total))
			}
		}
		if ck := d.Checkpoint; ck != nil {
			fmt.Fprintf(w, "\n### 7. Checkpoint and restore\n\n")
			fmt.Fprintf(w, "Through containerd's client: cold start = NewContainer + NewTask + Start; checkpoint = task Checkpoint with exit (image into the content store); restore = NewContainer + NewTask from the image + Start.\n\n")
			fmt.Fprintf(w, "| container | cold start p50 | checkpoint p50 | p95 | restore p50 | p95 | image MiB |\n|---|---:|---:|---:|---:|---:|---:|\n")
			for _, k := range ck.Kinds {
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %.1f |\n", k.Name, fmtMs(k.ColdStart.P50),
					fmtMs(k.Checkpoint.P50), fmtMs(k.Checkpoint.P95), fmtMs(k.Restore.P50), fmtMs(k.Restore.P95), float64(k.ImageBytes)/(1<<20))
			}
		}
		if rs := d.Runscs; rs != nil {
			fmt.Fprintf(w, "\n### 6. runsc generations and platforms\n\n")
			fmt.Fprintf(w, "The same work under each runsc, variants interleaved: start-to-exit of `true` through this shim (as in 1) and under `runsc run`, exec of `true` through this shim, and the host memory of one idle container (its sandbox and gofer processes).\n\n")
			fmt.Fprintf(w, "| runsc | platform | binary | shim `true` p50 | p95 | raw `runsc run` p50 | p95 | shim exec p50 | p95 | idle sandbox RSS MiB | PSS MiB | processes |\n")
			fmt.Fprintf(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			for i, v := range rs.Runscs {
				var l, x, m Summary
				var g MemGroup
				if i < len(rs.Lifecycle) {
					l = rs.Lifecycle[i]
				}
				if i < len(rs.Raw) {
					x = rs.Raw[i]
				}
				if i < len(rs.Exec) {
					m = rs.Exec[i]
				}
				if i < len(rs.Memory) {
					g = rs.Memory[i]
				}
				fmt.Fprintf(w, "| %s | %s | `%s` | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", v.Version, v.Platform, v.Binary,
					fmtMs(l.P50), fmtMs(l.P95), fmtMs(x.P50), fmtMs(x.P95), fmtMs(m.P50), fmtMs(m.P95),
					fmtMiB(g.RSSKiB), fmtMiB(g.PSSKiB), g.Count)
			}
			for _, n := range rs.Notes {
				fmt.Fprintf(w, "\nNOTE: %s\n", n)
			}
		}
		if tl := d.Timeline; tl != nil {
			fmt.Fprintf(w, "\n### Timeline: time in runsc/runc vs the rest (shim + containerd), p50 of %d runs\n\n", tl.Runs)
			fmt.Fprintf(w, "runsc/runc run through a timing wrapper (adds a bash start per call).\n\n")
			fmt.Fprintf(w, "| lifecycle | step | total | in runsc/runc | rest | calls started |\n|---|---|---:|---:|---:|---|\n")
			for _, k := range tl.Kinds {
				for _, s := range k.Steps {
					fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", k.Name, s.Step, fmtMs(s.Total), fmtMs(s.InRunsc), fmtMs(s.Other), s.Calls)
				}
			}
			fmt.Fprintf(w, "\n| shim, lifecycle, step: subcommand | n | wall p50 |\n|---|---:|---:|\n")
			for _, c := range tl.Calls {
				fmt.Fprintf(w, "| %s | %d | %s |\n", c.Sub, c.N, fmtMs(c.P50))
			}
		}
		fmt.Fprintf(w, "\n### Targets (containerd %s)\n\n", d.Version)
		for _, t := range d.Targets {
			fmt.Fprintf(w, "%s: %s — %s\n", t.Result, t.Name, t.Detail)
		}
		for _, e := range d.Errors {
			fmt.Fprintf(w, "ERROR: %s\n", e)
		}
		for _, n := range d.Notes {
			fmt.Fprintf(w, "NOTE: %s\n", n)
		}
	}
}

func summaryTable(w io.Writer, vs []Summary) {
	fmt.Fprintf(w, "| variant | n | p50 | p95 | min | max |\n|---|---:|---:|---:|---:|---:|\n")
	for _, v := range vs {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", v.Name, v.N, fmtMs(v.P50), fmtMs(v.P95), fmtMs(v.Min), fmtMs(v.Max))
	}
}

// phaseTable prints each variant's per-step medians, if any.
func phaseTable(w io.Writer, vs []Summary) {
	any := false
	for _, v := range vs {
		any = any || len(v.Phases) > 0
	}
	if !any {
		return
	}
	fmt.Fprintf(w, "\nSteps (p50 / p95):\n\n| variant | steps |\n|---|---|\n")
	for _, v := range vs {
		if len(v.Phases) == 0 {
			continue
		}
		var parts []string
		for _, p := range v.Phases {
			parts = append(parts, fmt.Sprintf("%s %s/%s", p.Name, fmtMs(p.P50), fmtMs(p.P95)))
		}
		fmt.Fprintf(w, "| %s | %s |\n", v.Name, strings.Join(parts, ", "))
	}
}

func countList(m map[string]int) string {
	if len(m) == 0 {
		return "—"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func runcIdle(r *DensityReport) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf(" (runc's shims for as many pods: %.2f%%)", r.IdleCPUPercent)
}

// writeStartCPU prints where the CPU went while the density section's pods
// started: on a host with few CPUs, starting many at once is bound by the
// CPU all processes need, so the runtime that needs more takes longer.
func writeStartCPU(w io.Writer, rs []*DensityReport) {
	if len(rs) == 0 || rs[0].StartCPU == nil {
		return
	}
	cpus := runtime.NumCPU()
	fmt.Fprintf(w, "\nCPU time while the %d %ss started (from the first start to the last running; own = the processes' own, children = what they ran and reaped: a shim's runsc or runc calls, containerd's shim start-ups):\n\n", rs[0].N, podWord(rs[0].Mode))
	fmt.Fprintf(w, "| runtime | kind | own ms | children ms | per %s ms |\n|---|---|---:|---:|---:|\n", podWord(rs[0].Mode))
	for _, r := range rs {
		var total float64
		for _, g := range r.StartCPU {
			t := g.OwnMs + g.ChildrenMs
			total += t
			fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.1f |\n", r.Runtime, g.Kind, g.OwnMs, g.ChildrenMs, t/float64(r.N))
		}
		fmt.Fprintf(w, "| %s | **all** | | | **%.1f** (%.0f ms in all: %.0f%% of %d CPUs over the %.0f ms) |\n", r.Runtime,
			total/float64(r.N), total, 100*total/(float64(cpus)*r.AllRunning), cpus, r.AllRunning)
	}
}

// cpuVs compares the CPU time per pod two density runs used while starting.
func cpuVs(r, runc *DensityReport) string {
	per := func(d *DensityReport) float64 {
		var t float64
		for _, g := range d.StartCPU {
			t += g.OwnMs + g.ChildrenMs
		}
		return t / float64(d.N)
	}
	if len(r.StartCPU) == 0 || len(runc.StartCPU) == 0 {
		return ""
	}
	// The runtime's own: its CLI calls (the shims' reaped children) and
	// its processes (runsc's sandboxes and gofers).
	own := func(d *DensityReport) float64 {
		var t float64
		for _, g := range d.StartCPU {
			switch {
			case strings.HasPrefix(g.Kind, "shim "):
				t += g.ChildrenMs
			case strings.HasPrefix(g.Kind, "runsc"):
				t += g.OwnMs + g.ChildrenMs
			}
		}
		return t / float64(d.N)
	}
	return fmt.Sprintf("; CPU while starting: %.0f ms per pod, %.0f of it runsc's (CLI calls, sandbox, gofers), vs runc's %.0f, %.0f of it runc's", per(r), own(r), per(runc), own(runc))
}
