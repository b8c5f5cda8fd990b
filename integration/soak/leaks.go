package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

// Growth containerd may show over the run without it counting as a leak:
// its gRPC/ttrpc connection pools, Go runtime threads and caches settle
// after the first lifecycles.
const (
	containerdFDSlack     = 16
	containerdThreadSlack = 16
)

const cgroupRoot = "/sys/fs/cgroup"

// metric is one row of the leak table.
type metric struct {
	name  string
	value int
	// slack is the growth over the baseline that is still not a leak.
	slack int
	// info rows are shown but not judged (e.g. they may count other
	// programs' objects).
	info bool
	// details name the counted objects (shown for leaks).
	details []string
}

type snapshot struct {
	lifecycles int
	at         time.Time
	metrics    []metric
}

func (s *snapshot) get(name string) *metric {
	for i := range s.metrics {
		if s.metrics[i].name == name {
			return &s.metrics[i]
		}
	}
	return nil
}

// accountant counts what the run has on the host.
type accountant struct {
	d         *harness.Daemon
	prefix    string
	runscRoot string
	// ours holds every shim socket (and its .debug twin) a lifecycle
	// reported: they must all be gone once their container is deleted.
	ours map[string]bool
	// sockDirs maps each shim socket directory seen to the entries it held
	// before this run used it.
	sockDirs map[string]map[string]bool
}

func newAccountant(d *harness.Daemon, prefix, runscRoot string) *accountant {
	a := &accountant{d: d, prefix: prefix, runscRoot: runscRoot, ours: map[string]bool{}, sockDirs: map[string]map[string]bool{}}
	a.addSocketDir(harness.ShimSocketRoot)
	return a
}

func (a *accountant) addSocketDir(dir string) {
	if _, ok := a.sockDirs[dir]; ok {
		return
	}
	base := map[string]bool{}
	for _, n := range listDir(dir) {
		if !a.ours[filepath.Join(dir, n)] {
			base[n] = true
		}
	}
	a.sockDirs[dir] = base
}

// addShimSocket records a shim socket of this run.
func (a *accountant) addShimSocket(addr string) {
	if addr == "" {
		return
	}
	a.ours[addr] = true
	a.ours[addr+".debug"] = true
	a.addSocketDir(filepath.Dir(addr))
}

// mentionsRun reports whether s names the daemon's dir or the run's ids.
func (a *accountant) mentionsRun(s string) bool {
	return strings.Contains(s, a.d.Dir) || strings.Contains(s, a.prefix)
}

// snapshot counts everything of the run on the host and in containerd.
func (a *accountant) snapshot(ctx context.Context, lifecycles int) snapshot {
	s := snapshot{lifecycles: lifecycles, at: time.Now()}
	add := func(m metric) { s.metrics = append(s.metrics, m) }

	procs := map[string]*metric{}
	for _, k := range []string{"runsc", "runsc-gofer", "runsc-sandbox", "shim"} {
		procs[k] = &metric{name: "processes: " + k}
	}
	self, daemon := os.Getpid(), a.d.Pid()
	for _, p := range harness.Processes() {
		if p.Pid == self || p.Pid == daemon || !a.mentionsRun(p.Cmdline) {
			continue
		}
		var k string
		switch {
		case p.Name == "runsc-gofer":
			k = "runsc-gofer"
		case p.Name == "runsc-sandbox":
			k = "runsc-sandbox"
		case strings.HasPrefix(p.Name, "runsc"):
			k = "runsc"
		case strings.Contains(p.Name, "containerd-shim-runsc"):
			k = "shim"
		default:
			continue
		}
		procs[k].value++
		procs[k].details = append(procs[k].details, fmt.Sprintf("pid %d: %s", p.Pid, shorten(p.Cmdline, 200)))
	}
	for _, k := range []string{"runsc", "runsc-gofer", "runsc-sandbox", "shim"} {
		add(*procs[k])
	}

	mounts := metric{name: "mounts (daemon dir or run ids)"}
	for _, m := range harness.Mounts() {
		if a.mentionsRun(m.Line) {
			mounts.value++
			mounts.details = append(mounts.details, m.Line)
		}
	}
	add(mounts)

	add(metric{name: "containerd fds", value: countFDs(daemon), slack: containerdFDSlack})
	add(metric{name: "containerd threads", value: countThreads(daemon), slack: containerdThreadSlack})

	socks := metric{name: "shim sockets of this run"}
	for p := range a.ours {
		if _, err := os.Lstat(p); err == nil {
			socks.value++
			socks.details = append(socks.details, p)
		}
	}
	sort.Strings(socks.details)
	add(socks)
	other := metric{name: "new entries in shim socket dirs (any owner)", info: true}
	for dir, base := range a.sockDirs {
		for _, n := range listDir(dir) {
			if p := filepath.Join(dir, n); !base[n] && !a.ours[p] {
				other.value++
				other.details = append(other.details, p)
			}
		}
	}
	add(other)

	bundles := metric{name: "task bundles"}
	bdir := filepath.Join(a.d.State, "io.containerd.runtime.v2.task", a.d.Namespace)
	for _, n := range listDir(bdir) {
		bundles.value++
		bundles.details = append(bundles.details, filepath.Join(bdir, n))
	}
	add(bundles)

	// The shim keeps runsc state in <root>/<namespace>/: the namespace
	// directory itself may stay, what is in it may not.
	rroot := metric{name: "runsc root entries (in <root>/<ns>/)"}
	for _, n := range listDir(a.runscRoot) {
		p := filepath.Join(a.runscRoot, n)
		if st, err := os.Lstat(p); err == nil && st.IsDir() {
			for _, m := range listDir(p) {
				rroot.value++
				rroot.details = append(rroot.details, filepath.Join(p, m))
			}
			continue
		}
		rroot.value++
		rroot.details = append(rroot.details, p)
	}
	add(rroot)

	cg := metric{name: "cgroups named with run ids"}
	cg.details = a.cgroups()
	cg.value = len(cg.details)
	add(cg)

	nctx := namespaces.WithNamespace(ctx, a.d.Namespace)
	ctrs := metric{name: "containerd containers"}
	if cs, err := a.d.Client.Containers(nctx); err == nil {
		for _, c := range cs {
			ctrs.value++
			ctrs.details = append(ctrs.details, c.ID())
		}
	} else {
		ctrs.value = -1
		ctrs.details = []string{err.Error()}
	}
	add(ctrs)
	snaps := metric{name: "active snapshots"}
	err := a.d.Client.SnapshotService(harness.DefaultSnapshotter).Walk(nctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive {
			snaps.value++
			snaps.details = append(snaps.details, info.Name)
		}
		return nil
	})
	if err != nil {
		snaps.value = -1
		snaps.details = []string{err.Error()}
	}
	add(snaps)
	return s
}

// cgroups lists the cgroup directories whose name contains the run prefix.
func (a *accountant) cgroups() []string {
	var out []string
	_ = filepath.WalkDir(cgroupRoot, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if e != nil && e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !e.IsDir() {
			return nil
		}
		if strings.Contains(e.Name(), a.prefix) {
			out = append(out, path)
			return fs.SkipDir
		}
		return nil
	})
	return out
}

// leaks compares now with the baseline and lists the metrics that grew
// beyond their slack.
func leaks(base, now snapshot) []string {
	var out []string
	for _, m := range now.metrics {
		if m.info {
			continue
		}
		b := base.get(m.name)
		if b == nil {
			continue
		}
		if m.value < 0 || b.value < 0 {
			out = append(out, fmt.Sprintf("%s: could not be read (%s)", m.name, strings.Join(m.details, "; ")))
			continue
		}
		if m.value-b.value > m.slack {
			line := fmt.Sprintf("%s: %d -> %d (+%d, allowed +%d)", m.name, b.value, m.value, m.value-b.value, m.slack)
			if d := firstN(m.details, 5); d != "" {
				line += ": " + d
			}
			out = append(out, line)
		}
	}
	return out
}

// printTable writes the leak table: baseline, now, growth, allowed.
func printTable(w io.Writer, title string, base, now snapshot) {
	fmt.Fprintf(w, "\n-- %s --\n", title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "what\tbaseline\tnow\tgrowth\tallowed\t\n")
	for _, m := range now.metrics {
		b := base.get(m.name)
		bv := 0
		if b != nil {
			bv = b.value
		}
		allowed := fmt.Sprintf("+%d", m.slack)
		if m.info {
			allowed = "(info)"
		}
		status := ""
		if !m.info && m.value-bv > m.slack {
			status = "  LEAK"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%+d\t%s\t%s\n", m.name, bv, m.value, m.value-bv, allowed, status)
	}
	tw.Flush()
}

func listDir(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func firstN(xs []string, n int) string {
	if len(xs) == 0 {
		return ""
	}
	more := ""
	if len(xs) > n {
		more = fmt.Sprintf(" (+%d more)", len(xs)-n)
		xs = xs[:n]
	}
	return strings.Join(xs, "; ") + more
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
