package shim

// Fault-injection and race tests of the task service against a fake runsc
// (testdata/fake-runsc): real reaping, real events, exact event sequences.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	apitask "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/oci"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

func TestMain(m *testing.M) {
	// As in the shim: a subreaper whose SIGCHLD handler reaps everything,
	// so the fake's "sandboxes" come back to the service as exits.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "set subreaper:", err)
		os.Exit(1)
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, unix.SIGCHLD)
	go func() {
		for range sigs {
			_ = reaper.Reap()
		}
	}()
	// Probed runsc features go to a private cache, not the host's.
	cache, err := os.MkdirTemp("", "shim-test-features")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runsc.FeaturesCacheDir = cache
	// The host's /etc/containerd/runsc.toml must not change what the
	// tests see.
	defaultConfigFile = filepath.Join(cache, "no-default-runsc.toml")
	code := m.Run()
	os.RemoveAll(cache)
	os.Exit(code)
}

// recorded is one published event, reduced to what the tests compare.
type recorded struct {
	topic  string
	id     string
	execID string
	status uint32
}

func (r recorded) String() string {
	s := strings.TrimPrefix(r.topic, "/tasks/") + " " + r.id
	if r.execID != "" {
		s += "/" + r.execID
	}
	if strings.HasSuffix(r.topic, "exit") || strings.HasSuffix(r.topic, "delete") {
		s += fmt.Sprintf(" %d", r.status)
	}
	return s
}

type recPublisher struct {
	mu  sync.Mutex
	evs []recorded
}

func (p *recPublisher) Publish(_ context.Context, topic string, ev events.Event) error {
	r := recorded{topic: topic}
	switch e := ev.(type) {
	case *eventstypes.TaskCreate:
		r.id = e.ContainerID
	case *eventstypes.TaskStart:
		r.id = e.ContainerID
	case *eventstypes.TaskExit:
		r.id, r.status = e.ContainerID, e.ExitStatus
		if e.ID != e.ContainerID {
			r.execID = e.ID
		}
	case *eventstypes.TaskDelete:
		r.id, r.execID, r.status = e.ContainerID, e.ID, e.ExitStatus
	case *eventstypes.TaskExecAdded:
		r.id, r.execID = e.ContainerID, e.ExecID
	case *eventstypes.TaskExecStarted:
		r.id, r.execID = e.ContainerID, e.ExecID
	case *eventstypes.TaskPaused:
		r.id = e.ContainerID
	case *eventstypes.TaskResumed:
		r.id = e.ContainerID
	case *eventstypes.TaskOOM:
		r.id = e.ContainerID
	}
	p.mu.Lock()
	p.evs = append(p.evs, r)
	p.mu.Unlock()
	return nil
}

func (p *recPublisher) Close() error { return nil }

// of lists the events of container id (execs included), as strings.
func (p *recPublisher) of(id string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.evs {
		if e.id == id {
			out = append(out, e.String())
		}
	}
	return out
}

type faultEnv struct {
	t    *testing.T
	s    *service
	pub  *recPublisher
	ctl  string
	root string
	opts *runtimeoptions.Options
	ctx  context.Context
}

func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	fake, err := filepath.Abs("testdata/fake-runsc")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := &faultEnv{t: t, pub: &recPublisher{}, ctl: filepath.Join(dir, "ctl"), root: filepath.Join(dir, "root")}
	if err := os.MkdirAll(env.ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAKE_RUNSC_CTL", env.ctl)
	cfg := filepath.Join(dir, "runsc.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("binary_name = %q\nroot = %q\n", fake, env.root)), 0o644); err != nil {
		t.Fatal(err)
	}
	env.opts = &runtimeoptions.Options{TypeUrl: runscOptionsType, ConfigPath: cfg}
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), "fault"))
	ctx, sd := shutdown.WithShutdown(ctx)
	svc, err := NewTaskService(ctx, env.pub, sd)
	if err != nil {
		t.Fatal(err)
	}
	env.s, env.ctx = svc.(*service), ctx
	t.Cleanup(func() {
		// Nothing the fake started may outlive a test, and the service
		// must be done with their exits (it writes the exit status into
		// the bundle) before the test's directories are removed.
		env.killAll()
		env.s.mu.Lock()
		// The sandboxes, and the pod members that were started: their
		// waiters report their exits once the sandbox has gone.
		var waited []*container
		for _, c := range env.s.containers {
			if !c.init.Subcontainer() || slices.Contains(env.pub.of(c.id), "start "+c.id) {
				waited = append(waited, c)
			}
		}
		env.s.mu.Unlock()
		for _, c := range waited {
			select {
			case <-c.init.Done():
			case <-time.After(10 * time.Second):
				t.Errorf("container %s: no exit after its sandbox was killed", c.id)
			}
			c.lifecycleBarrier()
		}
		sd.Shutdown()
		cancel()
	})
	return env
}

// fault arms a fault file of the fake runsc.
func (e *faultEnv) fault(name string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.ctl, name), nil, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *faultEnv) clear(name string) { os.Remove(filepath.Join(e.ctl, name)) }

func (e *faultEnv) calls() string {
	b, _ := os.ReadFile(filepath.Join(e.ctl, "calls"))
	return string(b)
}

// livePids are the fake's sandboxes and execs still alive.
func (e *faultEnv) livePids() []int {
	var pids []int
	files, _ := filepath.Glob(filepath.Join(e.root, "fault", "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 && unix.Kill(pid, 0) == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (e *faultEnv) killAll() {
	for _, pid := range e.livePids() {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// bundle writes a bundle for id; sandbox != "" makes it a pod container
// joining that sandbox (CRI annotations), sandbox == id the pod's sandbox
// container.
func (e *faultEnv) bundle(id, sandbox string) string {
	e.t.Helper()
	b := filepath.Join(e.t.TempDir(), id)
	if err := os.MkdirAll(b, 0o755); err != nil {
		e.t.Fatal(err)
	}
	spec := specs.Spec{Version: specs.Version, Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"}, Root: &specs.Root{Path: "rootfs"}}
	switch sandbox {
	case "":
	case id:
		spec.Annotations = map[string]string{oci.ContainerTypeAnnotation: "sandbox", oci.SandboxIDAnnotation: id}
	default:
		spec.Annotations = map[string]string{oci.ContainerTypeAnnotation: "container", oci.SandboxIDAnnotation: sandbox}
	}
	j, err := json.Marshal(spec)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, "config.json"), j, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *faultEnv) createReq(id, sandbox string) *taskAPI.CreateTaskRequest {
	o, err := typeurl.MarshalAnyToProto(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return &taskAPI.CreateTaskRequest{ID: id, Bundle: e.bundle(id, sandbox), Options: o}
}

func (e *faultEnv) create(id, sandbox string) {
	e.t.Helper()
	if _, err := e.s.Create(e.ctx, e.createReq(id, sandbox)); err != nil {
		e.t.Fatalf("create %s: %v", id, err)
	}
}

func (e *faultEnv) start(id string) {
	e.t.Helper()
	if _, err := e.s.Start(e.ctx, &taskAPI.StartRequest{ID: id}); err != nil {
		e.t.Fatalf("start %s: %v", id, err)
	}
}

// kill sends sig to container id.
func (e *faultEnv) kill(id string, sig uint32) {
	e.t.Helper()
	if _, err := e.s.Kill(e.ctx, &taskAPI.KillRequest{ID: id, Signal: sig}); err != nil {
		e.t.Fatalf("kill %s: %v", id, err)
	}
}

// del deletes containers, in order.
func (e *faultEnv) del(ids ...string) {
	e.t.Helper()
	for _, id := range ids {
		if _, err := e.s.Delete(e.ctx, &taskAPI.DeleteRequest{ID: id}); err != nil {
			e.t.Fatalf("delete %s: %v", id, err)
		}
	}
}

// hung runs call, whose runsc hangs (a hang-* fault), in the background
// until the fake has logged a runsc call containing logged; cancel ends it,
// and its error arrives on the channel.
func (e *faultEnv) hung(what, logged string, call func(ctx context.Context) error) (cancel func(), done <-chan error) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	e.t.Cleanup(cancel)
	ch := make(chan error, 1)
	go func() { ch <- call(ctx) }()
	for !strings.Contains(e.calls(), logged) {
		select {
		case err := <-ch:
			e.t.Fatalf("%s returned before its runsc call: %v", what, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return cancel, ch
}

// waitEvents waits until container id has exactly want published, then
// checks that nothing more comes for a moment.
func (e *faultEnv) waitEvents(id string, want ...string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := e.pub.of(id)
		if strings.Join(got, "|") == strings.Join(want, "|") {
			break
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			e.t.Fatalf("events of %s:\n got  %q\n want %q", id, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if got := e.pub.of(id); len(got) != len(want) {
		e.t.Fatalf("events of %s after the expected ones: %q", id, got)
	}
}

func (e *faultEnv) noneLeft() {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(e.livePids()) > 0 {
		if time.Now().After(deadline) {
			e.t.Fatalf("processes left behind: %v", e.livePids())
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.s.mu.Lock()
	n := len(e.s.containers) + len(e.s.reserved)
	e.s.mu.Unlock()
	if n != 0 {
		e.t.Fatalf("%d containers still served", n)
	}
}

func wantKind(t *testing.T, err error, is func(error) bool, kind string) {
	t.Helper()
	if err == nil || !is(errgrpc.ToNative(err)) {
		t.Fatalf("want a %s error, got %v", kind, err)
	}
}

func TestFaultCreateFailsAfterSandboxStarted(t *testing.T) {
	e := newFaultEnv(t)
	e.fault("create-fail-after-sandbox")
	_, err := e.s.Create(e.ctx, e.createReq("c1", ""))
	if err == nil || !strings.Contains(err.Error(), "fake failure after the sandbox started") {
		t.Fatalf("want runsc's own error, got %v", err)
	}
	if !strings.Contains(e.calls(), "delete --force c1+") {
		t.Fatalf("the half-made sandbox was not deleted; calls:\n%s", e.calls())
	}
	e.noneLeft()
	e.waitEvents("c1")
	// The id is free again.
	e.clear("create-fail-after-sandbox")
	e.create("c1", "")
	e.waitEvents("c1", "create c1")
}

func TestFaultSandboxDiesAtCreate(t *testing.T) {
	e := newFaultEnv(t)
	e.fault("create-die")
	e.create("c1", "")
	e.waitEvents("c1", "create c1", "exit c1 7")
	r, err := e.s.Delete(e.ctx, &taskAPI.DeleteRequest{ID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitStatus != 7 || r.ExitedAt.AsTime().IsZero() {
		t.Fatalf("delete answer: status %d at %v", r.ExitStatus, r.ExitedAt.AsTime())
	}
	e.waitEvents("c1", "create c1", "exit c1 7", "delete c1 7")
	e.noneLeft()
}

func TestFaultDeleteCreatedRootContainer(t *testing.T) {
	e := newFaultEnv(t)
	e.create("c1", "")
	r, err := e.s.Delete(e.ctx, &taskAPI.DeleteRequest{ID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitStatus != 137 || r.ExitedAt.AsTime().IsZero() {
		t.Fatalf("delete answer: status %d at %v", r.ExitStatus, r.ExitedAt.AsTime())
	}
	e.waitEvents("c1", "create c1", "exit c1 137", "delete c1 137")
	e.noneLeft()
}

func TestFaultDoubleKillOfCreatedPodContainer(t *testing.T) {
	e := newFaultEnv(t)
	e.create("pod", "")
	e.start("pod")
	ctrReq := e.createReq("ctr", "pod")
	if _, err := e.s.Create(e.ctx, ctrReq); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.s.Kill(e.ctx, &taskAPI.KillRequest{ID: "ctr", Signal: uint32(syscall.SIGKILL)})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errdefs.IsNotFound(errgrpc.ToNative(err)) {
			t.Fatalf("kill: %v", err)
		}
	}
	e.waitEvents("ctr", "create ctr", "exit ctr 137")
	e.del("ctr")
	e.waitEvents("ctr", "create ctr", "exit ctr 137", "delete ctr 137")
	// The subcontainer's spec names the sandbox by its runsc id.
	spec, err := oci.LoadSpec(ctrReq.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Annotations[oci.SandboxIDAnnotation]; got != "pod+" {
		t.Fatalf("sandbox annotation for runsc = %q, want pod+", got)
	}
	e.kill("pod", uint32(syscall.SIGKILL))
	e.waitEvents("pod", "create pod", "start pod", "exit pod 137")
	e.del("pod")
	e.noneLeft()
}

// A pod container's `runsc wait` fails as soon as its dying sandbox closes
// its control socket, before the sandbox has exited (an OOM kill takes a
// while). The container's exit must come after the sandbox's: containerd
// deletes the container on its exit, and a `runsc delete` that still finds
// the sandbox alive cannot reach it and leaves the container's cgroup.
func TestFaultPodMemberExitFollowsSandboxExit(t *testing.T) {
	e := newFaultEnv(t)
	e.create("pod", "")
	e.start("pod")
	pids := e.livePids()
	if len(pids) != 1 {
		t.Fatalf("sandboxes: %v", pids)
	}
	e.create("ctr", "pod")
	e.fault("wait-sandbox-gone")
	e.start("ctr")
	e.waitEvents("ctr", "create ctr", "start ctr")
	if err := unix.Kill(pids[0], unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitEvents("pod", "create pod", "start pod", "exit pod 137")
	e.waitEvents("ctr", "create ctr", "start ctr", "exit ctr 137")
	e.pub.mu.Lock()
	var exits []string
	for _, ev := range e.pub.evs {
		if strings.HasSuffix(ev.topic, "/exit") {
			exits = append(exits, ev.String())
		}
	}
	e.pub.mu.Unlock()
	if strings.Join(exits, "|") != "exit pod 137|exit ctr 137" {
		t.Fatalf("exits published in the order %q, want the sandbox's first", exits)
	}
	e.del("ctr", "pod")
	e.noneLeft()
}

func TestFaultKillRacingExit(t *testing.T) {
	e := newFaultEnv(t)
	e.create("c1", "")
	e.start("c1")
	pids := e.livePids()
	if len(pids) != 1 {
		t.Fatalf("sandboxes: %v", pids)
	}
	// The sandbox is ending: runsc no longer has its state, the shim has
	// not reaped it yet. A kill then is of a finished process: NotFound,
	// which CRI's StopPodSandbox takes as done.
	os.Remove(filepath.Join(e.root, "fault", "c1+.pid"))
	_, err := e.s.Kill(e.ctx, &taskAPI.KillRequest{ID: "c1", Signal: uint32(syscall.SIGTERM)})
	wantKind(t, err, errdefs.IsNotFound, "NotFound")
	_ = unix.Kill(pids[0], unix.SIGTERM)
	e.waitEvents("c1", "create c1", "start c1", "exit c1 143")
	_, err = e.s.Kill(e.ctx, &taskAPI.KillRequest{ID: "c1", Signal: uint32(syscall.SIGTERM)})
	wantKind(t, err, errdefs.IsNotFound, "NotFound")
	e.del("c1")
	e.noneLeft()
}

func TestFaultDeleteFailsThenSucceeds(t *testing.T) {
	e := newFaultEnv(t)
	e.create("c1", "")
	e.start("c1")
	e.kill("c1", uint32(syscall.SIGKILL))
	e.waitEvents("c1", "create c1", "start c1", "exit c1 137")
	e.fault("delete-fail.once")
	_, err := e.s.Delete(e.ctx, &taskAPI.DeleteRequest{ID: "c1"})
	if err == nil || !strings.Contains(err.Error(), "fake delete failure") {
		t.Fatalf("want runsc's delete error, got %v", err)
	}
	st, err := e.s.State(e.ctx, &taskAPI.StateRequest{ID: "c1"})
	if err != nil || st.Status != apitask.Status_STOPPED {
		t.Fatalf("after a failed delete: %v %v", st, err)
	}
	if _, err := e.s.Delete(e.ctx, &taskAPI.DeleteRequest{ID: "c1"}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	e.waitEvents("c1", "create c1", "start c1", "exit c1 137", "delete c1 137")
	e.noneLeft()
}

func TestFaultStartKilled(t *testing.T) {
	e := newFaultEnv(t)
	e.create("c1", "")
	e.fault("start-sigkill.once")
	if _, err := e.s.Start(e.ctx, &taskAPI.StartRequest{ID: "c1"}); err == nil || !strings.Contains(err.Error(), "runsc start") {
		t.Fatalf("want a runsc start error, got %v", err)
	}
	st, err := e.s.State(e.ctx, &taskAPI.StateRequest{ID: "c1"})
	if err != nil || st.Status != apitask.Status_CREATED {
		t.Fatalf("after a killed start: %v %v", st, err)
	}
	e.del("c1")
	e.waitEvents("c1", "create c1", "exit c1 137", "delete c1 137")
	e.noneLeft()
}

func TestFaultRunscHangsPastDeadline(t *testing.T) {
	e := newFaultEnv(t)
	e.create("c1", "")
	e.start("c1")
	e.fault("hang-kill-signal")
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := e.s.Kill(ctx, &taskAPI.KillRequest{ID: "c1", Signal: uint32(syscall.SIGTERM)})
	if err == nil {
		t.Fatal("kill with a hung runsc succeeded")
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("kill returned after %v, past its deadline", d)
	}
	e.clear("hang-kill-signal")
	e.kill("c1", uint32(syscall.SIGKILL))
	e.waitEvents("c1", "create c1", "start c1", "exit c1 137")
	e.del("c1")
	e.noneLeft()
}

func TestFaultGarbageFromRunsc(t *testing.T) {
	e := newFaultEnv(t)
	e.fault("garbage-create")
	_, err := e.s.Create(e.ctx, e.createReq("c1", ""))
	if err == nil || !strings.Contains(err.Error(), "runsc create") {
		t.Fatalf("want an error naming runsc create, got %v", err)
	}
	e.noneLeft()
	e.clear("garbage-create")
	e.create("c1", "")
	e.start("c1")
	e.fault("garbage-ps")
	if _, err := e.s.Pids(e.ctx, &taskAPI.PidsRequest{ID: "c1"}); err == nil || !strings.Contains(err.Error(), "runsc ps") {
		t.Fatalf("want an error naming runsc ps, got %v", err)
	}
	e.kill("c1", uint32(syscall.SIGKILL))
	e.waitEvents("c1", "create c1", "start c1", "exit c1 137")
	e.del("c1")
	e.noneLeft()
}

func execReq(t *testing.T, id, execID string) *taskAPI.ExecProcessRequest {
	t.Helper()
	spec, err := typeurl.MarshalAnyToProto(&specs.Process{Args: []string{"true"}, Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	return &taskAPI.ExecProcessRequest{ID: id, ExecID: execID, Spec: spec}
}

func TestFaultExecStartFailsWaitReturns(t *testing.T) {
	e := newFaultEnv(t)
	e.create("c1", "")
	e.start("c1")
	if _, err := e.s.Exec(e.ctx, execReq(t, "c1", "e1")); err != nil {
		t.Fatal(err)
	}
	e.fault("exec-fail")
	if _, err := e.s.Start(e.ctx, &taskAPI.StartRequest{ID: "c1", ExecID: "e1"}); err == nil || !strings.Contains(err.Error(), "fake exec failure") {
		t.Fatalf("want runsc's exec error, got %v", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	w, err := e.s.Wait(ctx, &taskAPI.WaitRequest{ID: "c1", ExecID: "e1"})
	if err != nil {
		t.Fatalf("wait on a failed exec: %v", err)
	}
	if w.ExitStatus != 255 {
		t.Fatalf("failed exec exit status %d", w.ExitStatus)
	}
	if _, err := e.s.Delete(e.ctx, &taskAPI.DeleteRequest{ID: "c1", ExecID: "e1"}); err != nil {
		t.Fatal(err)
	}
	e.clear("exec-fail")
	e.kill("c1", uint32(syscall.SIGKILL))
	e.waitEvents("c1", "create c1", "start c1", "exec-added c1/e1", "delete c1/e1 255", "exit c1 137")
}

func TestFaultExecExitsBeforeInitExit(t *testing.T) {
	e := newFaultEnv(t)
	e.create("c1", "")
	e.start("c1")
	for _, id := range []string{"e1", "e2"} {
		if _, err := e.s.Exec(e.ctx, execReq(t, "c1", id)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Start(e.ctx, &taskAPI.StartRequest{ID: "c1", ExecID: id}); err != nil {
			t.Fatal(err)
		}
	}
	// The sandbox and its execs end together, the sandbox first.
	sandbox, _ := os.ReadFile(filepath.Join(e.root, "fault", "c1+.pid"))
	var pid int
	if _, err := fmt.Sscan(string(sandbox), &pid); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	e.killAll()
	deadline := time.Now().Add(10 * time.Second)
	for len(e.pub.of("c1")) < 9 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := e.pub.of("c1")
	if len(got) != 9 || !strings.HasPrefix(got[8], "exit c1 ") {
		t.Fatalf("init's exit must come after its execs' exits: %q", got)
	}
}

func TestInvalidIDsRejected(t *testing.T) {
	e := newFaultEnv(t)
	req := e.createReq("ok", "")
	req.ID = "../../../../tmp/x"
	_, err := e.s.Create(e.ctx, req)
	wantKind(t, err, errdefs.IsInvalidArgument, "InvalidArgument")

	e.create("c1", "")
	e.start("c1")
	for _, id := range []string{"../../../../tmp/pwnedB", "a/b", "..", "x\x00y"} {
		_, err := e.s.Exec(e.ctx, execReq(t, "c1", id))
		wantKind(t, err, errdefs.IsInvalidArgument, "InvalidArgument for exec id "+id)
	}
	if _, err := os.Stat("/tmp/pwnedB.ipid"); err == nil {
		t.Fatal("/tmp/pwnedB.ipid written")
	}
	if !strings.Contains(e.calls(), "start c1+") || strings.Contains(e.calls(), "exec ") {
		t.Fatalf("runsc calls:\n%s", e.calls())
	}
}

// A pod's only member pauses (with the pod's idle pause process: runsc
// pauses the whole sandbox); with a second member, neither member nor the
// pod's own container can.
func TestPauseOfPodMember(t *testing.T) {
	e := newFaultEnv(t)
	e.create("pod", "")
	e.start("pod")
	e.create("ctr", "pod")
	e.start("ctr")
	_, err := e.s.Pause(e.ctx, &taskAPI.PauseRequest{ID: "pod"})
	wantKind(t, err, errdefs.IsFailedPrecondition, "FailedPrecondition for the pod's container")
	if !strings.Contains(err.Error(), `container "ctr" runs in the same gVisor sandbox, and runsc can only pause the whole sandbox`) {
		t.Fatalf("pause pod: %v", err)
	}
	if _, err := e.s.Pause(e.ctx, &taskAPI.PauseRequest{ID: "ctr"}); err != nil {
		t.Fatalf("pause the lone member: %v", err)
	}
	if _, err := e.s.Resume(e.ctx, &taskAPI.ResumeRequest{ID: "ctr"}); err != nil {
		t.Fatalf("resume the lone member: %v", err)
	}
	if !strings.Contains(e.calls(), "pause ctr+") || !strings.Contains(e.calls(), "resume ctr+") {
		t.Fatalf("runsc calls:\n%s", e.calls())
	}
	e.create("ctr2", "pod")
	for _, id := range []string{"ctr", "ctr2", "pod"} {
		_, err := e.s.Pause(e.ctx, &taskAPI.PauseRequest{ID: id})
		wantKind(t, err, errdefs.IsFailedPrecondition, "FailedPrecondition for "+id)
		if !strings.Contains(err.Error(), "runsc can only pause the whole sandbox") {
			t.Fatalf("pause %s: %v", id, err)
		}
	}
	if strings.Count(e.calls(), "pause ") != 1 {
		t.Fatalf("runsc pause ran again:\n%s", e.calls())
	}
	e.killAll()
}

func TestUnsupportedRunscIsNotImplemented(t *testing.T) {
	err := errToTTRPC(fmt.Errorf("checkpoint %q: %w", "c1", runsc.ErrUnsupported))
	wantKind(t, err, errdefs.IsNotImplemented, "NotImplemented")
	if !strings.Contains(err.Error(), runsc.ErrUnsupported.Error()) {
		t.Fatalf("message lost: %v", err)
	}
}

// The check that a pod's sandbox holds nothing but the container to pause
// or checkpoint, and a Create joining that sandbox, cannot interleave: a
// pause is refused while a member's Create is in progress, a Create is
// refused while the sandbox is paused (until its resume) or a checkpoint
// runs.
func TestWholeSandboxOpsExcludeJoiningCreate(t *testing.T) {
	e := newFaultEnv(t)
	e.create("pod", "pod")
	e.start("pod")
	e.create("ctr", "pod")
	e.start("ctr")

	// A member's Create hangs in runsc create until it is cancelled.
	e.fault("hang-create.once")
	cancel, created := e.hung("create ctr2", " ctr2+", func(ctx context.Context) error {
		_, err := e.s.Create(ctx, e.createReq("ctr2", "pod"))
		return err
	})
	_, err := e.s.Pause(e.ctx, &taskAPI.PauseRequest{ID: "ctr"})
	wantKind(t, err, errdefs.IsFailedPrecondition, "FailedPrecondition for a pause while a member is being created")
	if !strings.Contains(err.Error(), `container "ctr2" is being created in the same gVisor sandbox "pod"`) {
		t.Fatalf("pause ctr: %v", err)
	}
	cancel()
	if err := <-created; err == nil {
		t.Fatal("create with a hung runsc succeeded")
	}

	// Paused: no container joins until the resume.
	if _, err := e.s.Pause(e.ctx, &taskAPI.PauseRequest{ID: "ctr"}); err != nil {
		t.Fatalf("pause the lone member: %v", err)
	}
	_, err = e.s.Create(e.ctx, e.createReq("ctr3", "pod"))
	wantKind(t, err, errdefs.IsFailedPrecondition, "FailedPrecondition for a create into a paused sandbox")
	if !strings.Contains(err.Error(), `its pod's gVisor sandbox "pod" is paused (container "ctr"); resume it first`) {
		t.Fatalf("create ctr3: %v", err)
	}
	if strings.Contains(e.calls(), " ctr3+") {
		t.Fatalf("runsc ran for the refused create:\n%s", e.calls())
	}
	if _, err := e.s.Resume(e.ctx, &taskAPI.ResumeRequest{ID: "ctr"}); err != nil {
		t.Fatal(err)
	}
	e.create("ctr3", "pod")
	e.start("ctr3")
	for id, paused := range map[string][]string{"ctr": {"paused ctr", "resumed ctr"}, "ctr3": nil} {
		e.kill(id, 9)
		e.waitEvents(id, slices.Concat([]string{"create " + id, "start " + id}, paused, []string{"exit " + id + " 137"})...)
		e.del(id)
	}

	// A checkpoint of the pod's sandbox container, alone in it, is running.
	e.fault("hang-checkpoint.once")
	ccancel, done := e.hung("checkpoint pod", "checkpoint ", func(ctx context.Context) error {
		_, err := e.s.Checkpoint(ctx, checkpointReq(t, "pod", t.TempDir(), &options.CheckpointOptions{Exit: true}))
		return err
	})
	_, err = e.s.Create(e.ctx, e.createReq("ctr4", "pod"))
	wantKind(t, err, errdefs.IsFailedPrecondition, "FailedPrecondition for a create during a checkpoint")
	if !strings.Contains(err.Error(), `its pod's gVisor sandbox "pod" is being paused or checkpointed (container "pod")`) {
		t.Fatalf("create ctr4: %v", err)
	}
	ccancel()
	if err := <-done; err == nil {
		t.Fatal("checkpoint with a hung runsc succeeded")
	}
	e.create("ctr4", "pod")
	e.del("ctr4")
	e.s.mu.Lock()
	held, joining := len(e.s.held), len(e.s.reserved)
	e.s.mu.Unlock()
	if held != 0 || joining != 0 {
		t.Fatalf("holds left: %d held, %d joining", held, joining)
	}
}

// countedShutdown counts the shutdowns asked of the shim.
type countedShutdown struct {
	shutdown.Service
	mu sync.Mutex
	n  int
}

func (c *countedShutdown) Shutdown() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	c.Service.Shutdown()
}

func (c *countedShutdown) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// A Shutdown that comes while a Create is in progress and no container is
// registered is decided by the Creates in progress, as in runc's shim (its
// Shutdown waits for them): the shim shuts down when the last one fails,
// and stays up when one registered a container.
func TestShutdownDuringCreate(t *testing.T) {
	hungCreate := func(e *faultEnv, id string) (cancel func(), done <-chan error) {
		e.fault("hang-create.once")
		return e.hung("create "+id, " "+id, func(ctx context.Context) error {
			_, err := e.s.Create(ctx, e.createReq(id, ""))
			return err
		})
	}
	shutdownNow := func(t *testing.T, e *faultEnv) {
		t.Helper()
		if _, err := e.s.Shutdown(e.ctx, &taskAPI.ShutdownRequest{}); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	}
	counted := func(e *faultEnv) *countedShutdown {
		sd := &countedShutdown{Service: e.s.shutdown}
		e.s.shutdown = sd
		return sd
	}

	t.Run("create-fails", func(t *testing.T) {
		e := newFaultEnv(t)
		sd := counted(e)
		cancel, created := hungCreate(e, "solo")
		shutdownNow(t, e)
		if n := sd.count(); n != 0 {
			t.Fatalf("shut down %d times while a Create was in progress", n)
		}
		cancel()
		if err := <-created; err == nil {
			t.Fatal("create with a hung runsc succeeded")
		}
		if n := sd.count(); n != 1 {
			t.Fatalf("shut down %d times after the only Create failed, want 1", n)
		}
	})

	t.Run("create-registers", func(t *testing.T) {
		e := newFaultEnv(t)
		sd := counted(e)
		cancel, created := hungCreate(e, "first")
		shutdownNow(t, e)
		e.create("second", "")
		cancel()
		if err := <-created; err == nil {
			t.Fatal("create with a hung runsc succeeded")
		}
		if n := sd.count(); n != 0 {
			t.Fatalf("shut down %d times with container second registered", n)
		}
		e.del("second")
		shutdownNow(t, e)
		if n := sd.count(); n != 1 {
			t.Fatalf("shut down %d times once no container was left, want 1", n)
		}
	})
}
