package shim

import (
	"context"
	"fmt"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

// taskV2Adapter serves containerd.task.v2.Task (what containerd 1.6 through
// 2.2 call) on top of the task v3 service. The two protos differ only in their
// package name, so every message is converted by re-encoding it: the wire bytes
// of a v2 message are a valid v3 message and vice versa. Errors are returned
// unchanged so the status codes the v3 service mapped from errdefs reach
// containerd as they are.
type taskV2Adapter struct {
	s taskv3.TTRPCTaskService
}

var _ taskv2.TTRPCTaskService = (*taskV2Adapter)(nil)

// newTaskV2Adapter returns a task v2 service that forwards every call to s.
func newTaskV2Adapter(s taskv3.TTRPCTaskService) taskv2.TTRPCTaskService {
	return &taskV2Adapter{s: s}
}

// protoPtr is a pointer to a generated protobuf message struct.
type protoPtr[T any] interface {
	*T
	proto.Message
}

// convert re-encodes in as a message of type T. in may be a typed nil, which
// yields an empty T.
func convert[T any, PT protoPtr[T]](in proto.Message) (PT, error) {
	b, err := proto.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("task v2 adapter: encode %T: %w", in, err)
	}
	out := PT(new(T))
	if err := proto.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("task v2 adapter: decode %T as %T: %w", in, out, err)
	}
	return out, nil
}

// forward converts the v2 request r to the v3 request fn takes, calls fn and
// converts its response to the v2 response type Resp2.
func forward[Resp2, Req3, Resp3 any, PResp2 protoPtr[Resp2], PReq3 protoPtr[Req3], PResp3 protoPtr[Resp3]](
	ctx context.Context, r proto.Message, fn func(context.Context, PReq3) (PResp3, error),
) (PResp2, error) {
	req, err := convert[Req3, PReq3](r)
	if err != nil {
		return nil, err
	}
	resp, err := fn(ctx, req)
	if err != nil {
		return nil, err
	}
	return convert[Resp2, PResp2](resp)
}

// forwardEmpty is forward for the methods answering google.protobuf.Empty,
// which both versions share.
func forwardEmpty[Req3 any, PReq3 protoPtr[Req3]](
	ctx context.Context, r proto.Message, fn func(context.Context, PReq3) (*emptypb.Empty, error),
) (*emptypb.Empty, error) {
	req, err := convert[Req3, PReq3](r)
	if err != nil {
		return nil, err
	}
	return fn(ctx, req)
}

func (a *taskV2Adapter) State(ctx context.Context, r *taskv2.StateRequest) (*taskv2.StateResponse, error) {
	return forward[taskv2.StateResponse](ctx, r, a.s.State)
}

func (a *taskV2Adapter) Create(ctx context.Context, r *taskv2.CreateTaskRequest) (*taskv2.CreateTaskResponse, error) {
	return forward[taskv2.CreateTaskResponse](ctx, r, a.s.Create)
}

func (a *taskV2Adapter) Start(ctx context.Context, r *taskv2.StartRequest) (*taskv2.StartResponse, error) {
	return forward[taskv2.StartResponse](ctx, r, a.s.Start)
}

func (a *taskV2Adapter) Delete(ctx context.Context, r *taskv2.DeleteRequest) (*taskv2.DeleteResponse, error) {
	return forward[taskv2.DeleteResponse](ctx, r, a.s.Delete)
}

func (a *taskV2Adapter) Pids(ctx context.Context, r *taskv2.PidsRequest) (*taskv2.PidsResponse, error) {
	return forward[taskv2.PidsResponse](ctx, r, a.s.Pids)
}

func (a *taskV2Adapter) Pause(ctx context.Context, r *taskv2.PauseRequest) (*emptypb.Empty, error) {
	return forwardEmpty(ctx, r, a.s.Pause)
}

func (a *taskV2Adapter) Resume(ctx context.Context, r *taskv2.ResumeRequest) (*emptypb.Empty, error) {
	return forwardEmpty(ctx, r, a.s.Resume)
}

func (a *taskV2Adapter) Checkpoint(ctx context.Context, r *taskv2.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return forwardEmpty(ctx, r, a.s.Checkpoint)
}

func (a *taskV2Adapter) Kill(ctx context.Context, r *taskv2.KillRequest) (*emptypb.Empty, error) {
	return forwardEmpty(ctx, r, a.s.Kill)
}

func (a *taskV2Adapter) Exec(ctx context.Context, r *taskv2.ExecProcessRequest) (*emptypb.Empty, error) {
	return forwardEmpty(ctx, r, a.s.Exec)
}

func (a *taskV2Adapter) ResizePty(ctx context.Context, r *taskv2.ResizePtyRequest) (*emptypb.Empty, error) {
	return forwardEmpty(ctx, r, a.s.ResizePty)
}

func (a *taskV2Adapter) CloseIO(ctx context.Context, r *taskv2.CloseIORequest) (*emptypb.Empty, error) {
	return forwardEmpty(ctx, r, a.s.CloseIO)
}

func (a *taskV2Adapter) Update(ctx context.Context, r *taskv2.UpdateTaskRequest) (*emptypb.Empty, error) {
	return forwardEmpty(ctx, r, a.s.Update)
}

func (a *taskV2Adapter) Wait(ctx context.Context, r *taskv2.WaitRequest) (*taskv2.WaitResponse, error) {
	return forward[taskv2.WaitResponse](ctx, r, a.s.Wait)
}

func (a *taskV2Adapter) Stats(ctx context.Context, r *taskv2.StatsRequest) (*taskv2.StatsResponse, error) {
	return forward[taskv2.StatsResponse](ctx, r, a.s.Stats)
}

func (a *taskV2Adapter) Connect(ctx context.Context, r *taskv2.ConnectRequest) (*taskv2.ConnectResponse, error) {
	return forward[taskv2.ConnectResponse](ctx, r, a.s.Connect)
}

func (a *taskV2Adapter) Shutdown(ctx context.Context, r *taskv2.ShutdownRequest) (*emptypb.Empty, error) {
	return forwardEmpty(ctx, r, a.s.Shutdown)
}
