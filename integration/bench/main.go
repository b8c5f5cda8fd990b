// Command bench measures containerd-shim-runsc-v1 against its floor (raw
// runsc) and against containerd's runc shim and its floor (raw runc), on
// private containerd daemons (1.6 and/or 2.4):
//
//  1. start-to-exit of `true` through the containerd client, per shim, and
//     `runsc run` / `runc run` of the same bundle;
//  2. CRI pod start (RunPodSandbox + CreateContainer + StartContainer until
//     running), handler runsc vs runc;
//  3. exec of `true` in a running container, shim vs raw `runsc exec`;
//  4. density: N pods (or containers) started at once, time until all run,
//     RSS and PSS of the shims and the runsc sandboxes;
//  5. the runsc processes the shim spawns per lifecycle, by subcommand.
//
// Variants are run interleaved (round i starts at variant i mod n) after
// warm-up rounds, and summarized by median and p95: the machine is shared
// and noisy. It prints markdown tables and PASS/FAIL lines for the targets
// and writes the same as JSON (-out). Run as root:
//
//	go run ./integration/bench [-containerd both|1.6|2.4] [-runs 20] [-warmup 5] [-out bench.json]
//
// Everything it creates (daemons, containers, raw runsc/runc containers,
// mounts, temp dirs) is removed before it exits, also on errors and ^C.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	"golang.org/x/sys/unix"
)

const (
	runscRuntime = harness.RuntimeName
	runcRuntime  = "io.containerd.runc.v2"
	benchNS      = "bench"
)

// opTimeout bounds one measured operation.
const opTimeout = 90 * time.Second

var allSections = []string{"lifecycle", "cri", "exec", "density", "argv", "runscs", "checkpoint"}

type options struct {
	versions    []string
	warmup      int
	runs        int
	criRuns     int
	argvRuns    int
	densityN    int
	densityMode string
	out         string
	shim        string
	sections    map[string]bool
	readme      string
	from        string
	rawSpec     string
	logLevel    string
	settle      time.Duration
	verbose     bool
	keepSamples bool
	timeline    int
	daemonEnv   []string
	// runscCurrent is current gVisor's runsc, measured beside Debian's.
	runscCurrent string
}

func parseFlags() (*options, error) {
	o := &options{}
	version := flag.String("containerd", "both", "containerd to run against: both, 1.6 or 2.4")
	flag.IntVar(&o.warmup, "warmup", 5, "warm-up rounds per section (not recorded)")
	flag.IntVar(&o.runs, "runs", 20, "measured rounds per variant (lifecycle, exec)")
	flag.IntVar(&o.criRuns, "cri-runs", 0, "measured rounds per CRI handler (0: same as -runs)")
	flag.IntVar(&o.argvRuns, "argv-runs", 3, "lifecycles per kind for the runsc call count")
	flag.IntVar(&o.densityN, "density", 30, "pods (or containers) started at once in the density section")
	flag.StringVar(&o.densityMode, "density-mode", "auto", "density with CRI pods (cri), client containers (client), or cri when CRI works (auto)")
	flag.StringVar(&o.out, "out", "bench.json", "JSON output file (empty: none)")
	flag.StringVar(&o.shim, "shim", "", "prebuilt containerd-shim-runsc-v1 to measure (default: go build ./cmd/containerd-shim-runsc-v1)")
	sections := flag.String("sections", strings.Join(allSections, ","), "sections to run, comma-separated: "+strings.Join(allSections, ","))
	flag.StringVar(&o.rawSpec, "raw-spec", "containerd", "config.json of the raw runs: containerd (the spec containerd generates for the client path) or cli (runc spec, adjusted)")
	flag.StringVar(&o.logLevel, "log-level", "info", "containerd log level (the shims inherit it)")
	flag.DurationVar(&o.settle, "settle", 60*time.Second, "density: how long the started pods sit idle (runsc calls counted, the shims' CPU for containerd's stats polling measured: issue 13 measures it over 60 s) before their memory is read")
	flag.BoolVar(&o.verbose, "v", false, "log progress to stderr")
	flag.BoolVar(&o.keepSamples, "samples", true, "include every sample in the JSON")
	flag.IntVar(&o.timeline, "timeline", 0, "diagnostics: after the sections, run N lifecycles and execs with a runsc wrapper that times each runsc call, and split every client step into time in runsc and the rest")
	flag.StringVar(&o.runscCurrent, "runsc-current", os.Getenv("RUNSC_CURRENT"), "current gVisor's runsc, measured beside Debian's in the runscs section (`make bench` builds it)")
	flag.StringVar(&o.from, "from", "", "measure nothing: print the report of this bench.json (and, with -readme, write its figures)")
	flag.StringVar(&o.readme, "readme", "", "after a full run (every section, both containerd versions, no failed section), replace the figures between the bench markers of this file (`make bench` passes README.md)")
	daemonEnv := flag.String("daemon-env", "", "comma-separated KEY=VALUE added to containerd's environment, which the shims (and runsc) inherit: e.g. GOGC=50 to see its effect on the shims' memory")
	flag.Parse()
	for _, kv := range strings.Split(*daemonEnv, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			if !strings.Contains(kv, "=") {
				return nil, fmt.Errorf("-daemon-env %q: want KEY=VALUE", kv)
			}
			o.daemonEnv = append(o.daemonEnv, kv)
		}
	}
	switch *version {
	case "both":
		o.versions = []string{"1.6", "2.4"}
	case "1.6", "2.4":
		o.versions = []string{*version}
	default:
		return nil, fmt.Errorf("-containerd %q: want both, 1.6 or 2.4", *version)
	}
	o.sections = map[string]bool{}
	for _, s := range strings.Split(*sections, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !contains(allSections, s) {
			return nil, fmt.Errorf("-sections: unknown section %q (have %s)", s, strings.Join(allSections, ","))
		}
		o.sections[s] = true
	}
	if o.criRuns == 0 {
		o.criRuns = o.runs
	}
	if o.runs < 1 || o.warmup < 0 || o.argvRuns < 1 || o.densityN < 1 {
		return nil, errors.New("-runs, -argv-runs and -density must be >= 1, -warmup >= 0")
	}
	switch o.densityMode {
	case "auto", "cri", "client":
	default:
		return nil, fmt.Errorf("-density-mode %q: want auto, cri or client", o.densityMode)
	}
	return o, nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// Report is the whole JSON output.
type Report struct {
	Meta    Meta            `json:"meta"`
	Daemons []*DaemonReport `json:"daemons"`
}

// Meta describes the run.
type Meta struct {
	Started   time.Time         `json:"started"`
	Seconds   float64           `json:"seconds"`
	Host      map[string]string `json:"host"`
	Flags     map[string]string `json:"flags"`
	ShimBuild string            `json:"shim_binary"`
}

// DaemonReport is everything measured against one containerd.
type DaemonReport struct {
	Version    string            `json:"containerd"`
	Binary     string            `json:"binary"`
	Full       string            `json:"containerd_version"`
	Lifecycle  *LifecycleReport  `json:"lifecycle,omitempty"`
	CRI        *CRIReport        `json:"cri,omitempty"`
	CRISkipped string            `json:"cri_skipped,omitempty"`
	Exec       *ExecReport       `json:"exec,omitempty"`
	Density    []*DensityReport  `json:"density,omitempty"`
	Argv       *ArgvReport       `json:"runsc_calls,omitempty"`
	Runscs     *RunscsReport     `json:"runscs,omitempty"`
	Checkpoint *CheckpointReport `json:"checkpoint,omitempty"`
	Timeline   *TimelineReport   `json:"timeline,omitempty"`
	Targets    []Target          `json:"targets"`
	Errors     []string          `json:"errors,omitempty"`
	Notes      []string          `json:"notes,omitempty"`
}

// Target is one PASS/FAIL line.
type Target struct {
	Name   string `json:"name"`
	Result string `json:"result"` // PASS, FAIL or SKIP
	Detail string `json:"detail"`
}

// env is one daemon's benchmark environment.
type env struct {
	o         *options
	d         *harness.Daemon
	img       client.Image
	work      string
	runscCfg  harness.RunscConfig
	runscOpts *runtimeoptions.Options
	raw       *rawEnv
	timing    []*timingSetup // -timeline
	// currentRoot is the runsc root of CRI handler runsc-current.
	currentRoot string
	seq         atomic.Int64
	logf        func(format string, args ...any)
}

func (e *env) nextID(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, e.seq.Add(1))
}

func main() {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o *options) (retErr error) {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (containerd, runsc and runc need it)")
	}
	for _, b := range []string{harness.RunscBinary, harness.BusyboxBinary} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s is missing (run `make deps`)", b)
		}
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return errors.New("runc is not on PATH (run `make deps`)")
	}
	logf := func(string, ...any) {}
	if o.verbose {
		logf = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if o.from != "" {
		return fromFile(o)
	}
	rep := &Report{Meta: Meta{Started: time.Now(), Host: hostInfo(), Flags: map[string]string{}}}
	flag.VisitAll(func(f *flag.Flag) { rep.Meta.Flags[f.Name] = f.Value.String() })

	shimDir, cleanupShim, err := shimBinary(o, logf)
	if err != nil {
		return err
	}
	defer cleanupShim()
	rep.Meta.ShimBuild = filepath.Join(shimDir, harness.ShimBinaryName)

	for _, v := range o.versions {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "bench: containerd %s ...\n", v)
		dr := benchDaemon(ctx, o, v, shimDir, logf)
		rep.Daemons = append(rep.Daemons, dr)
	}
	rep.Meta.Seconds = round2(time.Since(rep.Meta.Started).Seconds())
	if !o.keepSamples {
		stripSamples(rep)
	}

	printMarkdown(os.Stdout, rep)
	if o.out != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.out, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: wrote %s\n", o.out)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if o.readme != "" {
		if err := writeReadme(o.readme, rep, o.sections); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		} else {
			fmt.Fprintf(os.Stderr, "bench: updated the figures in %s\n", o.readme)
		}
	}
	for _, d := range rep.Daemons {
		if len(d.Errors) > 0 {
			return fmt.Errorf("containerd %s: %d section(s) failed (see above)", d.Version, len(d.Errors))
		}
	}
	return nil
}

// shimBinary returns the directory holding the shim to measure: -shim's, or
// a temp dir with a fresh build.
func shimBinary(o *options, logf func(string, ...any)) (string, func(), error) {
	if o.shim != "" {
		abs, err := filepath.Abs(o.shim)
		if err != nil {
			return "", nil, err
		}
		if filepath.Base(abs) != harness.ShimBinaryName {
			return "", nil, fmt.Errorf("-shim %s: containerd finds the shim by its name, which must be %s", o.shim, harness.ShimBinaryName)
		}
		if st, err := os.Stat(abs); err != nil || st.Mode()&0o111 == 0 {
			return "", nil, fmt.Errorf("-shim %s: not an executable file (%v); run `make build` first", o.shim, err)
		}
		return filepath.Dir(abs), func() {}, nil
	}
	dir, err := os.MkdirTemp("", "bench-shim")
	if err != nil {
		return "", nil, err
	}
	if _, err := harness.BuildShim(dir, harness.Logf(logf)); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// benchDaemon runs the selected sections against one containerd version.
// Failures are recorded in the report; the daemon and everything else are
// removed before it returns.
func benchDaemon(ctx context.Context, o *options, version, shimDir string, logf func(string, ...any)) *DaemonReport {
	dr := &DaemonReport{Version: version}
	fail := func(section string, err error) {
		msg := fmt.Sprintf("%s: %v", section, err)
		dr.Errors = append(dr.Errors, msg)
		fmt.Fprintf(os.Stderr, "bench: containerd %s: %s\n", version, msg)
	}
	bin, _, err := harness.DaemonBinaries(version)
	if err != nil {
		fail("setup", err)
		return dr
	}
	dr.Binary = bin
	if out, err := exec.Command(bin, "--version").Output(); err == nil {
		dr.Full = strings.TrimSpace(string(out))
	}

	// Short path: shim and runsc sockets live below it.
	work, err := os.MkdirTemp("/tmp", "bench")
	if err != nil {
		fail("setup", err)
		return dr
	}
	defer func() {
		if err := sweep(work, logf); err != nil {
			fail("cleanup", err)
		}
	}()
	e := &env{o: o, work: work, logf: logf}
	e.runscCfg, err = harness.WriteRunscConfig(filepath.Join(work, "runsc"), nil)
	if err != nil {
		fail("setup", err)
		return dr
	}
	e.runscOpts = &runtimeoptions.Options{ConfigPath: e.runscCfg.Path}
	argv, err := newArgvSetup(filepath.Join(work, "argv"))
	if err != nil {
		fail("setup", err)
		return dr
	}
	cniDir := filepath.Join(work, "cni")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		fail("setup", err)
		return dr
	}

	if o.timeline > 0 {
		if e.timing, err = newTimingSetups(work); err != nil {
			fail("setup", err)
			return dr
		}
	}
	wantCRI := o.sections["cri"] || o.timeline > 0 || (o.sections["density"] && o.densityMode != "client") || o.sections["argv"]
	dopts := harness.DaemonOptions{
		Version:   version,
		ShimDirs:  []string{shimDir},
		Namespace: benchNS,
		LogLevel:  o.logLevel,
		Env:       o.daemonEnv,
		Logf:      harness.Logf(logf),
	}
	if wantCRI {
		dopts.EnableCRI = true
		currentToml := ""
		if o.runscCurrent != "" {
			cur, err := harness.WriteRunscConfigFor(filepath.Join(work, "runsc-current"), o.runscCurrent, nil)
			if err != nil {
				fail("setup", err)
				return dr
			}
			currentToml, e.currentRoot = cur.Path, cur.Root
		}
		dopts.ExtraConfig = criConfig(version, e.runscCfg.Path, argv.toml, currentToml, cniDir, e.timing)
	}
	d, err := harness.StartDaemon(ctx, dopts)
	if err != nil && wantCRI {
		dr.CRISkipped = fmt.Sprintf("containerd did not start with CRI enabled: %v", firstLine(err))
		fmt.Fprintf(os.Stderr, "bench: containerd %s: %s; going on without CRI\n", version, dr.CRISkipped)
		dopts.EnableCRI, dopts.ExtraConfig = false, ""
		d, err = harness.StartDaemon(ctx, dopts)
	}
	if err != nil {
		fail("start containerd", err)
		return dr
	}
	e.d = d
	var cri *criEnv
	defer func() {
		if err := d.Stop(); err != nil {
			if cri != nil && cri.Degraded != "" {
				// The probe pod's stuck container is the shim bug that
				// Degraded reports; what Stop had to clean is a consequence.
				dr.Notes = append(dr.Notes, fmt.Sprintf("after the failed CRI probe, stopping containerd: %v", err))
				return
			}
			fail("stop containerd", err)
		}
	}()
	defer func() {
		if len(dr.Errors) > 0 {
			fmt.Fprintf(os.Stderr, "containerd %s log tail (%s):\n%s\n", version, d.LogPath, d.LogTail(30))
		}
	}()

	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	e.img, err = harness.ImportBusybox(d.Context(sctx), d.Client, harness.Logf(logf))
	cancel()
	if err != nil {
		fail("import busybox", err)
		return dr
	}
	e.raw, err = newRawEnv(d.Context(ctx), d, e.img, filepath.Join(work, "raw"), o.rawSpec)
	if err != nil {
		fail("raw rootfs", err)
		return dr
	}
	defer func() {
		if err := e.raw.close(d.Context(context.Background())); err != nil {
			fail("raw cleanup", err)
		}
	}()

	if dopts.EnableCRI {
		cri, err = newCRI(ctx, e)
		if err != nil {
			dr.CRISkipped = fmt.Sprintf("CRI not usable: %v", err)
			fmt.Fprintf(os.Stderr, "bench: containerd %s: %s\n", version, dr.CRISkipped)
			cri = nil
		} else {
			defer cri.close()
			if o.runscCurrent != "" {
				out, err := exec.Command(o.runscCurrent, "--version").Output()
				if err != nil {
					fail("runsc-current", fmt.Errorf("%s --version: %w", o.runscCurrent, err))
					return dr
				}
				first, _, _ := strings.Cut(string(out), "\n")
				cri.current = strings.TrimPrefix(strings.TrimSpace(first), "runsc version ")
			}
			if cri.Degraded != "" {
				fmt.Fprintf(os.Stderr, "bench: containerd %s: %s\n", version, cri.Degraded)
			}
		}
	} else if dr.CRISkipped == "" && o.sections["cri"] {
		dr.CRISkipped = "CRI not enabled"
	}

	section := func(name string, fn func() error) {
		if !o.sections[name] || ctx.Err() != nil {
			return
		}
		fmt.Fprintf(os.Stderr, "bench: containerd %s: %s\n", version, name)
		t := time.Now()
		if err := fn(); err != nil {
			fail(name, err)
		}
		logf("section %s took %s", name, time.Since(t).Round(time.Millisecond))
	}
	section("lifecycle", func() (err error) {
		dr.Lifecycle, err = e.lifecycle(ctx)
		return err
	})
	section("cri", func() (err error) {
		if cri == nil {
			return nil
		}
		dr.CRI, err = cri.bench(ctx)
		return err
	})
	section("exec", func() (err error) {
		dr.Exec, err = e.execBench(ctx)
		return err
	})
	section("density", func() error {
		mode := o.densityMode
		if mode == "auto" {
			mode = "client"
			if cri != nil && !cri.sandboxOnly {
				mode = "cri"
			}
		}
		if mode == "cri" && (cri == nil || cri.sandboxOnly) {
			why := dr.CRISkipped
			if cri != nil {
				why = cri.Degraded
			}
			return fmt.Errorf("-density-mode cri but CRI pods do not work: %s", why)
		}
		// The runsc pods go through the argv wrapper (it execs runsc: same
		// processes) so that the runsc calls can be counted too.
		runtimes := []struct{ handler, runtime, shim string }{
			{handlerArgv, runscRuntime, "shim runsc"},
			{handlerRunc, runcRuntime, "shim runc"},
		}
		if mode == "cri" && cri.current != "" {
			// The same shim with current gVisor's runsc (its runsc calls
			// are not counted: no argv wrapper).
			runtimes = append(runtimes, struct{ handler, runtime, shim string }{handlerCurrent, currentRuntime(cri.current), "shim runsc"})
		}
		for _, rt := range runtimes {
			var start starter
			var a *argvSetup
			root := ""
			switch rt.handler {
			case handlerArgv:
				a, root = argv, argv.root
			case handlerCurrent:
				root = e.currentRoot
			}
			if mode == "cri" {
				start = cri.starter(rt.handler)
			} else {
				var opts any
				if rt.runtime == runscRuntime {
					opts = &runtimeoptions.Options{ConfigPath: argv.toml}
				}
				start = e.clientStarter(rt.runtime, opts)
			}
			r, err := e.density(ctx, mode, rt.runtime, rt.shim, o.densityN, start, root, a)
			if err != nil {
				return err
			}
			dr.Density = append(dr.Density, r)
		}
		return nil
	})
	section("argv", func() (err error) {
		dr.Argv, err = e.argvBench(ctx, argv, cri)
		return err
	})
	section("checkpoint", func() (err error) {
		dr.Checkpoint, err = e.checkpointBench(ctx)
		return err
	})
	section("runscs", func() (err error) {
		dr.Runscs, err = e.runscsBench(ctx)
		return err
	})
	if o.timeline > 0 && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "bench: containerd %s: timeline\n", version)
		if dr.Timeline, err = e.timeline(ctx, o.timeline, cri); err != nil {
			fail("timeline", err)
		}
	}
	dr.Targets = targets(dr)
	return dr
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// sweep kills processes still mentioning dir, unmounts what is mounted
// below it and removes it: the last line of defence after the orderly
// cleanups (which report what they could not do).
func sweep(dir string, logf func(string, ...any)) error {
	var errs []error
	self := os.Getpid()
	killed := 0
	for _, p := range listProcs() {
		if p.pid != self && strings.Contains(p.cmdline(), dir) {
			if unix.Kill(p.pid, unix.SIGKILL) == nil {
				killed++
				errs = append(errs, fmt.Errorf("killed leftover process %d: %.160s", p.pid, p.cmdline()))
			}
		}
	}
	if killed > 0 {
		time.Sleep(500 * time.Millisecond)
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		logf("unmounting leftover %s", p)
		if err := mount.UnmountAll(p, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func hostInfo() map[string]string {
	h := map[string]string{"cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version()}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		h["kernel"] = unix.ByteSliceToString(uts.Release[:])
	}
	for name, argv := range map[string][]string{
		"runsc": {harness.RunscBinary, "--version"},
		"runc":  {"runc", "--version"},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).Output(); err == nil {
			h[name] = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		h["loadavg_at_start"] = strings.TrimSpace(string(b))
	}
	return h
}

func stripSamples(r *Report) {
	for _, d := range r.Daemons {
		if d.Lifecycle != nil {
			for i := range d.Lifecycle.Variants {
				d.Lifecycle.Variants[i].Raw = nil
			}
		}
		if d.Exec != nil {
			for i := range d.Exec.Variants {
				d.Exec.Variants[i].Raw = nil
			}
		}
		if d.CRI != nil {
			for i := range d.CRI.Variants {
				d.CRI.Variants[i].Raw = nil
			}
		}
		if d.Runscs != nil {
			for _, ss := range [][]Summary{d.Runscs.Lifecycle, d.Runscs.Raw, d.Runscs.Exec} {
				for i := range ss {
					ss[i].Raw = nil
				}
			}
		}
	}
}

// fromFile prints the report of an earlier run (-from) and, with -readme,
// writes its figures into the README.
func fromFile(o *options) error {
	b, err := os.ReadFile(o.from)
	if err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("-from %s: %w", o.from, err)
	}
	printMarkdown(os.Stdout, &rep)
	if o.readme == "" {
		return nil
	}
	sections := map[string]bool{}
	for _, s := range strings.Split(rep.Meta.Flags["sections"], ",") {
		sections[s] = true
	}
	return writeReadme(o.readme, &rep, sections)
}
