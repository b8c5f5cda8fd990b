package shim

import (
	"context"
	"fmt"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/stdio"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/proc"
)

func (s *service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	if r.ExecID == "" {
		return nil, errToTTRPC(fmt.Errorf("exec id is required: %w", errdefs.ErrInvalidArgument))
	}
	if err := validateID("exec", r.ExecID); err != nil {
		return nil, errToTTRPC(err)
	}
	if r.Spec == nil {
		return nil, errToTTRPC(fmt.Errorf("exec %q: process spec is required: %w", r.ExecID, errdefs.ErrInvalidArgument))
	}
	v, err := typeurl.UnmarshalAny(r.Spec)
	if err != nil {
		return nil, errToTTRPC(fmt.Errorf("exec %q: decode process spec: %v: %w", r.ExecID, err, errdefs.ErrInvalidArgument))
	}
	spec, ok := v.(*specs.Process)
	if !ok {
		return nil, errToTTRPC(fmt.Errorf("exec %q: spec is a %T, not a process: %w", r.ExecID, v, errdefs.ErrInvalidArgument))
	}
	e := c.init.NewExec(r.ExecID, spec, stdio.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal})
	c.mu.Lock()
	if _, exists := c.execs[r.ExecID]; exists {
		c.mu.Unlock()
		return nil, errToTTRPC(fmt.Errorf("exec %q in container %q: %w", r.ExecID, r.ID, errdefs.ErrAlreadyExists))
	}
	c.execs[r.ExecID] = e
	c.mu.Unlock()
	s.events.publish(runtime.TaskExecAddedEventTopic, &eventstypes.TaskExecAdded{ContainerID: r.ID, ExecID: r.ExecID})
	return empty, nil
}

func (s *service) startExec(ctx context.Context, c *container, p proc.Process) (*taskAPI.StartResponse, error) {
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	s.beginCreate()
	err := p.Start(ctx)
	early, exited := s.endCreate(c, p)
	if err != nil {
		return nil, errToTTRPC(fmt.Errorf("start exec %q in %q: %w", p.ID(), c.id, err))
	}
	s.events.publish(runtime.TaskExecStartedEventTopic, &eventstypes.TaskExecStarted{
		ContainerID: c.id,
		ExecID:      p.ID(),
		Pid:         uint32(p.Pid()),
	})
	if exited {
		// handleExit takes the lifecycle lock after we release it.
		go s.handleExit(c, p, early.Status)
	}
	return &taskAPI.StartResponse{Pid: uint32(p.Pid())}, nil
}

func (s *service) deleteExec(ctx context.Context, c *container, execID string, p proc.Process) (*taskAPI.DeleteResponse, error) {
	if err := p.Delete(ctx); err != nil {
		return nil, errToTTRPC(fmt.Errorf("delete exec %q: %w", execID, err))
	}
	c.mu.Lock()
	delete(c.execs, execID)
	c.mu.Unlock()
	// Its /tasks/exit is queued under the lifecycle lock: /tasks/delete
	// comes after it.
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	return s.deleted(c, execID, p), nil
}

// Pids lists the container's processes from `runsc ps`: sandbox-internal
// pids, with exec processes carrying their exec id.
func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	ps, err := c.runsc.Ps(ctx, c.id)
	if err != nil {
		return nil, errToTTRPC(fmt.Errorf("pids of %q: %w", r.ID, err))
	}
	execs := make(map[int]string)
	c.mu.Lock()
	for id, p := range c.execs {
		if e, ok := p.(*proc.Exec); ok && e.InternalPid() > 0 {
			execs[e.InternalPid()] = id
		}
	}
	c.mu.Unlock()
	resp := &taskAPI.PidsResponse{}
	for _, pid := range ps {
		info := &task.ProcessInfo{Pid: uint32(pid)}
		if id, ok := execs[pid]; ok {
			d, err := typeurl.MarshalAnyToProto(&options.ProcessDetails{ExecID: id})
			if err == nil {
				info.Info = d
			}
		}
		resp.Processes = append(resp.Processes, info)
	}
	return resp, nil
}
