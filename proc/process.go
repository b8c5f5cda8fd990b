// Package proc holds the lifecycle of the processes the shim runs in a
// gVisor sandbox: the container's init process and its exec processes.
package proc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// Status is the lifecycle state of a process.
type Status string

// Process states, as containerd's Task API names them.
const (
	Created Status = "created"
	Running Status = "running"
	Paused  Status = "paused"
	Stopped Status = "stopped"
	Deleted Status = "deleted"
)

// StartFailedStatus is the exit status of an exec whose start failed.
const StartFailedStatus = 255

// Process is what the task service needs of an init or exec process.
type Process interface {
	ID() string
	Pid() int
	Status() Status
	Stdio() stdio.Stdio
	ExitStatus() int
	ExitedAt() time.Time
	// Done is closed once the process has exited.
	Done() <-chan struct{}
	Start(ctx context.Context) error
	Kill(ctx context.Context, sig uint32, all bool) error
	Delete(ctx context.Context) error
	Resize(ws console.WinSize) error
	CloseIO() error
	// SetExited records the exit status reaped by the shim. It reports
	// false if the process had already exited (or was deleted): an exit is
	// recorded, and published, once.
	SetExited(status int) bool
	// DrainOutput waits (bounded) until the output of an exited process
	// has reached containerd: a terminal's copier ends with its pty
	// drained. Call it before SetExited: containerd's client stops reading
	// as soon as it sees the exit.
	DrainOutput()
}

// exitState is the part every process shares: pid, status and exit.
type exitState struct {
	mu         sync.Mutex
	pid        int
	status     Status
	exitStatus int
	exitedAt   time.Time
	done       chan struct{}
}

func newExitState() exitState {
	return exitState{status: Created, done: make(chan struct{})}
}

func (s *exitState) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

func (s *exitState) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

func (s *exitState) ExitStatus() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitStatus
}

func (s *exitState) ExitedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitedAt
}

func (s *exitState) Done() <-chan struct{} { return s.done }

// setExited moves the process to stopped once; later calls are ignored.
func (s *exitState) setExited(status int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == Stopped || s.status == Deleted {
		return false
	}
	s.status = Stopped
	s.exitStatus = status
	s.exitedAt = time.Now()
	close(s.done)
	return true
}

// transition moves from one of the allowed states to next, or explains why not.
func (s *exitState) transition(op string, next Status, allowed ...Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range allowed {
		if s.status == a {
			s.status = next
			return nil
		}
	}
	return fmt.Errorf("cannot %s a %s process: %w", op, s.status, errdefs.ErrFailedPrecondition)
}

// checkKillError maps runsc's kill errors to errdefs kinds the way the runc
// shim does: a process that is gone is NotFound.
func checkKillError(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.ToLower(err.Error())
	if strings.Contains(msg, "not running") || strings.Contains(msg, "no such process") ||
		strings.Contains(msg, "does not exist") || strings.Contains(msg, "not found") ||
		strings.Contains(msg, "is stopped") ||
		// The container's state file went with its exit (runsc delete
		// after the sandbox ended).
		(strings.Contains(msg, "loading container") && strings.Contains(msg, "no such file or directory")) {
		return fmt.Errorf("process already finished: %w: %w", err, errdefs.ErrNotFound)
	}
	return fmt.Errorf("kill: %w", err)
}

// isNotExist reports whether runsc said the container does not exist.
func isNotExist(err error) bool {
	var e *runsc.Error
	if !errors.As(err, &e) {
		return false
	}
	m := strings.ToLower(e.Message)
	return strings.Contains(m, "does not exist") || strings.Contains(m, "not found") ||
		strings.Contains(m, "couldn't find container")
}
