package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

// TimelineReport (-timeline) splits each step of the client path, for each
// shim, into the time spent inside runsc (runc) calls and the rest
// (containerd, the shim, the ttrpc round trips). The runtime binary is a
// wrapper that runs the real one as its child and logs start and end, so
// it adds a bash start (~1-2 ms) to each call: the totals are not
// comparable with the untraced sections.
type TimelineReport struct {
	Runs  int             `json:"runs"`
	Kinds []TimelineKind  `json:"kinds"`
	Calls []TimelineCalls `json:"runsc_calls"`
}

// TimelineKind is one kind of lifecycle.
type TimelineKind struct {
	Name  string          `json:"name"`
	Steps []TimelineSteps `json:"steps"`
}

// TimelineSteps holds the medians of one step.
type TimelineSteps struct {
	Step    string  `json:"step"`
	Total   float64 `json:"total_p50_ms"`
	InRunsc float64 `json:"in_runsc_p50_ms"`
	Other   float64 `json:"other_p50_ms"`
	Calls   string  `json:"runsc_calls"`
}

// TimelineCalls is the median wall time of one runsc subcommand.
type TimelineCalls struct {
	Sub string  `json:"subcommand"`
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
}

type timedCall struct {
	start, end time.Time
	sub        string
}

// writeTimingWrapper writes <dir>/timing, a wrapper of real that logs each
// call's start, end and subcommand to <dir>/calls.log, and a runsc.toml
// using it as binary_name.
func writeTimingWrapper(dir, real string) (wrapper, toml, logPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", "", err
	}
	wrapper = filepath.Join(dir, "timing")
	logPath = filepath.Join(dir, "calls.log")
	script := fmt.Sprintf(`#!/bin/bash
s=$EPOCHREALTIME
sub=? skip=
for a in "$@"; do
  if [ -n "$skip" ]; then skip=; continue; fi
  case "$a" in
    --root|--log|--log-format|--criu) skip=1 ;;
    -*) ;;
    *) sub=$a; break ;;
  esac
done
%s "$@"
rc=$?
printf '%%s\t%%s\t%%s\t%%s\n' "$s" "$EPOCHREALTIME" "$sub" "$rc" >> %s
exit $rc
`, strconv.Quote(real), strconv.Quote(logPath))
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		return "", "", "", err
	}
	toml = filepath.Join(dir, "runsc.toml")
	body := fmt.Sprintf("binary_name = %s\nroot = %s\n\n[runsc_config]\n  network = \"none\"\n",
		strconv.Quote(wrapper), strconv.Quote(filepath.Join(dir, "runsc-root")))
	return wrapper, toml, logPath, os.WriteFile(toml, []byte(body), 0o644)
}

func readTimedCalls(path string) ([]timedCall, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []timedCall
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) < 3 {
			continue
		}
		s, err1 := strconv.ParseFloat(fs[0], 64)
		e, err2 := strconv.ParseFloat(fs[1], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, timedCall{start: time.Unix(0, int64(s*1e9)), end: time.Unix(0, int64(e*1e9)), sub: fs[2]})
	}
	return out, sc.Err()
}

// timingSetup is one runtime's timing wrapper, made before containerd
// starts so that CRI can have a handler using it.
type timingSetup struct {
	name, runtime string
	wrapper, toml string
	logPath       string
	opts          any    // client path options
	criHandler    string // CRI handler name using the wrapper
}

// CRI handlers that run runsc and runc through the timing wrappers.
const (
	handlerRunscTimed = "runsc-timed"
	handlerRuncTimed  = "runc-timed"
)

// newTimingSetups writes the wrappers of runsc (as the runsc shim runs it)
// and runc (as the runc shim runs it) below work.
func newTimingSetups(work string) ([]*timingSetup, error) {
	runcPath, err := exec.LookPath("runc")
	if err != nil {
		return nil, err
	}
	var out []*timingSetup
	for _, rt := range []struct {
		name, real, runtime, handler string
	}{{"runsc shim", harness.RunscBinary, runscRuntime, handlerRunscTimed}, {"runc shim", runcPath, runcRuntime, handlerRuncTimed}} {
		wrapper, toml, logPath, err := writeTimingWrapper(filepath.Join(work, "timeline-"+strings.Fields(rt.name)[0]), rt.real)
		if err != nil {
			return nil, err
		}
		var opts any = &runtimeoptions.Options{ConfigPath: toml}
		if rt.runtime == runcRuntime {
			opts = &runcoptions.Options{BinaryName: wrapper}
		}
		out = append(out, &timingSetup{name: rt.name, runtime: rt.runtime, wrapper: wrapper, toml: toml,
			logPath: logPath, opts: opts, criHandler: rt.handler})
	}
	return out, nil
}

// criTimedHandlers is the containerd config of the CRI handlers using the
// timing wrappers (p is the CRI plugin's table name).
func criTimedHandlers(p string, ts []*timingSetup) string {
	q := strconv.Quote
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "[%s.containerd.runtimes.%s]\n  runtime_type = %s\n", p, q(t.criHandler), q(t.runtime))
		if t.runtime == runcRuntime {
			fmt.Fprintf(&b, "[%s.containerd.runtimes.%s.options]\n  BinaryName = %s\n", p, q(t.criHandler), q(t.wrapper))
		} else {
			fmt.Fprintf(&b, "[%s.containerd.runtimes.%s.options]\n  TypeUrl = %s\n  ConfigPath = %s\n", p, q(t.criHandler), q(criRunscOptions), q(t.toml))
		}
	}
	return b.String()
}

// timeline runs runs lifecycles of `true`, execs and (with CRI) pod starts
// through each shim with the timing wrapper and splits every step.
func (e *env) timeline(ctx context.Context, runs int, cri *criEnv) (*TimelineReport, error) {
	r := &TimelineReport{Runs: runs}
	for _, t := range e.timing {
		if err := e.timelineOf(ctx, r, t, runs, cri); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// timelineOf adds the lifecycles of one shim to r.
func (e *env) timelineOf(ctx context.Context, r *TimelineReport, ts *timingSetup, runs int, cri *criEnv) error {
	shim, runtime, opts, logPath := ts.name, ts.runtime, ts.opts, ts.logPath
	type stepAcc struct {
		total, in []float64
		calls     map[string]int
	}
	callDur := map[string][]float64{}
	var subOrder []string
	collect := func(name string, one func(ph *phaseSamples) (time.Time, error)) error {
		steps := map[string]*stepAcc{}
		var order []string
		for i := 0; i < runs+1; i++ { // the first run warms up
			before, err := readTimedCalls(logPath)
			if err != nil {
				return err
			}
			var ph phaseSamples
			t0, err := one(&ph)
			if err != nil {
				return err
			}
			time.Sleep(300 * time.Millisecond)
			all, err := readTimedCalls(logPath)
			if err != nil {
				return err
			}
			calls := all[len(before):]
			if i == 0 {
				continue
			}
			t := t0
			stepOf := map[int]string{} // call index -> step it started in
			for _, n := range ph.order {
				d := time.Duration(ph.xs[n][0] * float64(time.Millisecond))
				start, end := t, t.Add(d)
				t = end
				acc := steps[n]
				if acc == nil {
					acc = &stepAcc{calls: map[string]int{}}
					steps[n] = acc
					order = append(order, n)
				}
				in := time.Duration(0)
				for ci, c := range calls {
					s, e := maxTime(c.start, start), minTime(c.end, end)
					if e.After(s) {
						in += e.Sub(s)
					}
					if !c.start.Before(start) && c.start.Before(end) {
						acc.calls[c.sub]++
						stepOf[ci] = n
					}
				}
				acc.total = append(acc.total, ms(d))
				acc.in = append(acc.in, ms(in))
			}
			for ci, c := range calls {
				step := stepOf[ci]
				if step == "" {
					step = "cleanup"
				}
				key := shim + ", " + name + ", " + step + ": " + c.sub
				if _, ok := callDur[key]; !ok {
					subOrder = append(subOrder, key)
				}
				callDur[key] = append(callDur[key], ms(c.end.Sub(c.start)))
			}
		}
		k := TimelineKind{Name: shim + ", " + name}
		for _, n := range order {
			acc := steps[n]
			other := make([]float64, len(acc.total))
			for i := range acc.total {
				other[i] = acc.total[i] - acc.in[i]
			}
			cm := map[string]int{}
			for s, c := range acc.calls {
				cm[s] = (c + runs - 1) / runs
			}
			k.Steps = append(k.Steps, TimelineSteps{
				Step: n, Total: round2(percentile(acc.total, 50)), InRunsc: round2(percentile(acc.in, 50)),
				Other: round2(percentile(other, 50)), Calls: countList(cm),
			})
		}
		r.Kinds = append(r.Kinds, k)
		return nil
	}
	if err := collect("run `true`", func(ph *phaseSamples) (time.Time, error) {
		t0 := time.Now()
		_, err := e.clientTrue(ctx, runtime, opts, ph)
		return t0, err
	}); err != nil {
		return err
	}
	sleeper, _, err := e.startSleeper(ctx, e.nextID("tl"), runtime, opts)
	if err != nil {
		return err
	}
	err = collect("exec `true`", func(ph *phaseSamples) (time.Time, error) {
		t0 := time.Now()
		_, err := e.clientExec(ctx, sleeper, ph)
		return t0, err
	})
	sleeper.stop(e)
	if err != nil {
		return err
	}
	if cri != nil && !cri.sandboxOnly {
		if err := collect("CRI pod start", func(ph *phaseSamples) (time.Time, error) {
			t0 := time.Now()
			_, err := cri.timedPod(ctx, ts.criHandler, ph)
			return t0, err
		}); err != nil {
			return err
		}
	}
	for _, s := range subOrder {
		r.Calls = append(r.Calls, TimelineCalls{Sub: s, N: len(callDur[s]), P50: round2(percentile(callDur[s], 50))})
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
