package runsc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeControl serves one urpc call on a unix socket recorded in sandbox
// sid's state file under root, answering with answer (nil: hang up).
func fakeControl(t *testing.T, root, sid string, answer func(method, arg string) any) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	state := fmt.Sprintf(`{"id":%q,"sandbox":{"id":%q,"controlSocketPath":%q}}`, sid, sid, sock)
	if err := os.WriteFile(filepath.Join(root, sid+"_sandbox:"+sid+".state"), []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			var call struct {
				Method string `json:"method"`
				Arg    string `json:"arg"`
			}
			if json.NewDecoder(conn).Decode(&call) == nil {
				if a := answer(call.Method, call.Arg); a != nil {
					_ = json.NewEncoder(conn).Encode(a)
				}
			}
			conn.Close()
		}
	}()
}

func TestControlWait(t *testing.T) {
	ok := func(ws uint32) func(string, string) any {
		return func(method, arg string) any {
			if method != "containerManager.Wait" || arg != "c1+" {
				return map[string]any{"success": false, "err": "unexpected call " + method + " " + arg}
			}
			return map[string]any{"success": true, "result": ws}
		}
	}
	for _, tc := range []struct {
		name   string
		answer func(string, string) any
		want   int
		errIs  error
		errHas string
	}{
		{"exit 7", ok(7 << 8), 7, nil, ""},
		{"killed", ok(9), 137, nil, ""},
		{"sandbox gone", func(string, string) any { return nil }, -1, ErrControlLost, "c1+"},
		{"refused", func(string, string) any { return map[string]any{"success": false, "err": "container not found"} }, -1, nil, "container not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Runsc{Root: t.TempDir(), IDSuffix: IDSuffix}
			fakeControl(t, r.Root, "pod+", tc.answer)
			readied := false
			got, err := r.ControlWait(context.Background(), "c1", "pod", func() { readied = true })
			if got != tc.want || !readied {
				t.Errorf("status %d (ready %v), want %d", got, readied, tc.want)
			}
			if tc.errIs != nil && !errors.Is(err, tc.errIs) || tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) ||
				tc.errIs == nil && tc.errHas == "" && err != nil {
				t.Errorf("err %v, want %v / %q", err, tc.errIs, tc.errHas)
			}
		})
	}
}

func TestControlWaitWithoutSocketFallsBack(t *testing.T) {
	r := &Runsc{Root: t.TempDir(), IDSuffix: IDSuffix}
	if _, err := r.ControlWait(context.Background(), "c1", "pod", nil); !errors.Is(err, ErrNoControlSocket) {
		t.Fatalf("no state file: %v, want ErrNoControlSocket", err)
	}
	// runsc 20221219's state names no socket: its abstract one, with the NUL.
	if err := os.WriteFile(filepath.Join(r.Root, "pod+_sandbox:pod+.state"), []byte(`{"sandbox":{"id":"pod+"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, err := r.controlSocket("pod+")
	if err != nil || addr != "@runsc-sandbox.pod+\x00" {
		t.Fatalf("address %q, %v", addr, err)
	}
	if _, err := r.ControlWait(context.Background(), "c1", "pod", nil); !errors.Is(err, ErrNoControlSocket) {
		t.Fatalf("nobody listening: %v, want ErrNoControlSocket", err)
	}
}

func TestControlStats(t *testing.T) {
	event := map[string]any{"type": "stats", "id": "c1+", "data": map[string]any{
		"cpu": map[string]any{"usage": map[string]any{"total": 5}}, "memory": map[string]any{"usage": map[string]any{"usage": 4096}}}}
	r := &Runsc{Command: "/fake/runsc-a", Root: t.TempDir(), IDSuffix: IDSuffix}
	fakeControl(t, r.Root, "pod+", func(method, arg string) any {
		if method != "containerManager.Event" || arg != "c1+" {
			return map[string]any{"success": false, "err": "unexpected " + method}
		}
		return map[string]any{"success": true, "result": map[string]any{"event": event,
			"containerUsage": map[string]uint64{"c1+": 30, "pod+": 10}}}
	})
	// The host cgroup's 1000 ns split 3:1, as runsc splits it.
	st, err := r.ControlStats(context.Background(), nil, "c1", "pod", 1000)
	if err != nil || st.CPU.Usage.Total != 750 || st.Memory.Usage.Usage != 4096 {
		t.Fatalf("stats %+v, %v; want cpu 750, memory 4096", st, err)
	}

	// A sandbox that refuses the call (another runsc's protocol): fall back,
	// and do not ask it again.
	r2 := &Runsc{Command: filepath.Join(t.TempDir(), "runsc-b"), Root: t.TempDir(), IDSuffix: IDSuffix}
	fakeControl(t, r2.Root, "pod+", func(string, string) any {
		return map[string]any{"success": false, "err": "json: cannot unmarshal string into Go value of type boot.EventIn"}
	})
	for range 2 {
		if _, err := r2.ControlStats(context.Background(), nil, "c1", "pod", 0); !errors.Is(err, ErrNoControlSocket) {
			t.Fatalf("refused call: %v, want ErrNoControlSocket", err)
		}
	}
}

func TestControlStatsSandboxWide(t *testing.T) {
	// runsc 20221219: Event takes no argument and answers for the sandbox.
	r := &Runsc{Command: filepath.Join(t.TempDir(), "runsc-2022"), Root: t.TempDir(), IDSuffix: IDSuffix}
	var calls atomic.Int32
	fakeControl(t, r.Root, "pod+", func(method, arg string) any {
		calls.Add(1)
		if arg != "" {
			return map[string]any{"success": false, "err": "json: cannot unmarshal string into Go value of type struct {}"}
		}
		return map[string]any{"success": true, "result": map[string]any{
			"event":          map[string]any{"type": "stats", "id": "pod+", "data": map[string]any{"memory": map[string]any{"usage": map[string]any{"usage": 8192}}}},
			"containerUsage": map[string]uint64{"c1+": 7, "pod+": 1}}}
	})
	for range 2 {
		st, err := r.ControlStats(context.Background(), nil, "c1", "pod", 0)
		if err != nil || st.Memory.Usage.Usage != 8192 || st.CPU.Usage.Total != 7 {
			t.Fatalf("stats %+v, %v; want the sandbox's memory 8192 and c1's CPU 7", st, err)
		}
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3: the refused one, then the no-argument form, remembered", n)
	}
}

// urpcControl serves urpc calls as the sandbox's control server does: any
// number of calls on a connection, until the client hangs up or hangUp
// (closed by the test) asks it to drop every connection. It counts the
// connections it accepted.
type urpcControl struct {
	conns  atomic.Int32 // accepted
	active atomic.Int32 // accepted, not yet closed by the client
	l      net.Listener
}

// close stops listening (the sandbox is gone, or moved).
func (u *urpcControl) close() { u.l.Close() }

func serveURPC(t *testing.T, root, sid string, answer func(method, arg string) any) *urpcControl {
	t.Helper()
	u := &urpcControl{}
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	u.l = l
	t.Cleanup(func() { l.Close() })
	state := fmt.Sprintf(`{"id":%q,"sandbox":{"id":%q,"controlSocketPath":%q}}`, sid, sid, sock)
	if err := os.WriteFile(filepath.Join(root, sid+"_sandbox:"+sid+".state"), []byte(state), 0o644); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			u.active.Add(1)
			go func() {
				defer u.active.Add(-1)
				defer conn.Close()
				dec := json.NewDecoder(conn)
				for {
					var call struct {
						Method string `json:"method"`
						Arg    string `json:"arg"`
					}
					if dec.Decode(&call) != nil {
						return
					}
					b, _ := json.Marshal(answer(call.Method, call.Arg))
					if _, err := conn.Write(b); err != nil {
						return
					}
				}
			}()
		}
	}()
	return u
}

// A Control connects for each stats poll and leaves nothing open between
// polls (a sandbox waits for its idle control clients before it exits), and
// reads the address again, once, when the remembered one fails.
func TestControlStatsLeavesNoConnection(t *testing.T) {
	r := &Runsc{Command: "/fake/runsc-keep", Root: t.TempDir(), IDSuffix: IDSuffix}
	var total atomic.Uint64
	answer := func(method, arg string) any {
		if method != "containerManager.Event" || arg != "c1+" {
			return map[string]any{"success": false, "err": "unexpected " + method + " " + arg}
		}
		return map[string]any{"success": true, "result": map[string]any{"event": map[string]any{
			"type": "stats", "id": "c1+", "data": map[string]any{"cpu": map[string]any{"usage": map[string]any{"total": total.Add(1)}}}}}}
	}
	u := serveURPC(t, r.Root, "pod+", answer)
	ctl := r.NewControl("pod")
	poll := func(want uint64) {
		t.Helper()
		st, err := r.ControlStats(context.Background(), ctl, "c1", "pod", 0)
		if err != nil || st.CPU.Usage.Total != want {
			t.Fatalf("stats %+v, %v; want cpu %d", st, err, want)
		}
	}
	idle := func(u *urpcControl) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); u.active.Load() != 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d control connections still open after the polls returned", u.active.Load())
			}
		}
	}
	for i := range 5 {
		poll(uint64(i + 1))
		idle(u)
	}
	if n := u.conns.Load(); n != 5 {
		t.Fatalf("5 polls made %d connections, want 5", n)
	}
	// A refused call is an answer: no retry.
	if err := ctl.call(context.Background(), "containerManager.Other", nil, new(any), controlTimeout); err == nil || !strings.Contains(err.Error(), "unexpected containerManager.Other") {
		t.Fatalf("refused call: %v", err)
	}
	if n := u.conns.Load(); n != 6 {
		t.Fatalf("after a refused call: %d connections, want 6", n)
	}
	// The sandbox now listens elsewhere (restored): the remembered address
	// fails to connect, the state is read again and the poll answered.
	u.close()
	u2 := serveURPC(t, r.Root, "pod+", answer)
	poll(6)
	idle(u2)
	if n := u2.conns.Load(); n != 1 {
		t.Fatalf("after the address changed: %d connections to the new one, want 1", n)
	}
	// Closed (the sandbox is gone): calls still work, on their own.
	ctl.Close()
	poll(7)
	idle(u2)
}

// A Control whose sandbox is gone (nobody listens) answers
// ErrNoControlSocket, so that the shim falls back to runsc.
func TestControlWithoutServer(t *testing.T) {
	r := &Runsc{Command: "/fake/runsc-none", Root: t.TempDir(), IDSuffix: IDSuffix}
	ctl := r.NewControl("pod")
	if _, err := r.ControlStats(context.Background(), ctl, "c1", "pod", 0); !errors.Is(err, ErrNoControlSocket) {
		t.Fatalf("no state file: %v, want ErrNoControlSocket", err)
	}
	if err := os.WriteFile(filepath.Join(r.Root, "pod+_sandbox:pod+.state"), []byte(`{"sandbox":{"id":"pod+","controlSocketPath":"/nonexistent/ctl.sock"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ControlStats(context.Background(), ctl, "c1", "pod", 0); !errors.Is(err, ErrNoControlSocket) {
		t.Fatalf("nobody listening: %v, want ErrNoControlSocket", err)
	}
}
