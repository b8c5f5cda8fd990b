package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

// taskTimeout bounds one task subtest, so a hung shim fails it instead of
// hanging the suite.
const taskTimeout = 2 * time.Minute

// taskEnv is what every task subtest needs.
type taskEnv struct {
	d    *harness.Daemon
	img  client.Image
	cfg  harness.RunscConfig
	opts *runtimeoptions.Options
	v    string // daemon version without dots, for container ids
}

// newTaskEnv imports busybox into d and writes a runsc.toml for it.
func newTaskEnv(t *testing.T, d *harness.Daemon) *taskEnv {
	t.Helper()
	e := &taskEnv{d: d, img: harness.ImportBusyboxT(t, d), v: strings.ReplaceAll(d.Version, ".", "")}
	e.cfg = harness.WriteRunscConfigT(t, filepath.Join(d.Dir, "runsc"), nil)
	e.opts = &runtimeoptions.Options{ConfigPath: e.cfg.Path}
	return e
}

// id returns a container id unique to this run and daemon.
func (e *taskEnv) id(name string) string {
	return containerID(name + "-" + e.v)
}

// liveTask is a started container task with its init's output.
type liveTask struct {
	id        string
	container client.Container
	task      client.Task
	stdout    *harness.Buffer
	stderr    *harness.Buffer
	shimAddr  string
	startedAt time.Time
}

// start creates container id running args through the runsc shim and starts
// its task. A cleanup of t removes whatever is left of it (through the
// daemon's client of that time: Restart replaces it).
func (e *taskEnv) start(ctx context.Context, t *testing.T, id string, args []string, specOpts ...oci.SpecOpts) *liveTask {
	t.Helper()
	harness.LogOnFailure(t, e.d, id)
	opts := append([]oci.SpecOpts{oci.WithImageConfig(e.img), oci.WithProcessArgs(args...)}, specOpts...)
	c, err := e.d.Client.NewContainer(ctx, id,
		client.WithImage(e.img),
		client.WithNewSnapshot(id+"-snapshot", e.img),
		client.WithRuntime(harness.RuntimeName, e.opts),
		client.WithNewSpec(opts...),
	)
	if err != nil {
		t.Fatalf("NewContainer %s: %v", id, err)
	}
	t.Cleanup(func() { e.remove(t, id) })
	lt := &liveTask{id: id, container: c, stdout: &harness.Buffer{}, stderr: &harness.Buffer{}}
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, lt.stdout, lt.stderr)))
	if err != nil {
		t.Fatalf("NewTask %s: %v", id, err)
	}
	lt.task = task
	lt.shimAddr, _ = e.d.ShimAddress(id)
	if err := task.Start(ctx); err != nil {
		t.Fatalf("Start %s: %v", id, err)
	}
	lt.startedAt = time.Now()
	return lt
}

// remove kills and deletes task and container id if they still exist; it is
// the safety net of start, silent when the test already removed them.
func (e *taskEnv) remove(t *testing.T, id string) {
	t.Helper()
	if e.d.Client == nil {
		return // the daemon is down: its Stop kills what is left
	}
	ctx, cancel := context.WithTimeout(e.d.Context(context.Background()), 30*time.Second)
	defer cancel()
	c, err := e.d.Client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return
	}
	if err != nil {
		t.Errorf("cleanup: load container %s: %v", id, err)
		return
	}
	if task, err := c.Task(ctx, nil); err == nil {
		_ = task.Kill(ctx, syscall.SIGKILL)
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			t.Errorf("cleanup: delete task %s: %v", id, err)
		}
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		t.Errorf("cleanup: delete container %s: %v", id, err)
	}
}

// killAndDelete SIGKILLs lt's task, waits for its exit, deletes task and
// container and checks that nothing is left behind. It returns the exit
// status Delete reported.
func (e *taskEnv) killAndDelete(ctx context.Context, t *testing.T, c client.Container, task client.Task, shimAddr string) uint32 {
	t.Helper()
	statusC, err := task.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait %s: %v", c.ID(), err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Errorf("Kill %s: %v", c.ID(), err)
	}
	select {
	case st := <-statusC:
		if st.Error() != nil {
			t.Errorf("exit of %s: %v", c.ID(), st.Error())
		} else if st.ExitCode() != 137 {
			t.Errorf("%s exited with %d after SIGKILL, want 137", c.ID(), st.ExitCode())
		}
	case <-ctx.Done():
		t.Fatalf("%s did not exit after SIGKILL: %v", c.ID(), ctx.Err())
	}
	st, err := task.Delete(ctx)
	if err != nil {
		t.Fatalf("Delete task %s: %v", c.ID(), err)
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		t.Errorf("Delete container %s: %v", c.ID(), err)
	}
	harness.AssertNoLeftovers(t, e.d, c.ID(), e.cfg.Root, shimAddr)
	return st.ExitCode()
}

// execResult is what one exec produced.
type execResult struct {
	stdout, stderr string
	status         uint32
}

// processSpec returns the container's process spec with args (and terminal).
func processSpec(ctx context.Context, c client.Container, terminal bool, args ...string) (*specs.Process, error) {
	spec, err := c.Spec(ctx)
	if err != nil {
		return nil, err
	}
	p := *spec.Process
	p.Args = args
	p.Terminal = terminal
	return &p, nil
}

// execRun runs args as exec execID in task to completion, with stdin (may
// be nil), and deletes the exec.
func execRun(ctx context.Context, c client.Container, task client.Task, execID string, stdin io.Reader, args ...string) (execResult, error) {
	var res execResult
	pspec, err := processSpec(ctx, c, false, args...)
	if err != nil {
		return res, err
	}
	var stdout, stderr harness.Buffer
	p, err := task.Exec(ctx, execID, pspec, cio.NewCreator(cio.WithStreams(stdin, &stdout, &stderr)))
	if err != nil {
		return res, fmt.Errorf("Exec %s: %w", execID, err)
	}
	statusC, err := p.Wait(ctx)
	if err != nil {
		return res, fmt.Errorf("Wait exec %s: %w", execID, err)
	}
	if err := p.Start(ctx); err != nil {
		_, _ = p.Delete(ctx)
		return res, fmt.Errorf("Start exec %s: %w", execID, err)
	}
	select {
	case st := <-statusC:
		if st.Error() != nil {
			return res, fmt.Errorf("exit of exec %s: %w", execID, st.Error())
		}
		res.status = st.ExitCode()
	case <-ctx.Done():
		return res, fmt.Errorf("exec %s did not exit: %w (stdout %q, stderr %q)", execID, ctx.Err(), stdout.String(), stderr.String())
	}
	st, err := p.Delete(ctx)
	// Delete waited for the output copiers.
	res.stdout, res.stderr = stdout.String(), stderr.String()
	if err != nil {
		return res, fmt.Errorf("Delete exec %s: %w", execID, err)
	}
	if st.ExitCode() != res.status {
		return res, fmt.Errorf("exec %s: Wait said exit %d, Delete said %d", execID, res.status, st.ExitCode())
	}
	return res, nil
}

// taskEvent is one decoded /tasks/ event.
type taskEvent struct {
	at        time.Time
	topic     string
	container string
	// id is the exec id of exec-added/exec-started and the process id of
	// exit/delete (the container id for the init process).
	id         string
	exitStatus uint32
}

func (ev taskEvent) String() string {
	s := ev.topic + " " + ev.container
	if ev.id != "" {
		s += " id=" + ev.id
	}
	if ev.topic == "/tasks/exit" || ev.topic == "/tasks/delete" {
		s += fmt.Sprintf(" status=%d", ev.exitStatus)
	}
	return s
}

// eventLog records the /tasks/ events of a subscription.
type eventLog struct {
	mu     sync.Mutex
	events []taskEvent
	err    error
}

// subscribeTasks subscribes to the daemon's /tasks/ events until ctx ends.
func subscribeTasks(ctx context.Context, t *testing.T, c *client.Client) *eventLog {
	t.Helper()
	l := &eventLog{}
	ch, errs := c.Subscribe(ctx, `topic~="/tasks/"`)
	go func() {
		for {
			select {
			case env := <-ch:
				if env == nil {
					return
				}
				ev := taskEvent{at: env.Timestamp, topic: env.Topic}
				v, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					l.mu.Lock()
					l.err = errors.Join(l.err, fmt.Errorf("decode %s: %w", env.Topic, err))
					l.mu.Unlock()
					continue
				}
				switch e := v.(type) {
				case *eventstypes.TaskCreate:
					ev.container = e.ContainerID
				case *eventstypes.TaskStart:
					ev.container = e.ContainerID
				case *eventstypes.TaskExit:
					ev.container, ev.id, ev.exitStatus = e.ContainerID, e.ID, e.ExitStatus
				case *eventstypes.TaskDelete:
					ev.container, ev.id, ev.exitStatus = e.ContainerID, e.ID, e.ExitStatus
				case *eventstypes.TaskExecAdded:
					ev.container, ev.id = e.ContainerID, e.ExecID
				case *eventstypes.TaskExecStarted:
					ev.container, ev.id = e.ContainerID, e.ExecID
				case *eventstypes.TaskPaused:
					ev.container = e.ContainerID
				case *eventstypes.TaskResumed:
					ev.container = e.ContainerID
				case *eventstypes.TaskOOM:
					ev.container = e.ContainerID
				}
				l.mu.Lock()
				l.events = append(l.events, ev)
				l.mu.Unlock()
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					l.mu.Lock()
					l.err = errors.Join(l.err, err)
					l.mu.Unlock()
				}
				return
			}
		}
	}()
	// Subscribe is asynchronous: give the stream a moment to be set up
	// before the caller triggers the events it waits for.
	time.Sleep(200 * time.Millisecond)
	return l
}

// of returns the recorded events of container id.
func (l *eventLog) of(id string) []taskEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []taskEvent
	for _, ev := range l.events {
		if ev.container == id {
			out = append(out, ev)
		}
	}
	return out
}

// waitFor waits until an event matching match is recorded, or ctx or the
// timeout ends.
func (l *eventLog) waitFor(ctx context.Context, timeout time.Duration, match func(taskEvent) bool) (taskEvent, bool) {
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		for _, ev := range l.events {
			if match(ev) {
				l.mu.Unlock()
				return ev, true
			}
		}
		l.mu.Unlock()
		if time.Now().After(deadline) || ctx.Err() != nil {
			return taskEvent{}, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *eventLog) errors() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func eventList(evs []taskEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s\n", ev)
	}
	return b.String()
}

// countLines returns the number of lines of the file at path (0 if absent).
func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
	}
	return n
}

// waitLines waits until the file at path has more than n lines and
// returns the count, or the last count when timeout passes.
func waitLines(path string, n int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		c := countLines(path)
		if c > n || time.Now().After(deadline) {
			return c
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTask(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireBinary(t, harness.Runsc())
	harness.RequireBinary(t, harness.BusyboxBinary)
	dir := shim(t)

	forEachDaemon(t, harness.DaemonOptions{ShimDirs: []string{dir}}, func(t *testing.T, d *harness.Daemon) {
		e := newTaskEnv(t, d)

		// One long-running container serves the exec subtests.
		sctx, scancel := context.WithTimeout(d.Context(context.Background()), 10*time.Minute)
		defer scancel()
		sleeper := e.start(sctx, t, e.id("exec"), []string{"sleep", "100000"})

		t.Run("exec-exit-status", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(sctx, taskTimeout)
			defer cancel()
			res, err := execRun(ctx, sleeper.container, sleeper.task, "exit5", nil, "sh", "-c", "echo out; echo err >&2; exit 5")
			if err != nil {
				t.Fatal(err)
			}
			if res.status != 5 {
				t.Errorf("exec exit status %d, want 5", res.status)
			}
			if res.stdout != "out\n" || res.stderr != "err\n" {
				t.Errorf("exec stdout %q stderr %q, want %q and %q", res.stdout, res.stderr, "out\n", "err\n")
			}
		})

		t.Run("exec-missing-binary", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(sctx, taskTimeout)
			defer cancel()
			const bin = "/bin/no-such-binary-xyz"
			pspec, err := processSpec(ctx, sleeper.container, false, bin, "arg")
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr harness.Buffer
			p, err := sleeper.task.Exec(ctx, "missing", pspec, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr)))
			if err != nil {
				t.Fatalf("Exec: %v (want the error at Start)", err)
			}
			err = p.Start(ctx)
			switch {
			case err == nil:
				t.Errorf("Start of an exec of %s succeeded; want an error naming it", bin)
				if ch, werr := p.Wait(ctx); werr == nil {
					st := <-ch
					t.Logf("it exited with %d; stdout %q stderr %q", st.ExitCode(), stdout.String(), stderr.String())
				}
			case !strings.Contains(err.Error(), "no-such-binary-xyz"):
				t.Errorf("Start error does not name the binary %s: %v", bin, err)
			default:
				t.Logf("Start failed as expected: %v", err)
			}
			if _, err := p.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
				t.Errorf("Delete of the failed exec: %v", err)
			}
			// The container is unharmed.
			res, err := execRun(ctx, sleeper.container, sleeper.task, "after-missing", nil, "echo", "still-alive")
			if err != nil || res.stdout != "still-alive\n" || res.status != 0 {
				t.Errorf("exec after the failed one: %+v, %v", res, err)
			}
		})

		t.Run("exec-tty-resize", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(sctx, taskTimeout)
			defer cancel()
			// The shell waits for the resize before printing the size.
			script := "test -t 0 && test -t 1 && echo tty-ok; " +
				"i=0; while [ $i -lt 50 ] && [ \"$(stty size)\" != '40 100' ]; do sleep 0.1; i=$((i+1)); done; " +
				"echo size=$(stty size); echo done"
			pspec, err := processSpec(ctx, sleeper.container, true, "sh", "-c", script)
			if err != nil {
				t.Fatal(err)
			}
			var out harness.Buffer
			p, err := sleeper.task.Exec(ctx, "tty", pspec, cio.NewCreator(cio.WithStreams(nil, &out, nil), cio.WithTerminal))
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			statusC, err := p.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(ctx); err != nil {
				_, _ = p.Delete(ctx)
				t.Fatalf("Start: %v", err)
			}
			if err := p.Resize(ctx, 100, 40); err != nil {
				t.Errorf("Resize: %v", err)
			}
			var status uint32
			select {
			case st := <-statusC:
				status = st.ExitCode()
			case <-ctx.Done():
				t.Fatalf("tty exec did not exit; output %q", out.String())
			}
			if _, err := p.Delete(ctx); err != nil {
				t.Errorf("Delete: %v", err)
			}
			got := out.String()
			t.Logf("tty exec output: %q", got)
			if status != 0 {
				t.Errorf("tty exec exit status %d, want 0", status)
			}
			if !strings.Contains(got, "tty-ok") {
				t.Errorf("stdin/stdout of the exec are not a terminal; output %q", got)
			}
			if !strings.Contains(got, "size=40 100") {
				t.Errorf("the exec's terminal was not resized to 40 rows, 100 columns; output %q", got)
			}
			if !strings.Contains(got, "done") {
				t.Errorf("output %q lacks the last line %q", got, "done")
			}
		})

		t.Run("exec-stdin-closeio", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(sctx, taskTimeout)
			defer cancel()
			const input = "line one\nline two\nno newline at the end"
			pspec, err := processSpec(ctx, sleeper.container, false, "cat")
			if err != nil {
				t.Fatal(err)
			}
			// The pipe stays open: only CloseIO can give cat its EOF.
			pr, pw := io.Pipe()
			defer pw.Close()
			var stdout, stderr harness.Buffer
			p, err := sleeper.task.Exec(ctx, "cat", pspec, cio.NewCreator(cio.WithStreams(pr, &stdout, &stderr)))
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			statusC, err := p.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(ctx); err != nil {
				_, _ = p.Delete(ctx)
				t.Fatalf("Start: %v", err)
			}
			go func() { _, _ = io.WriteString(pw, input) }()
			deadline := time.Now().Add(10 * time.Second)
			for stdout.String() != input && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if got := stdout.String(); got != input {
				t.Errorf("cat echoed %q within 10s, want %q", got, input)
			}
			if err := p.CloseIO(ctx, client.WithStdinCloser); err != nil {
				t.Fatalf("CloseIO: %v", err)
			}
			select {
			case st := <-statusC:
				if st.ExitCode() != 0 {
					t.Errorf("cat exited %d, want 0; stderr %q", st.ExitCode(), stderr.String())
				}
			case <-time.After(15 * time.Second):
				t.Errorf("cat did not exit within 15s of CloseIO: it never saw EOF")
				_ = p.Kill(ctx, syscall.SIGKILL)
				<-statusC
			}
			pw.Close()
			if _, err := p.Delete(ctx); err != nil {
				t.Errorf("Delete: %v", err)
			}
			if got := stdout.String(); got != input {
				t.Errorf("cat output %q, want %q", got, input)
			}
		})

		t.Run("exec-concurrent", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(sctx, taskTimeout)
			defer cancel()
			const n = 20
			results := make([]execResult, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = execRun(ctx, sleeper.container, sleeper.task, fmt.Sprintf("conc-%d", i), nil,
						"sh", "-c", fmt.Sprintf("echo %d; exit %d", i, i))
				}()
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Errorf("exec %d: %v", i, errs[i])
					continue
				}
				if want := strconv.Itoa(i) + "\n"; results[i].stdout != want {
					t.Errorf("exec %d printed %q, want %q", i, results[i].stdout, want)
				}
				if results[i].status != uint32(i) {
					t.Errorf("exec %d exited %d, want %d", i, results[i].status, i)
				}
			}
		})

		t.Run("pids", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(sctx, taskTimeout)
			defer cancel()
			pspec, err := processSpec(ctx, sleeper.container, false, "sleep", "1000")
			if err != nil {
				t.Fatal(err)
			}
			p, err := sleeper.task.Exec(ctx, "pids-sleep", pspec, cio.NullIO)
			if err != nil {
				t.Fatal(err)
			}
			statusC, err := p.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(ctx); err != nil {
				_, _ = p.Delete(ctx)
				t.Fatalf("Start: %v", err)
			}
			defer func() {
				if err := p.Kill(ctx, syscall.SIGKILL); err != nil {
					t.Errorf("Kill exec: %v", err)
				}
				select {
				case st := <-statusC:
					if st.ExitCode() != 137 {
						t.Errorf("exec exited %d after SIGKILL, want 137", st.ExitCode())
					}
				case <-ctx.Done():
					t.Errorf("exec did not exit after SIGKILL")
				}
				if _, err := p.Delete(ctx); err != nil {
					t.Errorf("Delete exec: %v", err)
				}
			}()

			ps, err := sleeper.task.Pids(ctx)
			if err != nil {
				t.Fatalf("Pids: %v", err)
			}
			var initPids, execPids []uint32
			var desc []string
			for _, pi := range ps {
				execID := ""
				if pi.Info != nil {
					v, err := typeurl.UnmarshalAny(pi.Info)
					if err != nil {
						t.Errorf("pid %d: decode Info (%s): %v", pi.Pid, pi.Info.GetTypeUrl(), err)
						continue
					}
					d, ok := v.(*options.ProcessDetails)
					if !ok {
						t.Errorf("pid %d: Info is a %T, want options.ProcessDetails", pi.Pid, v)
						continue
					}
					execID = d.ExecID
				}
				desc = append(desc, fmt.Sprintf("%d exec=%q", pi.Pid, execID))
				switch execID {
				case "":
					initPids = append(initPids, pi.Pid)
				case "pids-sleep":
					execPids = append(execPids, pi.Pid)
				default:
					t.Errorf("pid %d carries exec id %q of no running exec", pi.Pid, execID)
				}
			}
			t.Logf("Pids: %s (task pid %d, exec pid %d)", strings.Join(desc, ", "), sleeper.task.Pid(), p.Pid())
			if len(initPids) != 1 {
				t.Errorf("want exactly one process without exec id (the init `sleep`), got %v", initPids)
			} else if initPids[0] != 1 && initPids[0] != sleeper.task.Pid() {
				t.Errorf("init process listed as pid %d, want 1 (in the sandbox) or the task pid %d", initPids[0], sleeper.task.Pid())
			}
			if len(execPids) != 1 {
				t.Errorf("want exactly one process with exec id %q, got %v", "pids-sleep", execPids)
			}
		})

		t.Run("exec-events", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(sctx, taskTimeout)
			defer cancel()
			evctx, evcancel := context.WithCancel(ctx)
			defer evcancel()
			evs := subscribeTasks(evctx, t, d.Client)
			publishErrors := len(d.LogGrep(`msg="publish event"`))

			res, err := execRun(ctx, sleeper.container, sleeper.task, "events", nil, "sh", "-c", "exit 7")
			if err != nil {
				t.Fatal(err)
			}
			if res.status != 7 {
				t.Errorf("exec exit status %d, want 7", res.status)
			}
			if _, ok := evs.waitFor(ctx, 10*time.Second, func(ev taskEvent) bool {
				return ev.topic == "/tasks/delete" && ev.container == sleeper.id && ev.id == "events"
			}); !ok {
				t.Errorf("no /tasks/delete event for the exec within 10s")
			}
			var got []string
			for _, ev := range evs.of(sleeper.id) {
				if ev.id == "events" {
					got = append(got, ev.topic)
					if ev.topic == "/tasks/exit" && ev.exitStatus != 7 {
						t.Errorf("exec's /tasks/exit carries status %d, want 7", ev.exitStatus)
					}
				}
			}
			want := []string{"/tasks/exec-added", "/tasks/exec-started", "/tasks/exit", "/tasks/delete"}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("events of the exec: %v, want %v; all events:\n%s", got, want, eventList(evs.of(sleeper.id)))
			}

			// Short-lived containers: create, start, exit, delete, in order,
			// once each. Several, because the delivery of the last event races
			// the shim's shutdown.
			for i := range 5 {
				id := e.id(fmt.Sprintf("events%d", i))
				harness.LogOnFailure(t, d, id)
				rres, err := d.Run(ctx, harness.RunOptions{
					ID: id, Image: e.img, Runtime: harness.RuntimeName, RuntimeOptions: e.opts,
					Args: []string{"sh", "-c", "exit 4"},
				})
				if err != nil {
					t.Fatal(err)
				}
				if rres.ExitStatus != 4 {
					t.Errorf("%s: exit status %d, want 4", id, rres.ExitStatus)
				}
				if _, ok := evs.waitFor(ctx, 10*time.Second, func(ev taskEvent) bool {
					return ev.topic == "/tasks/delete" && ev.container == id
				}); !ok {
					t.Errorf("no /tasks/delete event for %s within 10s", id)
				}
				got = got[:0]
				for _, ev := range evs.of(id) {
					got = append(got, ev.topic)
					if (ev.topic == "/tasks/exit" || ev.topic == "/tasks/delete") && ev.exitStatus != 4 {
						t.Errorf("%s: %s carries exit status %d, want 4", id, ev.topic, ev.exitStatus)
					}
				}
				want = []string{"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"}
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("events of short-lived %s: %v, want %v; all:\n%s", id, got, want, eventList(evs.of(id)))
				}
				harness.AssertNoLeftovers(t, d, id, e.cfg.Root, rres.ShimAddress)
			}
			if err := evs.errors(); err != nil {
				t.Errorf("event subscription: %v", err)
			}
			// containerd was up all along: no shim may have failed to publish.
			// (The shim logs through containerd's log.)
			if failed := d.LogGrep(`msg="publish event"`)[publishErrors:]; len(failed) > 0 {
				t.Errorf("shims failed to publish events to a running containerd:\n%s", strings.Join(failed, "\n"))
			}
		})

		t.Run("pause-resume", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(sctx, taskTimeout)
			defer cancel()
			evctx, evcancel := context.WithCancel(ctx)
			defer evcancel()
			evs := subscribeTasks(evctx, t, d.Client)

			hostDir := t.TempDir()
			counter := filepath.Join(hostDir, "c")
			id := e.id("pause")
			lt := e.start(ctx, t, id, []string{"sh", "-c", "while true; do echo x >> /host/c; sleep 0.1; done"},
				oci.WithMounts([]specs.Mount{{Destination: "/host", Type: "bind", Source: hostDir, Options: []string{"rbind", "rw"}}}))

			n0 := waitLines(counter, 3, 15*time.Second)
			if n0 <= 3 {
				t.Fatalf("the counter in the bind-mounted %s does not advance while running: %d lines after 15s", counter, n0)
			}
			if err := lt.task.Pause(ctx); err != nil {
				t.Fatalf("Pause: %v", err)
			}
			st, err := lt.task.Status(ctx)
			if err != nil {
				t.Errorf("Status: %v", err)
			} else if st.Status != client.Paused {
				t.Errorf("Status after Pause is %q, want %q", st.Status, client.Paused)
			}
			// A write in flight may land just after Pause returns.
			time.Sleep(300 * time.Millisecond)
			n1 := countLines(counter)
			time.Sleep(1500 * time.Millisecond)
			n2 := countLines(counter)
			if n2 != n1 {
				t.Errorf("the counter advanced from %d to %d in 1.5s while paused", n1, n2)
			}
			if err := lt.task.Resume(ctx); err != nil {
				t.Fatalf("Resume: %v", err)
			}
			if st, err := lt.task.Status(ctx); err != nil {
				t.Errorf("Status: %v", err)
			} else if st.Status != client.Running {
				t.Errorf("Status after Resume is %q, want %q", st.Status, client.Running)
			}
			if n3 := waitLines(counter, n2+2, 10*time.Second); n3 <= n2+2 {
				t.Errorf("the counter does not advance after Resume: %d lines, %d when paused", n3, n2)
			}
			for _, topic := range []string{"/tasks/paused", "/tasks/resumed"} {
				if _, ok := evs.waitFor(ctx, 10*time.Second, func(ev taskEvent) bool {
					return ev.topic == topic && ev.container == id
				}); !ok {
					t.Errorf("no %s event for %s within 10s; its events:\n%s", topic, id, eventList(evs.of(id)))
				}
			}
			if err := evs.errors(); err != nil {
				t.Errorf("event subscription: %v", err)
			}
			e.killAndDelete(ctx, t, lt.container, lt.task, lt.shimAddr)
		})

		// The exec subtests are done with the sleeper.
		t.Run("delete-exec-container", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(sctx, taskTimeout)
			defer cancel()
			e.killAndDelete(ctx, t, sleeper.container, sleeper.task, sleeper.shimAddr)
		})

		t.Run("containerd-restart", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(sctx, 3*time.Minute)
			defer cancel()
			sleepID, exitID := e.id("rs-sleep"), e.id("rs-exit9")
			sl := e.start(ctx, t, sleepID, []string{"sleep", "100000"})
			ex := e.start(ctx, t, exitID, []string{"sh", "-c", "sleep 3; exit 9"})
			shimPids := map[string][]int{sleepID: d.ShimPids(sleepID), exitID: d.ShimPids(exitID)}

			if err := d.Kill(); err != nil {
				t.Fatalf("kill containerd: %v", err)
			}
			// The shims outlive containerd.
			for id, pids := range shimPids {
				if len(pids) != 1 {
					t.Errorf("shims of %s: %v, want one", id, pids)
				}
				for _, pid := range pids {
					if !harness.ProcessAlive(pid) {
						t.Errorf("shim %d of %s died with containerd", pid, id)
					}
				}
			}
			// Let the second container exit while containerd is down.
			if wait := time.Until(ex.startedAt.Add(5 * time.Second)); wait > 0 {
				time.Sleep(wait)
			}
			if err := d.Restart(ctx, 30*time.Second); err != nil {
				t.Fatalf("restart containerd: %v", err)
			}
			ctx = d.Context(ctx)
			// The image handle belongs to the old client: later subtests need the new one.
			img, err := d.Client.GetImage(ctx, harness.BusyboxRef)
			if err != nil {
				t.Fatalf("GetImage after restart: %v", err)
			}
			e.img = img

			list, err := d.Client.TaskService().List(ctx, nil)
			if err != nil {
				t.Fatalf("list tasks after restart: %v", err)
			}
			listed := map[string]string{}
			for _, tk := range list.Tasks {
				listed[tk.ID] = tk.Status.String()
			}
			t.Logf("tasks after restart: %v", listed)
			for _, id := range []string{sleepID, exitID} {
				if _, ok := listed[id]; !ok {
					t.Errorf("task %s not listed after containerd restart", id)
				}
			}

			// The sleeper: running, exec works, kill and delete work.
			sc, err := d.Client.LoadContainer(ctx, sleepID)
			if err != nil {
				t.Fatalf("LoadContainer %s: %v", sleepID, err)
			}
			stask, err := sc.Task(ctx, nil)
			if err != nil {
				t.Fatalf("Task of %s after restart: %v", sleepID, err)
			}
			if st, err := stask.Status(ctx); err != nil || st.Status != client.Running {
				t.Errorf("Status of %s after restart: %+v, %v; want running", sleepID, st, err)
			}
			res, err := execRun(ctx, sc, stask, "after-restart", nil, "sh", "-c", "echo alive; exit 2")
			if err != nil {
				t.Errorf("exec after restart: %v", err)
			} else if res.stdout != "alive\n" || res.status != 2 {
				t.Errorf("exec after restart: stdout %q status %d, want %q and 2", res.stdout, res.status, "alive\n")
			}

			// The container that exited while containerd was down.
			xc, err := d.Client.LoadContainer(ctx, exitID)
			if err != nil {
				t.Fatalf("LoadContainer %s: %v", exitID, err)
			}
			xtask, err := xc.Task(ctx, nil)
			if err != nil {
				t.Fatalf("Task of %s after restart: %v", exitID, err)
			}
			if st, err := xtask.Status(ctx); err != nil {
				t.Errorf("Status of %s: %v", exitID, err)
			} else if st.Status != client.Stopped || st.ExitStatus != 9 {
				t.Errorf("Status of %s after restart: %s exit %d, want stopped exit 9", exitID, st.Status, st.ExitStatus)
			}
			xstatusC, err := xtask.Wait(ctx)
			if err != nil {
				t.Fatalf("Wait %s: %v", exitID, err)
			}
			select {
			case st := <-xstatusC:
				if st.Error() != nil || st.ExitCode() != 9 {
					t.Errorf("Wait of %s after restart: exit %d, %v; want 9", exitID, st.ExitCode(), st.Error())
				}
			case <-ctx.Done():
				t.Errorf("Wait of %s after restart did not return", exitID)
			}
			if dst, err := xtask.Delete(ctx); err != nil {
				t.Errorf("Delete task %s: %v", exitID, err)
			} else if dst.ExitCode() != 9 {
				t.Errorf("Delete of %s reported exit %d, want 9", exitID, dst.ExitCode())
			}
			if err := xc.Delete(ctx, client.WithSnapshotCleanup); err != nil {
				t.Errorf("Delete container %s: %v", exitID, err)
			}
			harness.AssertNoLeftovers(t, d, exitID, e.cfg.Root, ex.shimAddr)

			if code := e.killAndDelete(ctx, t, sc, stask, sl.shimAddr); code != 137 {
				t.Errorf("Delete of %s reported exit %d, want 137", sleepID, code)
			}
		})

		t.Run("shim-sigkill", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(d.Context(context.Background()), taskTimeout)
			defer cancel()
			evctx, evcancel := context.WithCancel(ctx)
			defer evcancel()
			evs := subscribeTasks(evctx, t, d.Client)

			id := e.id("shimkill")
			lt := e.start(ctx, t, id, []string{"sleep", "100000"})
			statusC, err := lt.task.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pids := d.ShimPids(id)
			if len(pids) != 1 {
				t.Fatalf("shim processes of %s: %v, want one", id, pids)
			}
			// The sandbox must be there before, or the leak check after proves nothing.
			if left := strings.Join(d.Leftovers(id, e.cfg.Root), "\n"); !strings.Contains(left, "runsc-sandbox") {
				t.Errorf("no runsc sandbox found for the running %s:\n%s", id, left)
			}
			t.Logf("SIGKILL shim %d of %s", pids[0], id)
			if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}

			// containerd sees the shim's connection close, runs the shim's
			// `delete` action and publishes the exit it reports.
			ev, ok := evs.waitFor(ctx, 30*time.Second, func(ev taskEvent) bool {
				return ev.topic == "/tasks/exit" && ev.container == id
			})
			if !ok {
				t.Errorf("no /tasks/exit event for %s within 30s of killing its shim; its events:\n%s", id, eventList(evs.of(id)))
			} else if ev.exitStatus != 137 {
				t.Errorf("/tasks/exit of %s after its shim was killed carries status %d, want 137", id, ev.exitStatus)
			}
			select {
			case st := <-statusC:
				if st.Error() != nil {
					t.Logf("Wait of %s returned an error (the shim is gone): %v", id, st.Error())
				} else if st.ExitCode() != 137 {
					t.Errorf("Wait of %s: exit %d, want 137", id, st.ExitCode())
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Wait of %s did not return within 30s of killing its shim", id)
			}
			cleanedUp := false
			for _, l := range d.LogGrep("cleaning up after shim disconnected") {
				cleanedUp = cleanedUp || strings.Contains(l, "id="+id)
			}
			if !cleanedUp {
				t.Errorf("containerd did not log cleaning up after the shim of %s", id)
			}
			// The task is gone (containerd deleted it) or deletable.
			if st, err := lt.task.Delete(ctx); err == nil {
				if st.ExitCode() != 137 {
					t.Errorf("Delete of %s reported exit %d, want 137", id, st.ExitCode())
				}
			} else if !errdefs.IsNotFound(err) {
				t.Errorf("Delete task %s after its shim died: %v", id, err)
			}
			if _, err := lt.container.Task(ctx, nil); !errdefs.IsNotFound(err) {
				t.Errorf("task %s still exists after Delete: %v", id, err)
			}
			if err := lt.container.Delete(ctx, client.WithSnapshotCleanup); err != nil {
				t.Errorf("Delete container %s: %v", id, err)
			}
			harness.AssertNoLeftovers(t, d, id, e.cfg.Root, lt.shimAddr)
		})
	})
}
