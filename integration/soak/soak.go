package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

const (
	soakNamespace = "runsc-soak"
	// lifecycleTimeout bounds one lifecycle, so a hung shim fails it
	// instead of hanging the soak.
	lifecycleTimeout = 2 * time.Minute
	// leftoverGrace is how long a deleted container's shim and sandbox
	// may take to go away.
	leftoverGrace = 10 * time.Second
	// maxConsecutiveFailures aborts a version's loop: the daemon is broken.
	maxConsecutiveFailures = 20
	// maxFailuresShown bounds the failures kept for the summary.
	maxFailuresShown = 40
)

// result is one containerd version's soak.
type result struct {
	version  string
	done     int // lifecycles run
	failed   int // lifecycles with a wrong result or leftovers
	failures []string
	byShape  map[string]int // failed lifecycles per shape
	leaks    []string       // growth at the end and what survived the daemon's stop
	elapsed  time.Duration
	aborted  string
}

func (r *result) ok() bool {
	return r.failed == 0 && len(r.leaks) == 0 && r.aborted == "" && r.done > 0
}

func (r *result) fail(shape, msg string) {
	r.failed++
	if r.byShape == nil {
		r.byShape = map[string]int{}
	}
	r.byShape[shape]++
	if len(r.failures) < maxFailuresShown {
		r.failures = append(r.failures, msg)
	}
	fmt.Fprintf(os.Stderr, "soak: containerd %s: FAIL %s\n", r.version, msg)
}

// soakVersion runs the loop against one private containerd and removes
// everything it started before returning.
func soakVersion(ctx context.Context, o *options, version string) *result {
	r := &result{version: version}
	bin, _, _ := harness.DaemonBinaries(version)
	fmt.Printf("\n== containerd %s (%s), shim %s ==\n", version, bin, o.shim)
	var logf harness.Logf
	if o.verbose {
		logf = harness.StderrLogf
	}
	d, err := harness.StartDaemon(ctx, harness.DaemonOptions{
		Version:   version,
		ShimDirs:  []string{filepath.Dir(o.shim)},
		Namespace: soakNamespace,
		LogLevel:  o.logLevel,
		Logf:      logf,
	})
	if err != nil {
		r.aborted = fmt.Sprintf("start containerd: %v", err)
		r.leaks = append(r.leaks, r.aborted)
		return r
	}
	prefix := runPrefix(version)
	dir, daemonPid := d.Dir, d.Pid()
	var acct *accountant
	defer func() {
		r.leaks = append(r.leaks, stopAndVerify(d, dir, prefix, acct)...)
	}()

	cfg, err := harness.WriteRunscConfig(filepath.Join(d.Dir, "runsc"), nil)
	if err != nil {
		r.aborted = fmt.Sprintf("runsc config: %v", err)
		return r
	}
	ictx, cancel := context.WithTimeout(d.Context(ctx), 2*time.Minute)
	img, err := harness.ImportBusybox(ictx, d.Client, logf)
	cancel()
	if err != nil {
		r.aborted = fmt.Sprintf("import busybox: %v", err)
		return r
	}
	e := &env{d: d, img: img, cfg: cfg, opts: &runtimeoptions.Options{ConfigPath: cfg.Path}, prefix: prefix}
	acct = newAccountant(d, prefix, cfg.Root)
	fmt.Printf("daemon dir %s, containerd pid %d, namespace %s, id prefix %s, runsc root %s\n",
		d.Dir, daemonPid, d.Namespace, prefix, cfg.Root)

	base := acct.snapshot(d.Context(ctx), 0)
	printTable(os.Stdout, fmt.Sprintf("containerd %s: baseline", version), base, base)

	start := time.Now()
	var deadline time.Time
	if o.duration > 0 {
		deadline = start.Add(o.duration)
	}
	consecutive := 0
	for i := 0; i < o.n; i++ {
		if ctx.Err() != nil {
			r.aborted = "interrupted"
			break
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			fmt.Printf("-duration %s reached after %d lifecycles\n", o.duration, i)
			break
		}
		if !harness.ProcessAlive(daemonPid) {
			r.aborted = fmt.Sprintf("containerd (pid %d) died after %d lifecycles; log tail:\n%s", daemonPid, i, d.LogTail(20))
			break
		}
		sh := shapes[i%len(shapes)]
		id := sh.id(e, i)
		t0 := time.Now()
		logOffset := fileSize(d.LogPath)
		lctx, cancel := context.WithTimeout(d.Context(ctx), lifecycleTimeout)
		addr, err := sh.run(lctx, e, id)
		cancel()
		acct.addShimSocket(addr)
		r.done++
		var problems []string
		if err != nil {
			problems = append(problems, err.Error())
			if rerr := removeContainer(e, id); rerr != nil {
				problems = append(problems, "cleanup: "+rerr.Error())
			}
		}
		var extra []string
		if addr != "" {
			extra = []string{addr, addr + ".debug"}
		}
		if left := d.WaitNoLeftovers(leftoverGrace, id, cfg.Root, extra...); len(left) > 0 {
			problems = append(problems, fmt.Sprintf("left behind %s after delete: %s", leftoverGrace, firstN(left, 8)))
		}
		if len(problems) > 0 {
			consecutive++
			msg := fmt.Sprintf("#%d %s (%s): %s", i, sh.name, id, strings.Join(problems, "; "))
			if logs := daemonProblems(d.LogPath, logOffset, id, 6); logs != "" {
				msg += "\n    containerd log:\n" + logs
			}
			r.fail(sh.name, msg)
			// Remove what leaked so that one leak does not fail every later
			// lifecycle with the same id.
			cleanupLeftovers(id)
		} else {
			consecutive = 0
		}
		if o.verbose {
			fmt.Fprintf(os.Stderr, "soak: containerd %s: #%d %s %s in %s\n", version, i, sh.name, map[bool]string{true: "ok", false: "FAIL"}[len(problems) == 0], time.Since(t0).Round(time.Millisecond))
		}
		if consecutive >= maxConsecutiveFailures {
			r.aborted = fmt.Sprintf("%d lifecycles failed in a row", consecutive)
			break
		}
		if r.done%o.every == 0 && r.done < o.n {
			now := acct.snapshot(d.Context(ctx), r.done)
			el := time.Since(start)
			printTable(os.Stdout, fmt.Sprintf("containerd %s: after %d lifecycles (%s, %.2f/s, %d failed)",
				version, r.done, el.Round(time.Second), rate(r.done, el), r.failed), base, now)
		}
	}
	r.elapsed = time.Since(start)
	// Let the last shim's asynchronous exit settle before the final count.
	time.Sleep(time.Second)
	final := acct.snapshot(d.Context(context.WithoutCancel(ctx)), r.done)
	printTable(os.Stdout, fmt.Sprintf("containerd %s: end, %d lifecycles in %s (%.2f/s), %d failed",
		version, r.done, r.elapsed.Round(time.Second), rate(r.done, r.elapsed), r.failed), base, final)
	r.leaks = append(r.leaks, leaks(base, final)...)
	if r.aborted != "" {
		r.leaks = append(r.leaks, "aborted: "+r.aborted)
	}
	return r
}

// daemonProblems returns up to n containerd log lines about id at level
// warning or error written after offset, indented.
func daemonProblems(logPath string, offset int64, id string, n int) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, id) && (strings.Contains(l, "level=error") || strings.Contains(l, "level=warn")) {
			lines = append(lines, "      "+shorten(l, 400))
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// cleanupLeftovers kills the runsc and shim processes still serving id
// after a failed lifecycle (the failure has been counted).
func cleanupLeftovers(id string) {
	for _, p := range harness.ProcessesMentioning(id) {
		if strings.HasPrefix(p.Name, "runsc") || strings.Contains(p.Name, "containerd-shim-runsc") {
			if proc, err := os.FindProcess(p.Pid); err == nil {
				_ = proc.Kill()
			}
		}
	}
}

// stopAndVerify stops the daemon and lists everything of the run that is
// still on the host afterwards, plus what Stop itself had to clean up.
func stopAndVerify(d *harness.Daemon, dir, prefix string, acct *accountant) []string {
	var out []string
	if err := d.Stop(); err != nil {
		out = append(out, fmt.Sprintf("stopping containerd had to clean up: %v", err))
	}
	time.Sleep(500 * time.Millisecond)
	for _, p := range harness.ProcessesMentioning(dir, prefix) {
		out = append(out, fmt.Sprintf("after stop: process %d: %s", p.Pid, shorten(p.Cmdline, 200)))
	}
	for _, m := range harness.Mounts() {
		if strings.Contains(m.Line, dir) || strings.Contains(m.Line, prefix) {
			out = append(out, "after stop: mount "+m.Line)
		}
	}
	if _, err := os.Lstat(dir); err == nil && os.Getenv("HARNESS_KEEP") == "" {
		out = append(out, "after stop: daemon dir still exists: "+dir)
	}
	if acct != nil {
		for p := range acct.ours {
			if _, err := os.Lstat(p); err == nil {
				out = append(out, "after stop: shim socket "+p)
			}
		}
		for _, c := range acct.cgroups() {
			out = append(out, "after stop: cgroup "+c)
		}
	}
	if len(out) > 0 {
		err := errors.New(strings.Join(out, "\n  "))
		fmt.Fprintf(os.Stderr, "soak: containerd %s after stop:\n  %v\n", d.Version, err)
	} else {
		fmt.Printf("containerd %s stopped: no process, mount, socket, cgroup or file of the run remains\n", d.Version)
	}
	return out
}
