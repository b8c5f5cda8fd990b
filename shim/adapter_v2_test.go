package shim

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeTaskV3 records every request it receives and answers with the response
// configured for the method (or an empty one), or with err.
type fakeTaskV3 struct {
	method string
	req    proto.Message
	resp   map[string]proto.Message
	err    error
}

func answer[T any, PT protoPtr[T]](f *fakeTaskV3, method string, req proto.Message) (PT, error) {
	f.method, f.req = method, req
	if f.err != nil {
		return nil, f.err
	}
	if r, ok := f.resp[method]; ok {
		return r.(PT), nil
	}
	return PT(new(T)), nil
}

func (f *fakeTaskV3) State(_ context.Context, r *taskv3.StateRequest) (*taskv3.StateResponse, error) {
	return answer[taskv3.StateResponse](f, "State", r)
}
func (f *fakeTaskV3) Create(_ context.Context, r *taskv3.CreateTaskRequest) (*taskv3.CreateTaskResponse, error) {
	return answer[taskv3.CreateTaskResponse](f, "Create", r)
}
func (f *fakeTaskV3) Start(_ context.Context, r *taskv3.StartRequest) (*taskv3.StartResponse, error) {
	return answer[taskv3.StartResponse](f, "Start", r)
}
func (f *fakeTaskV3) Delete(_ context.Context, r *taskv3.DeleteRequest) (*taskv3.DeleteResponse, error) {
	return answer[taskv3.DeleteResponse](f, "Delete", r)
}
func (f *fakeTaskV3) Pids(_ context.Context, r *taskv3.PidsRequest) (*taskv3.PidsResponse, error) {
	return answer[taskv3.PidsResponse](f, "Pids", r)
}
func (f *fakeTaskV3) Pause(_ context.Context, r *taskv3.PauseRequest) (*emptypb.Empty, error) {
	return answer[emptypb.Empty](f, "Pause", r)
}
func (f *fakeTaskV3) Resume(_ context.Context, r *taskv3.ResumeRequest) (*emptypb.Empty, error) {
	return answer[emptypb.Empty](f, "Resume", r)
}
func (f *fakeTaskV3) Checkpoint(_ context.Context, r *taskv3.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return answer[emptypb.Empty](f, "Checkpoint", r)
}
func (f *fakeTaskV3) Kill(_ context.Context, r *taskv3.KillRequest) (*emptypb.Empty, error) {
	return answer[emptypb.Empty](f, "Kill", r)
}
func (f *fakeTaskV3) Exec(_ context.Context, r *taskv3.ExecProcessRequest) (*emptypb.Empty, error) {
	return answer[emptypb.Empty](f, "Exec", r)
}
func (f *fakeTaskV3) ResizePty(_ context.Context, r *taskv3.ResizePtyRequest) (*emptypb.Empty, error) {
	return answer[emptypb.Empty](f, "ResizePty", r)
}
func (f *fakeTaskV3) CloseIO(_ context.Context, r *taskv3.CloseIORequest) (*emptypb.Empty, error) {
	return answer[emptypb.Empty](f, "CloseIO", r)
}
func (f *fakeTaskV3) Update(_ context.Context, r *taskv3.UpdateTaskRequest) (*emptypb.Empty, error) {
	return answer[emptypb.Empty](f, "Update", r)
}
func (f *fakeTaskV3) Wait(_ context.Context, r *taskv3.WaitRequest) (*taskv3.WaitResponse, error) {
	return answer[taskv3.WaitResponse](f, "Wait", r)
}
func (f *fakeTaskV3) Stats(_ context.Context, r *taskv3.StatsRequest) (*taskv3.StatsResponse, error) {
	return answer[taskv3.StatsResponse](f, "Stats", r)
}
func (f *fakeTaskV3) Connect(_ context.Context, r *taskv3.ConnectRequest) (*taskv3.ConnectResponse, error) {
	return answer[taskv3.ConnectResponse](f, "Connect", r)
}
func (f *fakeTaskV3) Shutdown(_ context.Context, r *taskv3.ShutdownRequest) (*emptypb.Empty, error) {
	return answer[emptypb.Empty](f, "Shutdown", r)
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestTaskV2AdapterCreate(t *testing.T) {
	fake := &fakeTaskV3{resp: map[string]proto.Message{
		"Create": &taskv3.CreateTaskResponse{Pid: 4242},
	}}
	a := newTaskV2Adapter(fake)

	opts := mustAny(t, &runtimeoptions.Options{TypeUrl: "io.containerd.runsc.v1.options", ConfigPath: "/etc/containerd/runsc.toml"})
	resp, err := a.Create(context.Background(), &taskv2.CreateTaskRequest{
		ID:     "c1",
		Bundle: "/run/containerd/io.containerd.runtime.v2.task/default/c1",
		Rootfs: []*types.Mount{{
			Type:    "overlay",
			Source:  "overlay",
			Target:  "/rootfs",
			Options: []string{"lowerdir=/a:/b", "upperdir=/u", "workdir=/w"},
		}},
		Terminal: true,
		Stdin:    "/fifo/stdin",
		Stdout:   "/fifo/stdout",
		Stderr:   "/fifo/stderr",
		Options:  opts,
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if resp.GetPid() != 4242 {
		t.Errorf("Create pid = %d, want 4242", resp.GetPid())
	}

	got, ok := fake.req.(*taskv3.CreateTaskRequest)
	if !ok || fake.method != "Create" {
		t.Fatalf("v3 service got %s(%T), want Create(*taskv3.CreateTaskRequest)", fake.method, fake.req)
	}
	want := &taskv3.CreateTaskRequest{
		ID:     "c1",
		Bundle: "/run/containerd/io.containerd.runtime.v2.task/default/c1",
		Rootfs: []*types.Mount{{
			Type:    "overlay",
			Source:  "overlay",
			Target:  "/rootfs",
			Options: []string{"lowerdir=/a:/b", "upperdir=/u", "workdir=/w"},
		}},
		Terminal: true,
		Stdin:    "/fifo/stdin",
		Stdout:   "/fifo/stdout",
		Stderr:   "/fifo/stderr",
		Options:  opts,
	}
	if !proto.Equal(got, want) {
		t.Errorf("v3 request = %v\nwant %v", got, want)
	}
	// The Options Any must still decode to what containerd sent.
	var ro runtimeoptions.Options
	if err := got.GetOptions().UnmarshalTo(&ro); err != nil {
		t.Fatalf("Options: %v", err)
	}
	if ro.GetConfigPath() != "/etc/containerd/runsc.toml" || ro.GetTypeUrl() != "io.containerd.runsc.v1.options" {
		t.Errorf("Options = %v", &ro)
	}
}

func TestTaskV2AdapterWaitExecStats(t *testing.T) {
	exitedAt := timestamppb.New(time.Unix(1700000000, 123))
	stats := mustAny(t, &tasktypes.ProcessInfo{Pid: 7})
	fake := &fakeTaskV3{resp: map[string]proto.Message{
		"Wait":  &taskv3.WaitResponse{ExitStatus: 137, ExitedAt: exitedAt},
		"Stats": &taskv3.StatsResponse{Stats: stats},
	}}
	a := newTaskV2Adapter(fake)
	ctx := context.Background()

	w, err := a.Wait(ctx, &taskv2.WaitRequest{ID: "c1", ExecID: "e1"})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if !proto.Equal(fake.req, &taskv3.WaitRequest{ID: "c1", ExecID: "e1"}) {
		t.Errorf("Wait v3 request = %v", fake.req)
	}
	if w.GetExitStatus() != 137 || !w.GetExitedAt().AsTime().Equal(exitedAt.AsTime()) {
		t.Errorf("Wait = %v, want status 137 at %v", w, exitedAt.AsTime())
	}

	spec := mustAny(t, &types.Mount{Type: "stand-in for a process spec"})
	if _, err := a.Exec(ctx, &taskv2.ExecProcessRequest{
		ID: "c1", ExecID: "e1", Terminal: true, Stdin: "/i", Stdout: "/o", Stderr: "/e", Spec: spec,
	}); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	wantExec := &taskv3.ExecProcessRequest{
		ID: "c1", ExecID: "e1", Terminal: true, Stdin: "/i", Stdout: "/o", Stderr: "/e", Spec: spec,
	}
	if !proto.Equal(fake.req, wantExec) {
		t.Errorf("Exec v3 request = %v\nwant %v", fake.req, wantExec)
	}

	s, err := a.Stats(ctx, &taskv2.StatsRequest{ID: "c1"})
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if !proto.Equal(fake.req, &taskv3.StatsRequest{ID: "c1"}) {
		t.Errorf("Stats v3 request = %v", fake.req)
	}
	if !proto.Equal(s.GetStats(), stats) {
		t.Errorf("Stats = %v, want %v", s.GetStats(), stats)
	}
}

func TestTaskV2AdapterErrorPassesThrough(t *testing.T) {
	notFound := errgrpc.ToGRPC(errors.Join(errdefs.ErrNotFound, errors.New("container c1")))
	fake := &fakeTaskV3{err: notFound}
	a := newTaskV2Adapter(fake)

	resp, err := a.State(context.Background(), &taskv2.StateRequest{ID: "c1"})
	if resp != nil {
		t.Errorf("State resp = %v, want nil", resp)
	}
	if err != notFound {
		t.Fatalf("State err = %v, want the v3 error unchanged", err)
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("status code = %v, want NotFound", status.Code(err))
	}
	if !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("ToNative(%v) is not ErrNotFound", err)
	}

	// Methods answering Empty pass errors through as well.
	if _, err := a.Kill(context.Background(), &taskv2.KillRequest{ID: "c1", Signal: 9}); err != notFound {
		t.Errorf("Kill err = %v, want the v3 error unchanged", err)
	}
}

// Every v2 method must reach the v3 method of the same name with the request
// converted to the v3 type of the same name.
func TestTaskV2AdapterForwardsEveryMethod(t *testing.T) {
	fake := &fakeTaskV3{}
	a := newTaskV2Adapter(fake)
	v := reflect.ValueOf(a)
	iface := reflect.TypeOf((*taskv2.TTRPCTaskService)(nil)).Elem()
	if iface.NumMethod() != 17 {
		t.Errorf("task v2 service has %d methods; update this test", iface.NumMethod())
	}
	for i := 0; i < iface.NumMethod(); i++ {
		m := iface.Method(i)
		fake.method, fake.req = "", nil
		reqType := m.Type.In(1).Elem()
		out := v.MethodByName(m.Name).Call([]reflect.Value{
			reflect.ValueOf(context.Background()),
			reflect.New(reqType),
		})
		if err, _ := out[1].Interface().(error); err != nil {
			t.Errorf("%s: %v", m.Name, err)
			continue
		}
		if out[0].IsNil() {
			t.Errorf("%s: nil response", m.Name)
		}
		if fake.method != m.Name {
			t.Errorf("v2 %s reached v3 %q", m.Name, fake.method)
			continue
		}
		got := string(fake.req.ProtoReflect().Descriptor().FullName())
		want := strings.Replace(string(reflect.New(reqType).Interface().(proto.Message).ProtoReflect().Descriptor().FullName()),
			"containerd.task.v2.", "containerd.task.v3.", 1)
		if got != want {
			t.Errorf("v2 %s sent %s to v3, want %s", m.Name, got, want)
		}
	}
}

// The adapter relies on v2 and v3 messages being wire-identical. Check every
// message field by field so a future divergence of the protos fails here
// rather than silently dropping a field.
func TestTaskV2V3WireIdentical(t *testing.T) {
	v2 := taskv2.File_runtime_task_v2_shim_proto.Messages()
	v3 := taskv3.File_runtime_task_v3_shim_proto.Messages()
	if v2.Len() != v3.Len() {
		t.Fatalf("v2 has %d messages, v3 has %d", v2.Len(), v3.Len())
	}
	for i := 0; i < v2.Len(); i++ {
		m2 := v2.Get(i)
		m3 := v3.ByName(m2.Name())
		if m3 == nil {
			t.Errorf("v3 has no message %s", m2.Name())
			continue
		}
		f2, f3 := m2.Fields(), m3.Fields()
		if f2.Len() != f3.Len() {
			t.Errorf("%s: v2 has %d fields, v3 has %d", m2.Name(), f2.Len(), f3.Len())
			continue
		}
		for j := 0; j < f2.Len(); j++ {
			a := f2.Get(j)
			b := f3.ByNumber(a.Number())
			if b == nil {
				t.Errorf("%s.%s: field %d missing in v3", m2.Name(), a.Name(), a.Number())
				continue
			}
			if a.Kind() != b.Kind() || a.Cardinality() != b.Cardinality() || a.Name() != b.Name() {
				t.Errorf("%s.%s differs: v2 %v %v, v3 %v %v", m2.Name(), a.Name(), a.Cardinality(), a.Kind(), b.Cardinality(), b.Kind())
			}
			if a.Kind() == protoreflect.MessageKind {
				an := strings.Replace(string(a.Message().FullName()), "containerd.task.v2.", "containerd.task.v3.", 1)
				if an != string(b.Message().FullName()) {
					t.Errorf("%s.%s: v2 type %s, v3 type %s", m2.Name(), a.Name(), a.Message().FullName(), b.Message().FullName())
				}
			}
		}
	}
}
