package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// The README's performance figures stand between these markers; -readme
// replaces what is between them with readmeSummary's text.
const (
	readmeBegin = "<!-- bench:begin (written by `make bench`; edits here are overwritten) -->"
	readmeEnd   = "<!-- bench:end -->"
)

// fullRun reports whether r measured every section against both containerd
// versions with figures in each: only such a run may stand in the README
// (with the errors of the run, if any, printed beside its figures).
func fullRun(r *Report, sections map[string]bool) error {
	for _, s := range allSections {
		if !sections[s] {
			return fmt.Errorf("section %s was not run", s)
		}
	}
	if len(r.Daemons) != 2 {
		return fmt.Errorf("%d containerd versions measured, want both", len(r.Daemons))
	}
	for _, d := range r.Daemons {
		if d.Lifecycle == nil || d.CRI == nil || d.Exec == nil || len(d.Density) == 0 || d.Checkpoint == nil {
			return fmt.Errorf("containerd %s: a section has no figures", d.Version)
		}
	}
	return nil
}

// updateReadme replaces the text between the markers in the file at path.
func updateReadme(path, summary string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-readme: %w", err)
	}
	i := bytes.Index(b, []byte(readmeBegin))
	j := bytes.Index(b, []byte(readmeEnd))
	if i < 0 || j < i {
		return fmt.Errorf("-readme %s: no %q ... %q block to replace", path, readmeBegin, readmeEnd)
	}
	var out bytes.Buffer
	out.Write(b[:i+len(readmeBegin)])
	out.WriteString("\n")
	out.WriteString(summary)
	out.Write(b[j:])
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// readmeSummary is the README's condensed view of a full run: one table
// with a column per containerd, then every target's PASS/FAIL line.
func readmeSummary(r *Report) string {
	var w bytes.Buffer
	fmt.Fprintf(&w, "Measured %s by `make bench` (%s CPUs, kernel %s, %s, %s; %s interleaved rounds after %s warm-up rounds; %.0f s in all). Times in ms, p50 (p95).\n\n",
		r.Meta.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Meta.Host["cpus"], r.Meta.Host["kernel"],
		r.Meta.Host["runsc"], r.Meta.Host["runc"], r.Meta.Flags["runs"], r.Meta.Flags["warmup"], r.Meta.Seconds)
	fmt.Fprintf(&w, "| |")
	for _, d := range r.Daemons {
		fmt.Fprintf(&w, " containerd %s |", d.Version)
	}
	fmt.Fprintf(&w, "\n|---|")
	for range r.Daemons {
		fmt.Fprintf(&w, "---|")
	}
	fmt.Fprintf(&w, "\n")
	row := func(name string, cell func(d *DaemonReport) string) {
		fmt.Fprintf(&w, "| %s |", name)
		for _, d := range r.Daemons {
			fmt.Fprintf(&w, " %s |", cell(d))
		}
		fmt.Fprintf(&w, "\n")
	}
	pp := func(s Summary) string { return fmt.Sprintf("%s (%s)", fmtMs(s.P50), fmtMs(s.P95)) }
	variant := func(vs []Summary, i int) Summary {
		if i < len(vs) {
			return vs[i]
		}
		return Summary{}
	}
	row("`true` start-to-exit through this shim (create+start+wait+delete)", func(d *DaemonReport) string { return pp(variant(d.Lifecycle.Variants, 0)) })
	row("raw `runsc run` of the same bundle", func(d *DaemonReport) string { return pp(variant(d.Lifecycle.Variants, 1)) })
	row("runc shim / raw `runc run`", func(d *DaemonReport) string {
		return pp(variant(d.Lifecycle.Variants, 2)) + " / " + pp(variant(d.Lifecycle.Variants, 3))
	})
	row("**shim overhead** (this shim − raw runsc) vs the runc shim's", func(d *DaemonReport) string {
		return fmt.Sprintf("**%s** vs %s", fmtMs(d.Lifecycle.ShimOverhead), fmtMs(d.Lifecycle.RuncOverhead))
	})
	row("CRI pod start (RunPodSandbox+CreateContainer+StartContainer): Debian's runsc / current runsc / runc", func(d *DaemonReport) string {
		return pp(variant(d.CRI.Variants, 0)) + " / " + pp(variant(d.CRI.Variants, 2)) + " / " + pp(variant(d.CRI.Variants, 1))
	})
	row("exec `true`: this shim vs raw `runsc exec`", func(d *DaemonReport) string {
		return pp(variant(d.Exec.Variants, 0)) + " vs " + pp(variant(d.Exec.Variants, 1))
	})
	dens := func(d *DaemonReport, f func(r *DensityReport) string) string {
		var cells []string
		for _, want := range []string{runscRuntime, currentRuntime(""), runcRuntime} {
			for _, r := range d.Density {
				if r.Runtime == want || (want != runscRuntime && strings.HasPrefix(r.Runtime, want)) {
					cells = append(cells, f(r))
				}
			}
		}
		return strings.Join(cells, " / ")
	}
	n := r.Daemons[0].Density[0].N
	row(fmt.Sprintf("%d pods started at once, all running: Debian's runsc / current runsc / runc", n), func(d *DaemonReport) string {
		return dens(d, func(r *DensityReport) string { return fmtMs(r.AllRunning) })
	})
	row("CPU time per pod while they started (all processes): Debian's runsc / current runsc / runc", func(d *DaemonReport) string {
		return dens(d, func(r *DensityReport) string {
			var t float64
			for _, g := range r.StartCPU {
				t += g.OwnMs + g.ChildrenMs
			}
			return fmt.Sprintf("%.0f", t/float64(r.N))
		})
	})
	row("shim memory per pod, RSS / PSS MiB: this shim (runc shim)", func(d *DaemonReport) string {
		var runsc, runc *DensityReport
		for _, r := range d.Density {
			switch r.Runtime {
			case runscRuntime:
				runsc = r
			case runcRuntime:
				runc = r
			}
		}
		if runsc == nil || runc == nil {
			return "—"
		}
		return fmt.Sprintf("%s / %s (%s / %s)", fmtMiB(runsc.ShimRSSPerPod), fmtMiB(runsc.ShimPSSPerPod), fmtMiB(runc.ShimRSSPerPod), fmtMiB(runc.ShimPSSPerPod))
	})
	row("CPU of the shims while the pods sit idle (containerd's stats polling), % of one CPU: this shim / runc shim", func(d *DaemonReport) string {
		var runsc, runc float64
		var secs float64
		for _, r := range d.Density {
			switch r.Runtime {
			case runscRuntime:
				runsc, secs = r.IdleCPUPercent, r.IdleSeconds
			case runcRuntime:
				runc = r.IdleCPUPercent
			}
		}
		return fmt.Sprintf("%.2f / %.2f (over %.0f s)", runsc, runc, secs)
	})
	for _, k := range r.Daemons[0].Checkpoint.Kinds {
		name := k.Name
		row("checkpoint / restore / cold start, "+name+" (image MiB)", func(d *DaemonReport) string {
			for _, k := range d.Checkpoint.Kinds {
				if k.Name == name {
					return fmt.Sprintf("%s / %s / %s (%.1f)", fmtMs(k.Checkpoint.P50), fmtMs(k.Restore.P50), fmtMs(k.ColdStart.P50), float64(k.ImageBytes)/(1<<20))
				}
			}
			return "—"
		})
	}
	if rs := r.Daemons[0].Runscs; rs != nil {
		fmt.Fprintf(&w, "\nrunsc generations and platforms (`true` through this shim and under raw `runsc run`, exec of `true` through this shim; one idle `sleep` container's sandbox, gofer and platform processes on the host), containerd %s:\n\n", r.Daemons[0].Version)
		fmt.Fprintf(&w, "| runsc, platform | `true` via this shim | raw `runsc run` | exec `true` via this shim | idle container RSS / PSS MiB |\n|---|---|---|---|---|\n")
		for i, v := range rs.Runscs {
			var g MemGroup
			if i < len(rs.Memory) {
				g = rs.Memory[i]
			}
			fmt.Fprintf(&w, "| %s, %s | %s | %s | %s | %s / %s |\n", v.Version, v.Platform, pp(variant(rs.Lifecycle, i)),
				pp(variant(rs.Raw, i)), pp(variant(rs.Exec, i)), fmtMiB(g.RSSKiB), fmtMiB(g.PSSKiB))
		}
	}
	for _, d := range r.Daemons {
		fmt.Fprintf(&w, "\nTargets, containerd %s:\n\n", d.Version)
		writeTargets(&w, d.Targets)
		for _, e := range d.Errors {
			fmt.Fprintf(&w, "- ERROR in this run: %s\n", e)
		}
	}
	return w.String()
}

func writeTargets(w io.Writer, ts []Target) {
	for _, t := range ts {
		fmt.Fprintf(w, "- %s: %s — %s\n", t.Result, t.Name, t.Detail)
	}
}

// writeReadme updates the README from a full run, or says why not.
func writeReadme(path string, r *Report, sections map[string]bool) error {
	if err := fullRun(r, sections); err != nil {
		return errors.Join(fmt.Errorf("-readme %s: not updated, only a full run stands there", path), err)
	}
	return updateReadme(path, readmeSummary(r))
}
