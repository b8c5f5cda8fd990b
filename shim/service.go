package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	eventstypes "github.com/containerd/containerd/api/events"
	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/task"
	runcshim "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/runc"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/proc"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// service is the Task API (v3, and v2 through the adapter) of one shim
// process, which serves one container or all containers of a pod.
type service struct {
	ctx      context.Context
	events   *eventQueue
	shutdown shutdown.Service
	platform stdio.Platform

	mu         sync.Mutex
	containers map[string]*container
	// running maps the host pid the shim reaps to the process it ends.
	running map[int]runningProc
	// early holds exits reaped while a process was being created and was
	// not yet in running; creating counts those creations.
	early    map[int]runc.Exit
	creating int
	// reserved are the ids of Creates in progress, each with the gVisor
	// sandbox it joins ("" until known, and for a container that starts
	// its own).
	reserved map[string]string
	// shutdownPending is a Shutdown that came while Creates were in
	// progress and no container was registered: the shim shuts down when
	// the last of them ends without registering one (runc's shim holds
	// its Shutdown until such a Create is done).
	shutdownPending bool
	// pods are the sandboxes this shim started, by sandbox (root container) id.
	pods map[string]*pod
	// held are the sandboxes a whole-sandbox operation holds (a pause
	// until its resume, a checkpoint while it runs): see holdWholeSandbox.
	held map[string]*sandboxHold
}

// sandboxHold is what holds a gVisor sandbox: busy pauses and checkpoints
// in progress (the last one asked for container by), and the container
// whose pause froze it until its resume.
type sandboxHold struct {
	busy       int
	by, paused string
}

// NewTaskService returns the task service and starts its exit and event loops.
func NewTaskService(ctx context.Context, publisher shim.Publisher, sd shutdown.Service) (shim.TTRPCService, error) {
	platform, err := runcshim.NewPlatform()
	if err != nil {
		return nil, fmt.Errorf("create console platform: %w", err)
	}
	s := &service{
		ctx:        ctx,
		events:     newEventQueue(ctx, publisher),
		shutdown:   sd,
		platform:   platform,
		containers: make(map[string]*container),
		running:    make(map[int]runningProc),
		early:      make(map[int]runc.Exit),
		reserved:   make(map[string]string),
		pods:       make(map[string]*pod),
		held:       make(map[string]*sandboxHold),
	}
	runc.Monitor = reaper.Default
	go s.processExits(reaper.Default.Subscribe())
	sd.RegisterCallback(func(context.Context) error {
		s.events.close(3 * time.Second)
		// The socket goes with the shim: containerd's cleanup reads it from
		// the sandbox bundle, which may be gone by now.
		if address := os.Getenv(socketEnv); address != "" {
			_ = shim.RemoveSocket(address)
		}
		return platform.Close()
	})
	return s, nil
}

// RegisterTTRPC serves containerd.task.v3.Task and, for containerd 1.6 to
// 2.2, containerd.task.v2.Task on the same server.
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, s)
	taskv2.RegisterTTRPCTaskService(server, newTaskV2Adapter(s))
	return nil
}

// errToTTRPC maps an error to a status containerd turns back into its errdefs kind.
func errToTTRPC(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, runsc.ErrUnsupported) && !errdefs.IsNotImplemented(err) {
		err = fmt.Errorf("%w: %w", err, errdefs.ErrNotImplemented)
	}
	return errgrpc.ToGRPC(err)
}

func (s *service) container(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

func (s *service) process(id, execID string) (*container, proc.Process, error) {
	c, err := s.container(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.process(execID)
	if err != nil {
		return nil, nil, err
	}
	return c, p, nil
}

// beginCreate makes exits reaped from now on wait in early until the new
// process is registered with endCreate.
func (s *service) beginCreate() {
	s.mu.Lock()
	s.creating++
	s.mu.Unlock()
}

// runningProc is a process the shim waits for, and its container.
type runningProc struct {
	c *container
	p proc.Process
}

// endCreate registers p of c (if it got a pid) and returns the exit it
// already had.
func (s *service) endCreate(c *container, p proc.Process) (runc.Exit, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creating--
	var (
		e      runc.Exit
		exited bool
	)
	if p != nil && p.Pid() > 0 {
		if e, exited = s.early[p.Pid()]; !exited {
			s.running[p.Pid()] = runningProc{c: c, p: p}
		}
		delete(s.early, p.Pid())
	}
	if s.creating == 0 {
		clear(s.early)
	}
	return e, exited
}

func (s *service) processExits(ec chan runc.Exit) {
	for e := range ec {
		s.mu.Lock()
		rp, ok := s.running[e.Pid]
		if ok {
			delete(s.running, e.Pid)
		} else if s.creating > 0 {
			s.early[e.Pid] = e
		}
		s.mu.Unlock()
		if ok {
			go s.handleExit(rp.c, rp.p, e.Status)
		}
	}
}

// handleExit records an exit and publishes /tasks/exit, once per process,
// after the process's /tasks/create or /tasks/start (those paths hold the
// container's lifecycle lock) and, for a container's init, after the exits
// of its execs (as the runc shim orders them).
func (s *service) handleExit(c *container, p proc.Process, status int) {
	if p == proc.Process(c.init) {
		c.waitExecs(execExitWait)
	}
	// Before the exit is visible (Wait, /tasks/exit): containerd's client
	// closes its end of the stdout FIFO as soon as it sees it.
	p.DrainOutput()
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if !p.SetExited(status) {
		return
	}
	if p == proc.Process(c.init) {
		s.initExited(c, status)
	}
	s.events.publish(runtime.TaskExitEventTopic, &eventstypes.TaskExit{
		ContainerID: c.id,
		ID:          p.ID(),
		Pid:         uint32(p.Pid()),
		ExitStatus:  uint32(status),
		ExitedAt:    protobuf.ToTimestamp(p.ExitedAt()),
	})
}

// execExitWait bounds how long a container's exit waits for its execs'
// exits: they end with the container (runsc exec exits when its process
// does), so only a wedged runsc makes it expire.
var execExitWait = 5 * time.Second

// initExited does what a container's end needs before /tasks/exit: the OOM
// event if the host killed the sandbox for memory (containerd, and CRI's
// OOMKilled reason, must see it first), the exit status recorded in the
// bundle for the `delete` action, and a gone sandbox's cgroup left alone.
func (s *service) initExited(c *container, status int) {
	if c.pod != nil {
		if c.pod.oomKills() > c.oomBase {
			s.events.publish(runtime.TaskOOMEventTopic, &eventstypes.TaskOOM{ContainerID: c.id})
		}
		if !c.init.Subcontainer() {
			c.pod.exited()
		}
	}
	e := runc.Exit{Pid: c.init.Pid(), Status: status, Timestamp: c.init.ExitedAt()}
	if err := runcshim.WriteExitStatus(c.bundle, e); err != nil {
		log.G(s.ctx).WithError(err).Warn("record exit status in bundle")
	}
}

func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	if err := validateID("container", r.ID); err != nil {
		return nil, errToTTRPC(err)
	}
	if err := s.reserve(r.ID); err != nil {
		return nil, errToTTRPC(err)
	}
	registered := false
	defer func() {
		if !registered {
			s.unreserve(r.ID)
		}
	}()
	c, err := newContainer(ctx, s.platform, ns, r)
	if err != nil {
		log.G(ctx).WithError(err).WithField("id", r.ID).Error("create container")
		return nil, errToTTRPC(err)
	}
	// Held until /tasks/create is queued: an exit reaped meanwhile (a
	// sandbox that dies at once) is published after it.
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if r.Checkpoint != "" && c.init.Subcontainer() {
		return nil, errToTTRPC(fmt.Errorf("create %q from checkpoint %q: it would join gVisor sandbox %q, and runsc restores only a whole sandbox: %w",
			r.ID, r.Checkpoint, c.sandboxID, errdefs.ErrFailedPrecondition))
	}
	if r.Checkpoint != "" {
		if err := checkRestorable(r.ID, r.Checkpoint); err != nil {
			return nil, errToTTRPC(err)
		}
	}
	if c.init.Subcontainer() {
		if err := s.beginJoin(c); err != nil {
			return nil, errToTTRPC(err)
		}
	}
	if err := s.joinPod(c); err != nil {
		return nil, errToTTRPC(fmt.Errorf("create container %q: %w", r.ID, err))
	}
	s.beginCreate()
	err = c.init.Create(ctx)
	var (
		early  runc.Exit
		exited bool
	)
	switch {
	case err != nil || c.init.Subcontainer():
		// A subcontainer's pid is the sandbox's: its exit comes from runsc wait.
		s.endCreate(nil, nil)
	default:
		// The sandbox's cgroup is known before its exit can be handled.
		s.newPod(ctx, c)
		early, exited = s.endCreate(c, c.init)
	}
	if err != nil {
		s.leavePod(c)
		log.G(ctx).WithError(err).WithField("id", r.ID).Error("create container")
		return nil, errToTTRPC(err)
	}
	s.mu.Lock()
	s.containers[r.ID] = c
	s.endReservationLocked(r.ID)
	s.mu.Unlock()
	registered = true

	s.events.publish(runtime.TaskCreateEventTopic, &eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO: &eventstypes.TaskIO{
			Stdin:    r.Stdin,
			Stdout:   r.Stdout,
			Stderr:   r.Stderr,
			Terminal: r.Terminal,
		},
		Checkpoint: r.Checkpoint,
		Pid:        uint32(c.init.Pid()),
	})
	if exited {
		// handleExit takes the lifecycle lock after we release it.
		go s.handleExit(c, c.init, early.Status)
	}
	return &taskAPI.CreateTaskResponse{Pid: uint32(c.init.Pid())}, nil
}

// reserve claims a container id for a Create in progress.
func (s *service) reserve(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, reserved := s.reserved[id]; reserved || s.containers[id] != nil {
		return fmt.Errorf("container %q: %w", id, errdefs.ErrAlreadyExists)
	}
	s.reserved[id] = ""
	return nil
}

func (s *service) unreserve(id string) {
	s.mu.Lock()
	s.endReservationLocked(id)
	s.mu.Unlock()
}

// endReservationLocked ends the Create of id, and carries out a pending
// Shutdown once no Create is in progress and no container is left. s.mu
// is held.
func (s *service) endReservationLocked(id string) {
	delete(s.reserved, id)
	if !s.shutdownPending || len(s.reserved) > 0 {
		return
	}
	s.shutdownPending = false
	if len(s.containers) == 0 {
		s.shutdown.Shutdown()
	}
}

// validateID rejects an id that could not safely become a path or a runsc
// argument (containerd's own identifier rules).
func validateID(kind, id string) error {
	if err := identifiers.Validate(id); err != nil {
		return fmt.Errorf("%s id %q: %v: %w", kind, id, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	c, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	if r.ExecID != "" {
		return s.startExec(ctx, c, p)
	}
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if err := p.Start(ctx); err != nil {
		return nil, errToTTRPC(fmt.Errorf("start container %q: %w", r.ID, err))
	}
	s.events.publish(runtime.TaskStartEventTopic, &eventstypes.TaskStart{
		ContainerID: r.ID,
		Pid:         uint32(p.Pid()),
	})
	if c.init.Subcontainer() {
		go s.waitSubcontainer(c)
	}
	return &taskAPI.StartResponse{Pid: uint32(p.Pid())}, nil
}

// waitSubcontainer turns `runsc wait` on a container that joined its pod's
// sandbox into its exit. If the sandbox itself is gone, runsc cannot tell
// the status: the container was killed with it.
func (s *service) waitSubcontainer(c *container) {
	ctx := context.WithoutCancel(s.ctx)
	status, err := c.runsc.ControlWait(ctx, c.id, c.sandboxID, nil)
	switch {
	case err == nil, errors.Is(err, runsc.ErrControlLost):
		logWaitPath(c, "control socket")
	default:
		// Not a protocol this shim knows (or no socket): `runsc wait`,
		// which always works, at the cost of a process per container.
		logWaitPath(c, "runsc wait")
		log.G(s.ctx).WithError(err).WithField("id", c.id).Debug("waiting through the sandbox's control socket failed: using runsc wait")
		status, err = c.runsc.Wait(ctx, c.id)
	}
	if err != nil {
		log.G(s.ctx).WithError(err).WithField("id", c.id).Warn("runsc wait failed: reporting the container as killed")
		status = 128 + int(syscall.SIGKILL)
		s.awaitSandboxExit(c)
	}
	s.handleExit(c, c.init, status)
}

var waitPaths sync.Map // runsc binary + path -> logged

// logWaitPath logs, once per runsc binary and path, how pod containers'
// exits are learned.
func logWaitPath(c *container, path string) {
	key := c.runsc.Command + "\x00" + path
	if _, seen := waitPaths.LoadOrStore(key, true); !seen {
		log.L.WithField("runsc", c.runsc.Command).WithField("path", path).Info("pod containers' exits come from " + path)
	}
}

// sandboxExitWait bounds how long a pod container whose `runsc wait` failed
// waits for its sandbox's exit before reporting its own.
var sandboxExitWait = 10 * time.Second

// awaitSandboxExit returns once the sandbox c joined has been reaped and its
// exit published, or after sandboxExitWait. `runsc wait` fails as soon as
// the sandbox's control socket closes, while the dying sandbox (an OOM kill
// takes a while) still exists; a `runsc delete` of c then still finds the
// sandbox alive, fails to reach it ("connecting to control server ...
// connection refused") and, in current runsc, drops c's state without
// removing its cgroup. Reporting c's exit only after the sandbox's makes
// containerd's delete of c find the sandbox gone, which runsc handles.
func (s *service) awaitSandboxExit(c *container) {
	s.mu.Lock()
	root := s.containers[c.sandboxID]
	s.mu.Unlock()
	if root == nil || root == c {
		return
	}
	select {
	case <-root.init.Done():
		root.lifecycleBarrier()
	case <-time.After(sandboxExitWait):
		log.G(s.ctx).WithField("id", c.id).WithField("sandbox", c.sandboxID).
			Warnf("sandbox still running %s after runsc wait failed", sandboxExitWait)
	}
}

func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	if r.ExecID != "" {
		return s.deleteExec(ctx, c, r.ExecID, p)
	}
	if c.init.Status() == proc.Created {
		// Never started: end it first, so that its exit is recorded and
		// published before /tasks/delete.
		if err := s.killCreated(ctx, c, uint32(syscall.SIGKILL)); err != nil {
			return nil, errToTTRPC(fmt.Errorf("delete container %q: %w", r.ID, err))
		}
	}
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if err := c.delete(ctx); err != nil {
		// Still served: a retry deletes it.
		return nil, errToTTRPC(fmt.Errorf("delete container %q: %w", r.ID, err))
	}
	if c.init.Subcontainer() {
		// A member deleted after (or while) its sandbox is: its `runsc
		// delete` locks the sandbox's state too and can leave that lock,
		// and its own, behind once the deletes removed everything else.
		c.runsc.RemoveStaleLocks(c.id, c.sandboxID)
	}
	s.leavePod(c)
	s.mu.Lock()
	delete(s.containers, r.ID)
	// The sandbox's end, or the end of the member whose pause held it.
	if !c.init.Subcontainer() {
		delete(s.held, c.id)
	} else if h := s.held[c.sandboxID]; h != nil && h.paused == c.id {
		h.paused = ""
		s.dropHold(c.sandboxID)
	}
	if !c.init.Subcontainer() {
		delete(s.running, p.Pid())
	}
	s.mu.Unlock()
	return s.deleted(c, "", p), nil
}

// killCreated ends a container that was created but never started (runsc
// cannot signal it: it is removed from runsc) and returns once its exit has
// been published. A root container's exit is its sandbox's, reaped; a
// joining container's is reported here as killed by sig.
func (s *service) killCreated(ctx context.Context, c *container, sig uint32) error {
	if err := c.init.KillCreated(ctx); err != nil {
		if c.init.Status() != proc.Created {
			return nil // started or exited meanwhile
		}
		return err
	}
	status := 128 + int(sig)
	if !c.init.Subcontainer() {
		select {
		case <-c.init.Done():
			// handleExit has recorded it; wait for it to be published.
			c.lifecycleBarrier()
			return nil
		case <-time.After(createdExitWait):
			log.G(ctx).WithField("id", c.id).Warn("sandbox of a deleted created container not reaped in time: reporting it killed")
			status = 128 + int(syscall.SIGKILL)
		}
	}
	s.handleExit(c, c.init, status)
	return nil
}

// createdExitWait bounds the wait for the reaper to report the sandbox of a
// never-started container that runsc delete killed.
var createdExitWait = 10 * time.Second

// deleted publishes /tasks/delete for a deleted process (execID "" for the
// container) and returns the Delete answer.
func (s *service) deleted(c *container, execID string, p proc.Process) *taskAPI.DeleteResponse {
	s.events.publish(runtime.TaskDeleteEventTopic, &eventstypes.TaskDelete{
		ContainerID: c.id,
		ID:          execID,
		Pid:         uint32(p.Pid()),
		ExitStatus:  uint32(p.ExitStatus()),
		ExitedAt:    protobuf.ToTimestamp(p.ExitedAt()),
	})
	return &taskAPI.DeleteResponse{
		Pid:        uint32(p.Pid()),
		ExitStatus: uint32(p.ExitStatus()),
		ExitedAt:   protobuf.ToTimestamp(p.ExitedAt()),
	}
}

func (s *service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	sio := p.Stdio()
	return &taskAPI.StateResponse{
		ID:         p.ID(),
		ExecID:     r.ExecID,
		Bundle:     c.bundle,
		Pid:        uint32(p.Pid()),
		Status:     taskStatus(p.Status()),
		Stdin:      sio.Stdin,
		Stdout:     sio.Stdout,
		Stderr:     sio.Stderr,
		Terminal:   sio.Terminal,
		ExitStatus: uint32(p.ExitStatus()),
		ExitedAt:   protobuf.ToTimestamp(p.ExitedAt()),
	}, nil
}

func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	c, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	if r.ExecID == "" && p.Status() == proc.Created {
		// Never started (e.g. its start failed): runsc cannot signal it,
		// so it is removed and its exit reported.
		if err := s.killCreated(ctx, c, r.Signal); err != nil {
			return nil, errToTTRPC(fmt.Errorf("kill created container %q: %w", r.ID, err))
		}
		return empty, nil
	}
	if err := p.Kill(ctx, r.Signal, r.All); err != nil {
		if st := p.Status(); (st == proc.Stopped || st == proc.Deleted) && !errdefs.IsNotFound(err) {
			// It exited while runsc was signalling it.
			err = fmt.Errorf("kill %q: process already finished: %w", r.ID, errdefs.ErrNotFound)
		}
		return nil, errToTTRPC(err)
	}
	return empty, nil
}

func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		return nil, errToTTRPC(ctx.Err())
	}
	return &taskAPI.WaitResponse{
		ExitStatus: uint32(p.ExitStatus()),
		ExitedAt:   protobuf.ToTimestamp(p.ExitedAt()),
	}, nil
}

// Pause freezes a container. runsc pauses a whole sandbox (its kernel), so
// a container that shares a sandbox with other members of its pod cannot be
// paused alone: that is refused, never reported wrongly. A pod's only member
// pauses with the pod's idle pause process (see holdWholeSandbox).
func (s *service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	if err := s.holdWholeSandbox(c, "pause"); err != nil {
		return nil, errToTTRPC(err)
	}
	if err := c.init.Pause(ctx); err != nil {
		s.releaseWholeSandbox(c, "pause", false)
		return nil, errToTTRPC(fmt.Errorf("pause %q: %w", r.ID, err))
	}
	s.releaseWholeSandbox(c, "pause", true)
	s.events.publish(runtime.TaskPausedEventTopic, &eventstypes.TaskPaused{ContainerID: r.ID})
	return empty, nil
}

func (s *service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	if err := c.init.Resume(ctx); err != nil {
		return nil, errToTTRPC(fmt.Errorf("resume %q: %w", r.ID, err))
	}
	s.resumed(c)
	s.events.publish(runtime.TaskResumedEventTopic, &eventstypes.TaskResumed{ContainerID: r.ID})
	return empty, nil
}

// resumed ends the hold of c's pause on its sandbox.
func (s *service) resumed(c *container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.held[c.gvisorSandbox()]; h != nil {
		h.paused = ""
		s.dropHold(c.gvisorSandbox())
	}
}

// holdWholeSandbox refuses op on c unless its sandbox holds nothing that
// op would wrongly catch: runsc pauses and checkpoints a whole sandbox. A
// container alone in the sandbox it started qualifies, and so does a pod's
// only member: its sandbox holds just it and the pod's pause container,
// whose process does nothing but wait (that is what kubelet's checkpoint
// API, CRI CheckpointContainer, reaches: a pause, a checkpoint, a resume of
// the pod's container). A sandbox with two members, or the pod's own
// container while a member runs in it, is refused.
//
// It holds c's sandbox for op, atomically with the check, until
// releaseWholeSandbox (a pause that succeeded: until its resume): a Create
// that would join the sandbox meanwhile is refused, and a Create already
// joining it makes op refused.
func (s *service) holdWholeSandbox(c *container, op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWholeSandboxLocked(c, op); err != nil {
		return err
	}
	sb := c.gvisorSandbox()
	for id, in := range s.reserved {
		if in == sb && id != c.id {
			return fmt.Errorf("cannot %s %q: container %q is being created in the same gVisor sandbox %q, and runsc can only %s the whole sandbox: %w",
				op, c.id, id, sb, op, errdefs.ErrFailedPrecondition)
		}
	}
	h := s.held[sb]
	if h == nil {
		h = &sandboxHold{}
		s.held[sb] = h
	}
	h.busy++
	h.by = c.id
	return nil
}

// releaseWholeSandbox ends the hold holdWholeSandbox took for op; a pause
// that succeeded (paused) keeps holding the sandbox until its resume.
func (s *service) releaseWholeSandbox(c *container, op string, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb := c.gvisorSandbox()
	h := s.held[sb]
	if h == nil {
		return
	}
	h.busy--
	if op == "pause" && paused {
		h.paused = c.id
	}
	s.dropHold(sb)
}

// dropHold forgets a sandbox nothing holds any more; s.mu is held.
func (s *service) dropHold(sb string) {
	if h := s.held[sb]; h != nil && h.busy <= 0 && h.paused == "" {
		delete(s.held, sb)
	}
}

// beginJoin records which sandbox the Create of c (reserved) joins, and
// refuses it while a whole-sandbox operation holds that sandbox: runsc
// would pause or checkpoint the new container with it.
func (s *service) beginJoin(c *container) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.held[c.sandboxID]; h != nil {
		what := "being paused or checkpointed (container " + strconv.Quote(h.by) + "); create it once that is done"
		if h.paused != "" {
			what = "paused (container " + strconv.Quote(h.paused) + "); resume it first"
		}
		return fmt.Errorf("create container %q: its pod's gVisor sandbox %q is %s: %w", c.id, c.sandboxID, what, errdefs.ErrFailedPrecondition)
	}
	s.reserved[c.id] = c.sandboxID
	return nil
}

// checkWholeSandboxLocked is holdWholeSandbox's check of the containers
// that joined c's sandbox; s.mu is held.
func (s *service) checkWholeSandboxLocked(c *container, op string) error {
	for _, o := range s.containers {
		if o == c || !o.init.Subcontainer() {
			continue
		}
		switch {
		case c.init.Subcontainer() && o.sandboxID == c.sandboxID:
			return fmt.Errorf("cannot %s %q: container %q is a member of the same pod (gVisor sandbox %q), and runsc can only %s the whole sandbox: %w",
				op, c.id, o.id, c.sandboxID, op, errdefs.ErrFailedPrecondition)
		case !c.init.Subcontainer() && o.sandboxID == c.id:
			return fmt.Errorf("cannot %s %q: container %q runs in the same gVisor sandbox, and runsc can only %s the whole sandbox: %w",
				op, c.id, o.id, op, errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}

func (s *service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	if err := p.Resize(winSize(r.Width, r.Height)); err != nil {
		return nil, errToTTRPC(fmt.Errorf("resize pty: %w", err))
	}
	return empty, nil
}

func (s *service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	if r.Stdin {
		if err := p.CloseIO(); err != nil {
			return nil, errToTTRPC(fmt.Errorf("close stdin: %w", err))
		}
	}
	return empty, nil
}

func (s *service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	resp := &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid())}
	if c, err := s.container(r.ID); err == nil {
		resp.TaskPid = uint32(c.init.Pid())
	}
	return resp, nil
}

// Shutdown ends the shim once it serves no container.
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case len(s.containers) > 0:
	case len(s.reserved) > 0:
		// A Create in progress decides: see endReservationLocked.
		s.shutdownPending = true
	default:
		s.shutdown.Shutdown()
	}
	return empty, nil
}

var empty = &emptypb.Empty{}

func winSize(w, h uint32) console.WinSize {
	return console.WinSize{Width: uint16(w), Height: uint16(h)}
}

func taskStatus(st proc.Status) task.Status {
	switch st {
	case proc.Created:
		return task.Status_CREATED
	case proc.Running:
		return task.Status_RUNNING
	case proc.Paused:
		return task.Status_PAUSED
	case proc.Stopped, proc.Deleted:
		return task.Status_STOPPED
	}
	return task.Status_UNKNOWN
}
