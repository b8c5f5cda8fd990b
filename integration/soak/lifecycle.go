package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

// env is what a lifecycle needs.
type env struct {
	d      *harness.Daemon
	img    client.Image
	cfg    harness.RunscConfig
	opts   *runtimeoptions.Options
	prefix string
}

// shape is one kind of container lifecycle. run returns the shim socket it
// saw ("" if none) and an error describing any wrong result.
type shape struct {
	name string
	// id returns the container id for iteration i.
	id  func(e *env, i int) string
	run func(ctx context.Context, e *env, id string) (shimAddr string, err error)
}

// eofWait is how long a process whose stdin is at EOF may take to exit
// before the lifecycle calls CloseIO and counts a failure.
var eofWait = time.Second

var shapes = []shape{
	{"plain", fixedID("plain"), runPlain},
	{"exec", fixedID("exec"), runExec},
	{"tty", fixedID("tty"), runTTY},
	{"unique", func(e *env, i int) string { return fmt.Sprintf("%s-u%07d", e.prefix, i) }, runUnique},
}

// fixedID reuses one id for every iteration of a shape: deleting a
// container must free its id.
func fixedID(name string) func(e *env, i int) string {
	return func(e *env, _ int) string { return e.prefix + "-" + name }
}

func (e *env) run(ctx context.Context, o harness.RunOptions) (harness.RunResult, error) {
	o.Image = e.img
	o.Runtime = harness.RuntimeName
	o.RuntimeOptions = e.opts
	return e.d.Run(ctx, o)
}

// runPlain: output on both streams and a non-zero exit status.
func runPlain(ctx context.Context, e *env, id string) (string, error) {
	res, err := e.run(ctx, harness.RunOptions{ID: id, Args: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	if err != nil {
		return res.ShimAddress, err
	}
	var errs []error
	if res.ExitStatus != 3 {
		errs = append(errs, fmt.Errorf("exit status %d, want 3", res.ExitStatus))
	}
	if res.Stdout != "out\n" {
		errs = append(errs, fmt.Errorf("stdout %q, want %q", res.Stdout, "out\n"))
	}
	if res.Stderr != "err\n" {
		errs = append(errs, fmt.Errorf("stderr %q, want %q", res.Stderr, "err\n"))
	}
	return res.ShimAddress, errors.Join(errs...)
}

// runTTY: a container with a terminal.
func runTTY(ctx context.Context, e *env, id string) (string, error) {
	res, err := e.run(ctx, harness.RunOptions{ID: id, TTY: true,
		Args: []string{"sh", "-c", "test -t 0 && test -t 1 && echo tty-ok; exit 7"}})
	if err != nil {
		return res.ShimAddress, err
	}
	var errs []error
	if res.ExitStatus != 7 {
		errs = append(errs, fmt.Errorf("exit status %d, want 7 (output %q)", res.ExitStatus, res.Stdout))
	}
	if !strings.Contains(res.Stdout, "tty-ok") {
		errs = append(errs, fmt.Errorf("tty output %q lacks %q: stdin/stdout are not a terminal or output was lost", res.Stdout, "tty-ok"))
	}
	return res.ShimAddress, errors.Join(errs...)
}

// runUnique: init reads its stdin to EOF, under a fresh id.
func runUnique(ctx context.Context, e *env, id string) (string, error) {
	const in = "hello soak\nrest of stdin\n"
	const want = "got:hello soak\nrest of stdin\n"
	res, err := e.run(ctx, harness.RunOptions{ID: id, Stdin: strings.NewReader(in),
		Args: []string{"sh", "-c", `read line; echo "got:$line"; cat; exit 0`}})
	if err != nil {
		return res.ShimAddress, err
	}
	var errs []error
	if res.ExitStatus != 0 {
		errs = append(errs, fmt.Errorf("exit status %d, want 0 (stderr %q)", res.ExitStatus, res.Stderr))
	}
	if res.Stdout != want {
		errs = append(errs, fmt.Errorf("stdout %q, want %q", res.Stdout, want))
	}
	return res.ShimAddress, errors.Join(errs...)
}

// runExec: a detached container, three execs (stdin at EOF, piped stdin
// closed with CloseIO, tty), SIGKILL, delete. The shim's fds must be back
// at their level after the first exec once the last one is deleted.
func runExec(ctx context.Context, e *env, id string) (shimAddr string, retErr error) {
	c, err := e.d.Client.NewContainer(ctx, id,
		client.WithImage(e.img),
		client.WithNewSnapshot(id+"-snapshot", e.img),
		client.WithRuntime(harness.RuntimeName, e.opts),
		client.WithNewSpec(oci.WithImageConfig(e.img), oci.WithProcessArgs("sh", "-c", "echo ready; exec sleep 3600")),
	)
	if err != nil {
		return "", fmt.Errorf("NewContainer: %w", err)
	}
	var out, errb harness.Buffer
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &errb)))
	if err != nil {
		return "", fmt.Errorf("NewTask: %w", err)
	}
	shimAddr, _ = e.d.ShimAddress(id)
	statusC, err := task.Wait(ctx)
	if err != nil {
		return shimAddr, fmt.Errorf("Wait: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return shimAddr, fmt.Errorf("Start: %w", err)
	}
	if !waitFor(ctx, 15*time.Second, func() bool { return out.String() == "ready\n" }) {
		return shimAddr, fmt.Errorf("init printed %q (stderr %q) within 15s of Start, want %q", out.String(), errb.String(), "ready\n")
	}
	shimPid := 0
	if pids := e.d.ShimPids(id); len(pids) == 1 {
		shimPid = pids[0]
	} else {
		return shimAddr, fmt.Errorf("want one shim process for %s, found pids %v", id, pids)
	}

	var errs []error
	// Stdin at EOF: a client whose stdin is an empty reader closes its end
	// of the FIFO before the shim opens it, so the process sees EOF at
	// CloseIO (exactly as with containerd's runc shim: measured 10 of 10
	// on 1.6 and 2.4). What must hold: CloseIO ends it, output arrives.
	r, err := execRun(ctx, c, task, "eof", strings.NewReader(""), eofWait, false,
		"sh", "-c", "cat; echo exec-out; echo exec-err >&2; exit 5")
	if err != nil {
		errs = append(errs, fmt.Errorf("exec with stdin at EOF: %w", err))
	}
	if err == nil && (r.status != 5 || r.stdout != "exec-out\n" || r.stderr != "exec-err\n") {
		errs = append(errs, fmt.Errorf("exec with stdin at EOF: status %d stdout %q stderr %q, want 5 %q %q",
			r.status, r.stdout, r.stderr, "exec-out\n", "exec-err\n"))
	}
	fds1, threads1 := fdTargets(shimPid), countThreads(shimPid)

	if err := execPiped(ctx, c, task); err != nil {
		errs = append(errs, fmt.Errorf("exec with piped stdin: %w", err))
	}
	r, err = execRun(ctx, c, task, "tty", nil, 0, true, "sh", "-c", "test -t 0 && test -t 1 && echo tty-ok; exit 4")
	if err != nil {
		errs = append(errs, fmt.Errorf("tty exec: %w", err))
	} else if r.status != 4 || !strings.Contains(r.stdout, "tty-ok") {
		errs = append(errs, fmt.Errorf("tty exec: status %d output %q, want 4 and %q", r.status, r.stdout, "tty-ok"))
	}
	if fds1 != nil {
		var fds3 map[string]string
		if !waitFor(ctx, 3*time.Second, func() bool { fds3 = fdTargets(shimPid); return len(fds3) <= len(fds1) }) {
			errs = append(errs, fmt.Errorf("leak: shim pid %d had %d fds (%d threads) after the first exec and %d (%d threads) 3s after two more execs were deleted; new fds: %s",
				shimPid, len(fds1), threads1, len(fds3), countThreads(shimPid), fdDiff(fds1, fds3)))
		}
	}
	if st, err := task.Status(ctx); err != nil {
		errs = append(errs, fmt.Errorf("Status after execs: %w", err))
	} else if st.Status != client.Running {
		errs = append(errs, fmt.Errorf("init is %s after the execs, want running", st.Status))
	}

	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		return shimAddr, errors.Join(append(errs, fmt.Errorf("Kill: %w", err))...)
	}
	select {
	case st := <-statusC:
		if st.Error() != nil {
			errs = append(errs, fmt.Errorf("exit after SIGKILL: %w", st.Error()))
		} else if st.ExitCode() != 137 {
			errs = append(errs, fmt.Errorf("exit status %d after SIGKILL, want 137", st.ExitCode()))
		}
	case <-ctx.Done():
		return shimAddr, errors.Join(append(errs, fmt.Errorf("init did not exit after SIGKILL: %w", ctx.Err()))...)
	}
	st, err := task.Delete(ctx)
	if err != nil {
		return shimAddr, errors.Join(append(errs, fmt.Errorf("delete task: %w", err))...)
	}
	if st.ExitCode() != 137 {
		errs = append(errs, fmt.Errorf("Delete reported exit status %d, want 137", st.ExitCode()))
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		errs = append(errs, fmt.Errorf("delete container: %w", err))
	}
	return shimAddr, errors.Join(errs...)
}

type execResult struct {
	stdout, stderr string
	status         uint32
	// neededCloseIO: the process did not see the end of its stdin within
	// eofWait and exited only after CloseIO.
	neededCloseIO bool
}

func processSpecArgs(ctx context.Context, c client.Container, tty bool, args ...string) (*specs.Process, error) {
	spec, err := c.Spec(ctx)
	if err != nil {
		return nil, err
	}
	p := *spec.Process
	p.Args = args
	p.Terminal = tty
	return &p, nil
}

// execRun runs args as exec id to completion and deletes it. If eofWait > 0
// and the process has not exited after it, execRun calls CloseIO and goes
// on waiting (res.neededCloseIO).
func execRun(ctx context.Context, c client.Container, task client.Task, id string, stdin io.Reader, eofWait time.Duration, tty bool, args ...string) (execResult, error) {
	var res execResult
	pspec, err := processSpecArgs(ctx, c, tty, args...)
	if err != nil {
		return res, err
	}
	var stdout, stderr harness.Buffer
	opts := []cio.Opt{cio.WithStreams(stdin, &stdout, &stderr)}
	if tty {
		opts = []cio.Opt{cio.WithStreams(stdin, &stdout, nil), cio.WithTerminal}
	}
	p, err := task.Exec(ctx, id, pspec, cio.NewCreator(opts...))
	if err != nil {
		return res, fmt.Errorf("Exec: %w", err)
	}
	statusC, err := p.Wait(ctx)
	if err != nil {
		_, _ = p.Delete(ctx)
		return res, fmt.Errorf("Wait: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		_, _ = p.Delete(ctx)
		return res, fmt.Errorf("Start: %w", err)
	}
	var eofC <-chan time.Time
	if eofWait > 0 {
		t := time.NewTimer(eofWait)
		defer t.Stop()
		eofC = t.C
	}
wait:
	select {
	case st := <-statusC:
		if st.Error() != nil {
			_, _ = p.Delete(ctx, client.WithProcessKill)
			return res, fmt.Errorf("exit: %w", st.Error())
		}
		res.status = st.ExitCode()
	case <-eofC:
		// The process still waits for stdin: give it EOF with CloseIO
		// so that the rest of the lifecycle can go on.
		res.neededCloseIO = true
		eofC = nil
		if err := p.CloseIO(ctx, client.WithStdinCloser); err != nil {
			return res, fmt.Errorf("CloseIO after %s without EOF: %w", eofWait, err)
		}
		goto wait
	case <-ctx.Done():
		return res, fmt.Errorf("did not exit: %w (stdout %q, stderr %q)", ctx.Err(), stdout.String(), stderr.String())
	}
	st, err := p.Delete(ctx)
	res.stdout, res.stderr = stdout.String(), stderr.String()
	if err != nil {
		return res, fmt.Errorf("Delete: %w", err)
	}
	if st.ExitCode() != res.status {
		return res, fmt.Errorf("Wait said exit %d, Delete said %d", res.status, st.ExitCode())
	}
	return res, nil
}

// execPiped runs cat with a stdin pipe that stays open: it echoes what is
// written, and only CloseIO gives it EOF.
func execPiped(ctx context.Context, c client.Container, task client.Task) error {
	const input = "piped line one\npiped line two"
	pspec, err := processSpecArgs(ctx, c, false, "cat")
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	var stdout, stderr harness.Buffer
	p, err := task.Exec(ctx, "pipe", pspec, cio.NewCreator(cio.WithStreams(pr, &stdout, &stderr)))
	if err != nil {
		return fmt.Errorf("Exec: %w", err)
	}
	statusC, err := p.Wait(ctx)
	if err != nil {
		_, _ = p.Delete(ctx)
		return fmt.Errorf("Wait: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		_, _ = p.Delete(ctx)
		return fmt.Errorf("Start: %w", err)
	}
	go func() { _, _ = io.WriteString(pw, input) }()
	var errs []error
	if !waitFor(ctx, 10*time.Second, func() bool { return stdout.String() == input }) {
		errs = append(errs, fmt.Errorf("cat echoed %q within 10s, want %q", stdout.String(), input))
	}
	if err := p.CloseIO(ctx, client.WithStdinCloser); err != nil {
		errs = append(errs, fmt.Errorf("CloseIO: %w", err))
	}
	select {
	case st := <-statusC:
		if st.ExitCode() != 0 {
			errs = append(errs, fmt.Errorf("cat exited %d, want 0 (stderr %q)", st.ExitCode(), stderr.String()))
		}
	case <-time.After(15 * time.Second):
		errs = append(errs, errors.New("cat did not exit within 15s of CloseIO: it never saw EOF"))
		_ = p.Kill(ctx, syscall.SIGKILL)
		select {
		case <-statusC:
		case <-ctx.Done():
		}
	}
	pw.Close()
	if _, err := p.Delete(ctx); err != nil {
		errs = append(errs, fmt.Errorf("Delete: %w", err))
	}
	if got := stdout.String(); got != input {
		errs = append(errs, fmt.Errorf("cat output %q, want %q", got, input))
	}
	return errors.Join(errs...)
}

// removeContainer kills and deletes task and container id if they still
// exist, after a failed lifecycle, so the next one can reuse the id.
func removeContainer(e *env, id string) error {
	ctx, cancel := context.WithTimeout(e.d.Context(context.Background()), 30*time.Second)
	defer cancel()
	c, err := e.d.Client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load container: %w", err)
	}
	var errs []error
	if task, err := c.Task(ctx, nil); err == nil {
		_ = task.Kill(ctx, syscall.SIGKILL)
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete task: %w", err))
		}
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete container: %w", err))
	}
	return errors.Join(errs...)
}

// waitFor polls cond every 20ms until it holds, d passes or ctx ends.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countFDs returns the number of open fds of pid, -1 if unreadable.
func countFDs(pid int) int {
	if pid <= 0 {
		return -1
	}
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return -1
	}
	return len(ents)
}

// countThreads returns the Threads: line of /proc/<pid>/status, -1 if
// unreadable.
func countThreads(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// fdTargets maps the open fds of pid to what they point at (nil if
// unreadable).
func fdTargets(pid int) map[string]string {
	if pid <= 0 {
		return nil
	}
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := make(map[string]string, len(ents))
	for _, e := range ents {
		t, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out[e.Name()] = t
	}
	return out
}

// fdDiff describes the fds of now that are not in before.
func fdDiff(before, now map[string]string) string {
	var out []string
	for fd, t := range now {
		if before[fd] != t {
			out = append(out, fd+" -> "+t)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "(none: the same fds were reused)"
	}
	return strings.Join(out, ", ")
}
