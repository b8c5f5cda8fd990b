package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

// argvSetup is a runsc.toml whose binary_name is a wrapper script that
// appends "<epoch seconds.micros> <subcommand> <argv...>" to a log and
// execs the real runsc, so every runsc process the shim spawns is counted.
type argvSetup struct {
	dir, wrapper, log, toml, root string
}

func newArgvSetup(dir string) (*argvSetup, error) {
	a := &argvSetup{
		dir:     dir,
		wrapper: filepath.Join(dir, "runsc-wrapper"),
		log:     filepath.Join(dir, "argv.log"),
		toml:    filepath.Join(dir, "runsc.toml"),
		root:    filepath.Join(dir, "runsc-root"),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// $EPOCHREALTIME is a bash builtin: no fork on the measured path. The
	// subcommand is the first argument that is not a flag (the shim passes
	// global flags as --name=value).
	script := fmt.Sprintf(`#!/bin/bash
sub=? skip=
for a in "$@"; do
  if [ -n "$skip" ]; then skip=; continue; fi
  case "$a" in
    --root|--log|--log-format|--criu) skip=1 ;;
    -*) ;;
    *) sub=$a; break ;;
  esac
done
printf '%%s\t%%s\t%%s\n' "$EPOCHREALTIME" "$sub" "$*" >> %s
exec %s "$@"
`, strconv.Quote(a.log), strconv.Quote(harness.RunscBinary))
	if err := os.WriteFile(a.wrapper, []byte(script), 0o755); err != nil {
		return nil, err
	}
	toml := fmt.Sprintf("binary_name = %s\nroot = %s\n\n[runsc_config]\n  network = \"none\"\n",
		strconv.Quote(a.wrapper), strconv.Quote(a.root))
	return a, os.WriteFile(a.toml, []byte(toml), 0o644)
}

type argvCall struct {
	at   time.Time
	sub  string
	argv string
	line string // as logged
}

// calls reads the log, from byte offset off on, and returns the new offset.
func (a *argvSetup) calls(off int64) ([]argvCall, int64, error) {
	f, err := os.Open(a.log)
	if os.IsNotExist(err) {
		return nil, off, nil
	}
	if err != nil {
		return nil, off, err
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return nil, off, err
	}
	var out []argvCall
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	n := off
	for sc.Scan() {
		line := sc.Text()
		n += int64(len(line)) + 1
		f := strings.SplitN(line, "\t", 3)
		if len(f) < 2 {
			continue
		}
		sec, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		c := argvCall{at: time.Unix(0, int64(sec*1e9)), sub: f[1], line: line}
		if len(f) == 3 {
			c.argv = f[2]
		}
		out = append(out, c)
	}
	return out, n, sc.Err()
}

// mark is the start of a named phase of a lifecycle.
type mark struct {
	name string
	at   time.Time
}

// ArgvPhase counts the runsc calls that started during one phase.
type ArgvPhase struct {
	Phase string         `json:"phase"`
	Calls map[string]int `json:"calls"` // subcommand -> count per lifecycle
}

// ArgvLifecycle is the runsc calls of one kind of lifecycle, by phase.
type ArgvLifecycle struct {
	Name   string         `json:"name"`
	Runs   int            `json:"runs"`
	Phases []ArgvPhase    `json:"phases"`
	Total  map[string]int `json:"total"`
	// CreateToRunning lists the calls, beyond create and start, made
	// between the create request and the container running.
	CreateToRunning []string `json:"extra_calls_create_to_running"`
	// Waiters are the `runsc wait` calls (at most one per container) made
	// in that window: the waiter the target allows.
	Waiters []string `json:"waiters_create_to_running,omitempty"`
	// Concurrent are calls in that window that serve other requests
	// (containerd's Stats polling), not the start path.
	Concurrent []string `json:"concurrent_calls_create_to_running,omitempty"`
	Consistent bool     `json:"same_calls_every_run"`
	// Example is the argv of every call of the last run, in order.
	Example []string `json:"example_argv"`
}

// ArgvReport is section 5.
type ArgvReport struct {
	Lifecycles []ArgvLifecycle `json:"lifecycles"`
}

// assign groups calls by the phase they started in; calls before the first
// mark or after end are dropped.
func assign(calls []argvCall, marks []mark, end time.Time) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, c := range calls {
		if c.at.After(end) {
			continue
		}
		phase := ""
		for _, m := range marks {
			if !c.at.Before(m.at) {
				phase = m.name
			}
		}
		if phase == "" {
			continue
		}
		if out[phase] == nil {
			out[phase] = map[string]int{}
		}
		out[phase][c.sub]++
	}
	return out
}

// argvRun is one lifecycle: it returns the marks (phase starts) and the end.
type argvRun func(ctx context.Context) ([]mark, time.Time, error)

// measureArgv runs fn runs times and counts the wrapper's log by phase;
// createPhases are the phases of the create-to-running path.
func (e *env) measureArgv(ctx context.Context, a *argvSetup, name string, runs int, createPhases []string, fn argvRun) (ArgvLifecycle, error) {
	l := ArgvLifecycle{Name: name, Runs: runs, Total: map[string]int{}, Consistent: true}
	var off int64
	if st, err := os.Stat(a.log); err == nil {
		off = st.Size()
	}
	perPhase := map[string]map[string]int{}
	totals := map[string]int{}
	var phaseOrder []string
	var first string
	for i := range runs {
		marks, end, err := fn(ctx)
		if err != nil {
			return l, err
		}
		// Let calls that the shim makes after replying (asynchronously)
		// reach the log before reading it.
		time.Sleep(300 * time.Millisecond)
		calls, n, err := a.calls(off)
		if err != nil {
			return l, err
		}
		off = n
		got := assign(calls, marks, end.Add(200*time.Millisecond))
		sig := fmt.Sprint(got)
		if i == 0 {
			first = sig
		} else if sig != first {
			l.Consistent = false
		}
		for _, m := range marks {
			if _, ok := perPhase[m.name]; !ok {
				perPhase[m.name] = map[string]int{}
				phaseOrder = append(phaseOrder, m.name)
			}
			for sub, k := range got[m.name] {
				perPhase[m.name][sub] += k
				totals[sub] += k
			}
		}
		if i == runs-1 {
			l.Example = nil
			for _, c := range calls {
				l.Example = append(l.Example, c.argv)
			}
		}
	}
	extra := map[string]bool{}
	for _, ph := range phaseOrder {
		calls := map[string]int{}
		for sub, k := range perPhase[ph] {
			// Per lifecycle, rounded up: a call made in some runs only
			// still shows.
			calls[sub] = (k + runs - 1) / runs
			for _, cp := range createPhases {
				switch {
				case cp != ph || sub == "create" || sub == "start":
				case sub == "wait" && calls[sub] <= 1:
					// The one waiter per container the target allows: a
					// container joining a pod's sandbox gets its exit
					// status from `runsc wait`.
					l.Waiters = append(l.Waiters, fmt.Sprintf("%s in %s", sub, ph))
				case sub == "events":
					// Not the start path: containerd 2.x polls Stats about
					// once a second per pod and a poll can land here.
					l.Concurrent = append(l.Concurrent, fmt.Sprintf("%s in %s", sub, ph))
				default:
					extra[fmt.Sprintf("%s in %s", sub, ph)] = true
				}
			}
		}
		l.Phases = append(l.Phases, ArgvPhase{Phase: ph, Calls: calls})
	}
	for sub, k := range totals {
		l.Total[sub] = (k + runs - 1) / runs
	}
	for k := range extra {
		l.CreateToRunning = append(l.CreateToRunning, k)
	}
	sort.Strings(l.CreateToRunning)
	return l, nil
}

// argvBench counts runsc calls for a client lifecycle of `true`, an exec,
// and (with CRI) a pod's lifecycle.
func (e *env) argvBench(ctx context.Context, a *argvSetup, cri *criEnv) (*ArgvReport, error) {
	opts := &runtimeoptions.Options{ConfigPath: a.toml}
	r := &ArgvReport{}
	lc, err := e.measureArgv(ctx, a, "client: run `true` (NewContainer..Delete)", e.o.argvRuns,
		[]string{"NewTask", "Start"},
		func(ctx context.Context) ([]mark, time.Time, error) {
			var marks []mark
			var ph phaseSamples
			at := time.Now()
			marks = append(marks, mark{"NewContainer", at})
			// Re-derive phase starts from the recorded durations.
			_, err := e.clientTrue(ctx, runscRuntime, opts, &ph)
			if err != nil {
				return nil, time.Time{}, err
			}
			t := at
			for i, n := range ph.order {
				t = t.Add(time.Duration(ph.xs[n][0] * float64(time.Millisecond)))
				if i+1 < len(ph.order) {
					marks = append(marks, mark{ph.order[i+1], t})
				}
			}
			return marks, t, nil
		})
	if err != nil {
		return nil, err
	}
	r.Lifecycles = append(r.Lifecycles, lc)

	sleeper, _, err := e.startSleeper(ctx, e.nextID("argvx"), runscRuntime, opts)
	if err != nil {
		return nil, err
	}
	ex, err := e.measureArgv(ctx, a, "client: exec `true` in a running container", e.o.argvRuns,
		[]string{"Exec", "Start"},
		func(ctx context.Context) ([]mark, time.Time, error) {
			var ph phaseSamples
			at := time.Now()
			marks := []mark{{"Exec", at}}
			if _, err := e.clientExec(ctx, sleeper, &ph); err != nil {
				return nil, time.Time{}, err
			}
			t := at
			for i, n := range ph.order {
				t = t.Add(time.Duration(ph.xs[n][0] * float64(time.Millisecond)))
				if i+1 < len(ph.order) {
					marks = append(marks, mark{ph.order[i+1], t})
				}
			}
			return marks, t, nil
		})
	sleeper.stop(e)
	if err != nil {
		return nil, err
	}
	r.Lifecycles = append(r.Lifecycles, ex)

	if cri != nil {
		name := "CRI: pod + 1 container (RunPodSandbox..RemovePodSandbox)"
		if cri.sandboxOnly {
			name = "CRI: pod sandbox only (RunPodSandbox, Stop+RemovePodSandbox)"
		}
		pl, err := e.measureArgv(ctx, a, name, e.o.argvRuns,
			[]string{"RunPodSandbox", "CreateContainer", "StartContainer"},
			func(ctx context.Context) ([]mark, time.Time, error) {
				ctx, cancel := context.WithTimeout(ctx, opTimeout)
				defer cancel()
				marks := []mark{{"RunPodSandbox", time.Now()}}
				names := map[string]string{"RunPodSandbox": "CreateContainer", "CreateContainer": "StartContainer", "StartContainer": "running"}
				if cri.sandboxOnly {
					names = nil
				}
				p, err := cri.startPod(ctx, handlerArgv, func(done string) {
					if next, ok := names[done]; ok {
						marks = append(marks, mark{next, time.Now()})
					}
				})
				if p != nil {
					// A moment of running, then the teardown.
					time.Sleep(200 * time.Millisecond)
					marks = append(marks, mark{"Stop+RemovePodSandbox", time.Now()})
					if rerr := cri.removePod(p); rerr != nil && err == nil {
						err = rerr
					}
				}
				return marks, time.Now(), err
			})
		if err != nil {
			return nil, err
		}
		r.Lifecycles = append(r.Lifecycles, pl)
	}
	return r, nil
}
