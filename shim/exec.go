package shim

import (
	"context"
	"fmt"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/proc"
)

func (s *service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	return nil, errToTTRPC(fmt.Errorf("exec: %w", errdefs.ErrNotImplemented))
}

func (s *service) startExec(ctx context.Context, c *container, p proc.Process) (*taskAPI.StartResponse, error) {
	return nil, errToTTRPC(fmt.Errorf("exec: %w", errdefs.ErrNotImplemented))
}

func (s *service) deleteExec(ctx context.Context, c *container, execID string, p proc.Process) (*taskAPI.DeleteResponse, error) {
	return nil, errToTTRPC(fmt.Errorf("exec: %w", errdefs.ErrNotImplemented))
}

func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	return nil, errToTTRPC(fmt.Errorf("pids: %w", errdefs.ErrNotImplemented))
}

func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	return nil, errToTTRPC(fmt.Errorf("update: %w", errdefs.ErrNotImplemented))
}

func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	return nil, errToTTRPC(fmt.Errorf("stats: %w", errdefs.ErrNotImplemented))
}
