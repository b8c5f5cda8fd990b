package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	shimpkg "github.com/gvisor-shim/containerd-shim-runsc-v1/shim"
)

// Bounds of the long-lived pod shim test: what the shim may grow by over
// longLivedExecs execs and longLivedCycles containers, after a warm-up.
const (
	longLivedExecs     = 500
	longLivedCycles    = 100
	maxFDGrowth        = 8
	maxGoroutineGrowth = 10
	maxThreadGrowth    = 6
	maxRSSGrowth       = 10 << 20
)

// shimUsage is what a shim process holds.
type shimUsage struct {
	fds, threads, goroutines int
	rss                      int64
}

func (u shimUsage) String() string {
	return fmt.Sprintf("fds %d, threads %d, goroutines %d, RSS %.1f MiB", u.fds, u.threads, u.goroutines, float64(u.rss)/(1<<20))
}

// measureShim reads pid's fds, threads and RSS from /proc and its goroutine
// count from the pprof endpoint on its debug socket.
func measureShim(pid int, debugSocket string) (shimUsage, error) {
	var u shimUsage
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return u, err
	}
	u.fds = len(fds)
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "Threads":
			u.threads = int(n)
		case "VmRSS":
			u.rss = n << 10
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", debugSocket)
		},
	}}
	resp, err := hc.Get("http://shim/debug/pprof/goroutine?debug=1")
	if err != nil {
		return u, fmt.Errorf("shim pprof on %s: %w", debugSocket, err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return u, fmt.Errorf("shim pprof: %w", err)
	}
	// "goroutine profile: total 17"
	if _, err := fmt.Sscanf(line, "goroutine profile: total %d", &u.goroutines); err != nil {
		return u, fmt.Errorf("shim pprof: unexpected first line %q", line)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return u, nil
}

// podSpec makes a container a member of the pod whose sandbox is sandboxID
// (the CRI annotations containerd's CRI sets), or the sandbox itself.
func podSpec(sandboxID string, sandbox bool) oci.SpecOpts {
	kind := "container"
	if sandbox {
		kind = "sandbox"
	}
	return oci.WithAnnotations(map[string]string{
		"io.kubernetes.cri.container-type": kind,
		"io.kubernetes.cri.sandbox-id":     sandboxID,
	})
}

// TestLongLivedPodShim runs one pod's shim through hundreds of execs of
// every stdio shape and a hundred containers joining and leaving the pod:
// its fds, goroutines, threads and RSS stay flat (bounds above).
func TestLongLivedPodShim(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireBinary(t, harness.Runsc())
	harness.RequireBinary(t, harness.BusyboxBinary)
	dir := shim(t)

	forEachDaemon(t, harness.DaemonOptions{ShimDirs: []string{dir}}, func(t *testing.T, d *harness.Daemon) {
		e := newTaskEnv(t, d)
		ctx, cancel := context.WithTimeout(d.Context(context.Background()), 15*time.Minute)
		defer cancel()

		podID := e.id("ll-pod")
		pod := e.start(ctx, t, podID, []string{"sleep", "100000"}, podSpec(podID, true))
		pids := d.ShimPids(podID)
		if len(pids) != 1 {
			t.Fatalf("shim processes of the pod: %v", pids)
		}
		shimPid := pids[0]
		debugSocket := shimpkg.DebugSocket(pod.shimAddr)

		execOnce := func(i int) {
			t.Helper()
			execID := fmt.Sprintf("x%d", i)
			var (
				res execResult
				err error
			)
			switch i % 4 {
			case 0: // stdin at EOF before the shim opens it (ctr exec </dev/null)
				res, err = execRun(ctx, pod.container, pod.task, execID, strings.NewReader(""), "true")
			case 1: // piped stdin
				res, err = execRun(ctx, pod.container, pod.task, execID, strings.NewReader("ping\n"), "cat")
				if err == nil && res.stdout != "ping\n" {
					err = fmt.Errorf("piped exec echoed %q", res.stdout)
				}
			case 2: // terminal
				err = execTTY(ctx, pod, execID)
			case 3: // no stdin
				res, err = execRun(ctx, pod.container, pod.task, execID, nil, "sh", "-c", "echo out")
				if err == nil && res.stdout != "out\n" {
					err = fmt.Errorf("exec printed %q", res.stdout)
				}
			}
			if err != nil {
				t.Fatalf("exec %d: %v", i, err)
			}
		}
		cycle := func(i int) {
			t.Helper()
			id := fmt.Sprintf("%s-m%d", podID, i)
			lt := e.start(ctx, t, id, []string{"sh", "-c", "echo member"}, podSpec(podID, false))
			statusC, err := lt.task.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case st := <-statusC:
				if st.ExitCode() != 0 {
					t.Fatalf("member %d exited %d", i, st.ExitCode())
				}
			case <-ctx.Done():
				t.Fatalf("member %d did not exit", i)
			}
			// containerd 2.x's metrics collector polls a task until it is
			// deleted: an exited member still answers (current runsc's
			// `events` fails for it).
			if _, err := lt.task.Metrics(ctx); err != nil {
				t.Fatalf("metrics of exited member %d: %v", i, err)
			}
			if _, err := lt.task.Delete(ctx); err != nil {
				t.Fatalf("delete member %d: %v", i, err)
			}
			if got := lt.stdout.String(); got != "member\n" {
				t.Fatalf("member %d printed %q", i, got)
			}
			if err := lt.container.Delete(ctx, client.WithSnapshotCleanup); err != nil {
				t.Fatalf("delete member container %d: %v", i, err)
			}
		}

		// Warm-up: buffers, pools and the runtime's own threads settle.
		for i := 0; i < 20; i++ {
			execOnce(i)
		}
		for i := 0; i < 3; i++ {
			cycle(i)
		}
		base, err := measureShim(shimPid, debugSocket)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("after warm-up: %v", base)
		execs, cycles := longLivedExecs, longLivedCycles
		if harness.RaceShim() {
			// A -race shim is several times slower: fewer rounds, same bounds.
			execs, cycles = longLivedExecs/5, longLivedCycles/5
		}
		for i := 0; i < execs; i++ {
			execOnce(1000 + i)
		}
		afterExecs, err := measureShim(shimPid, debugSocket)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("after %d execs: %v", execs, afterExecs)
		for i := 0; i < cycles; i++ {
			cycle(1000 + i)
		}
		end, err := measureShim(shimPid, debugSocket)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("after %d containers: %v", cycles, end)
		for _, u := range []shimUsage{afterExecs, end} {
			if u.fds > base.fds+maxFDGrowth || u.goroutines > base.goroutines+maxGoroutineGrowth ||
				u.threads > base.threads+maxThreadGrowth || u.rss > base.rss+maxRSSGrowth {
				t.Errorf("the pod's shim grew: %v -> %v (bounds: fds +%d, goroutines +%d, threads +%d, RSS +%d MiB)",
					base, u, maxFDGrowth, maxGoroutineGrowth, maxThreadGrowth, maxRSSGrowth>>20)
			}
		}
		e.killAndDelete(ctx, t, pod.container, pod.task, pod.shimAddr)
		if _, err := os.Stat(debugSocket); err == nil {
			t.Errorf("debug socket %s left behind", debugSocket)
		}
	})
}

// execTTY runs a terminal exec that prints and exits, and checks its output.
func execTTY(ctx context.Context, lt *liveTask, execID string) error {
	pspec, err := processSpec(ctx, lt.container, true, "sh", "-c", "echo tty")
	if err != nil {
		return err
	}
	var out harness.Buffer
	p, err := lt.task.Exec(ctx, execID, pspec, cio.NewCreator(cio.WithStreams(nil, &out, nil), cio.WithTerminal))
	if err != nil {
		return err
	}
	statusC, err := p.Wait(ctx)
	if err != nil {
		return err
	}
	if err := p.Start(ctx); err != nil {
		_, _ = p.Delete(ctx)
		return err
	}
	select {
	case st := <-statusC:
		if st.ExitCode() != 0 {
			return fmt.Errorf("tty exec exited %d", st.ExitCode())
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	if _, err := p.Delete(ctx); err != nil {
		return err
	}
	if got := out.String(); got != "tty\r\n" {
		return fmt.Errorf("tty exec printed %q", got)
	}
	return nil
}

// TestPrefixIDs: containers whose ids are prefixes of each other's (runsc
// resolves ids by prefix) are each managed on their own.
func TestPrefixIDs(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireBinary(t, harness.Runsc())
	harness.RequireBinary(t, harness.BusyboxBinary)
	dir := shim(t)

	forEachDaemon(t, harness.DaemonOptions{ShimDirs: []string{dir}}, func(t *testing.T, d *harness.Daemon) {
		e := newTaskEnv(t, d)
		ctx, cancel := context.WithTimeout(d.Context(context.Background()), 5*time.Minute)
		defer cancel()

		short := e.id("amb")
		long := short + "2"
		a := e.start(ctx, t, short, []string{"sleep", "100000"})
		b := e.start(ctx, t, long, []string{"sleep", "100000"})
		for _, lt := range []*liveTask{a, b} {
			res, err := execRun(ctx, lt.container, lt.task, "x", nil, "sh", "-c", "echo in-"+lt.id)
			if err != nil {
				t.Fatalf("exec in %s: %v", lt.id, err)
			}
			if res.stdout != "in-"+lt.id+"\n" {
				t.Errorf("exec in %s printed %q", lt.id, res.stdout)
			}
			if _, err := lt.task.Pids(ctx); err != nil {
				t.Errorf("pids of %s: %v", lt.id, err)
			}
		}
		if err := a.task.Pause(ctx); err != nil {
			t.Fatalf("pause %s: %v", short, err)
		}
		if st, err := b.task.Status(ctx); err != nil || st.Status != client.Running {
			t.Errorf("%s after pausing %s: %v %v", long, short, st.Status, err)
		}
		if err := a.task.Resume(ctx); err != nil {
			t.Fatalf("resume %s: %v", short, err)
		}
		// The shorter id first: it must not need the longer one gone.
		statusC, err := a.task.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", short, err)
		}
		if st := <-statusC; st.ExitCode() != 137 {
			t.Errorf("%s exited %d after SIGKILL", short, st.ExitCode())
		}
		if _, err := a.task.Delete(ctx); err != nil {
			t.Fatalf("delete %s: %v", short, err)
		}
		if err := a.container.Delete(ctx, client.WithSnapshotCleanup); err != nil {
			t.Fatal(err)
		}
		if st, err := b.task.Status(ctx); err != nil || st.Status != client.Running {
			t.Errorf("%s after removing %s: %v %v", long, short, st.Status, err)
		}
		e.killAndDelete(ctx, t, b.container, b.task, b.shimAddr)
		// Both gone: whatever mentions the shorter id mentions either.
		harness.AssertNoLeftovers(t, d, short, e.cfg.Root, a.shimAddr)
	})
}
