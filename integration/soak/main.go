// Command soak runs many container lifecycles through containerd-shim-runsc-v1
// on private containerd daemons (1.6 and 2.4 by default), one container at a
// time, and checks that every lifecycle gives the right result and that
// nothing accumulates: runsc, gofer, sandbox and shim processes, mounts,
// containerd's fds and threads, shim sockets, task bundles, runsc state and
// cgroups. It prints a leak table at the start, every 100 lifecycles and at
// the end, and exits 1 if a lifecycle failed or anything grew. Run as root:
//
//	go run ./integration/soak -shim bin/containerd-shim-runsc-v1 [-n 100] [-duration 30m] [-versions 1.6,2.4] [-runsc /usr/bin/runsc]
//
// The lifecycle shapes, in turn:
//
//	plain   run `sh -c 'echo out; echo err >&2; exit 3'` to its exit (same id every time)
//	exec    run detached, exec with stdin at EOF, with piped stdin (CloseIO) and with a
//	        tty, then SIGKILL and delete (same id every time)
//	tty     run a tty container to its exit (same id every time)
//	unique  run with piped stdin under an id unique to the iteration
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

type options struct {
	shim     string // absolute path of the shim binary
	runsc    string // "" : $RUNSC or Debian's runsc (harness.Runsc)
	n        int
	duration time.Duration
	versions []string
	every    int
	logLevel string
	verbose  bool
}

func parseFlags() (*options, error) {
	o := &options{}
	shim := flag.String("shim", "", "the built "+harness.ShimBinaryName+" (required); its directory goes first on the daemon's PATH")
	flag.StringVar(&o.runsc, "runsc", "", "runsc binary for the shim (binary_name in runsc.toml); default: $RUNSC or "+harness.RunscBinary)
	flag.IntVar(&o.n, "n", 100, "container lifecycles per containerd version")
	flag.DurationVar(&o.duration, "duration", 0, "stop each containerd version's loop after this long, if -n is not reached first (0: no limit)")
	versions := flag.String("versions", strings.Join(harness.Versions, ","), "containerd versions to soak, comma-separated")
	flag.IntVar(&o.every, "table-every", 100, "print the leak table every this many lifecycles")
	flag.StringVar(&o.logLevel, "log-level", "info", "containerd log level (the shims inherit it)")
	flag.DurationVar(&eofWait, "eof-wait", eofWait, "how long an exec whose stdin is at EOF may take to exit before CloseIO is called (and a failure counted)")
	flag.BoolVar(&o.verbose, "v", false, "log harness progress and every lifecycle")
	flag.Parse()
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if *shim == "" {
		return nil, errors.New("-shim is required: the path of the built " + harness.ShimBinaryName + " (run `make build`)")
	}
	abs, err := filepath.Abs(*shim)
	if err != nil {
		return nil, err
	}
	if filepath.Base(abs) != harness.ShimBinaryName {
		return nil, fmt.Errorf("-shim %s: containerd finds the shim by its file name, which must be %s", *shim, harness.ShimBinaryName)
	}
	if !isExecutable(abs) {
		return nil, fmt.Errorf("-shim %s: not an executable file (run `make build`)", *shim)
	}
	o.shim = abs
	if o.runsc != "" {
		if o.runsc, err = filepath.Abs(o.runsc); err != nil {
			return nil, err
		}
		if !isExecutable(o.runsc) {
			return nil, fmt.Errorf("-runsc %s: not an executable file", o.runsc)
		}
		// The harness writes binary_name = harness.Runsc() into runsc.toml.
		os.Setenv(harness.RunscEnv, o.runsc)
	}
	if o.n < 1 {
		return nil, fmt.Errorf("-n %d: want at least 1", o.n)
	}
	if o.duration < 0 {
		return nil, fmt.Errorf("-duration %s: must not be negative", o.duration)
	}
	if o.every < 1 {
		return nil, fmt.Errorf("-table-every %d: want at least 1", o.every)
	}
	for _, v := range strings.Split(*versions, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if _, _, err := harness.DaemonBinaries(v); err != nil {
			return nil, fmt.Errorf("-versions: %w", err)
		}
		o.versions = append(o.versions, v)
	}
	if len(o.versions) == 0 {
		return nil, errors.New("-versions: no containerd version given")
	}
	return o, nil
}

func main() {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	ok, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// run soaks every version and reports whether all of them passed.
func run(o *options) (bool, error) {
	if os.Geteuid() != 0 {
		return false, errors.New("must run as root (containerd and runsc need it)")
	}
	for _, b := range []string{harness.BusyboxBinary} {
		if !isExecutable(b) {
			return false, fmt.Errorf("%s is missing (run `make deps`)", b)
		}
	}
	if !isExecutable(harness.Runsc()) {
		return false, fmt.Errorf("%s is missing (run `make deps`, or pass -runsc)", harness.Runsc())
	}
	for _, v := range o.versions {
		bin, _, _ := harness.DaemonBinaries(v)
		if !isExecutable(bin) {
			return false, fmt.Errorf("containerd %s: %s is missing (run `make deps containerd24`)", v, bin)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	var results []*result
	for _, v := range o.versions {
		if ctx.Err() != nil {
			break
		}
		results = append(results, soakVersion(ctx, o, v))
	}

	fmt.Printf("\n== soak summary (%s) ==\n", time.Since(start).Round(time.Second))
	allOK := true
	for _, r := range results {
		verdict := "PASS"
		if !r.ok() {
			verdict = "FAIL"
			allOK = false
		}
		fmt.Printf("containerd %s: %s  %d lifecycles in %s (%.2f/s), %d failed, %d leak(s)\n",
			r.version, verdict, r.done, r.elapsed.Round(time.Second), rate(r.done, r.elapsed), r.failed, len(r.leaks))
		if len(r.byShape) > 0 {
			var parts []string
			for _, sh := range shapes {
				if n := r.byShape[sh.name]; n > 0 {
					parts = append(parts, fmt.Sprintf("%s %d", sh.name, n))
				}
			}
			fmt.Printf("  failed lifecycles by shape: %s\n", strings.Join(parts, ", "))
		}
		for _, l := range r.leaks {
			fmt.Printf("  leak: %s\n", l)
		}
		for _, f := range r.failures {
			fmt.Printf("  failure: %s\n", f)
		}
		if r.failed > len(r.failures) {
			fmt.Printf("  (%d more failures not shown)\n", r.failed-len(r.failures))
		}
	}
	if ctx.Err() != nil {
		fmt.Println("interrupted")
		return false, nil
	}
	if allOK {
		fmt.Println("verdict: PASS")
	} else {
		fmt.Println("verdict: FAIL")
	}
	return allOK, nil
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// runPrefix is the id prefix of everything this process creates: container
// ids, and so the names of runsc state, cgroups and mounts.
func runPrefix(version string) string {
	return fmt.Sprintf("soak%s-%s%d", strings.ReplaceAll(version, ".", ""),
		strconv.FormatInt(time.Now().Unix()%100000, 36), os.Getpid())
}
