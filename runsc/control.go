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
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The sandbox's control server speaks urpc: one JSON object per call over a
// unix stream socket, {"method": M, "arg": A}, answered by {"success": bool,
// "err": string, "result": R}. `runsc wait <id>` is one call of
// containerManager.Wait with the container's id, answered by its init's
// wait status once it exits. Calling it from the shim waits for a container
// without a resident runsc process (a Go runtime of 18 MiB RSS) per
// container: a socket and a goroutine instead.
const (
	contMgrWait  = "containerManager.Wait"
	contMgrEvent = "containerManager.Event"
)

// ErrNoControlSocket is returned by ControlWait when the sandbox's control
// socket cannot be found or does not answer as expected: use `runsc wait`.
var ErrNoControlSocket = errors.New("sandbox control socket not usable")

// ErrControlLost is wrapped by ControlWait when the control connection
// broke before the container exited: the sandbox is gone (as `runsc wait`
// then fails).
var ErrControlLost = errors.New("sandbox control connection lost")

// controlSocket returns the address of the control socket of sandbox sid
// (its runsc id) in this root: current runsc records a filesystem socket in
// the sandbox's state file (sandbox.controlSocketPath); runsc up to 2022
// listens on the abstract socket "runsc-sandbox.<sid>\x00".
func (r *Runsc) controlSocket(sid string) (string, error) {
	state := filepath.Join(r.Root, fmt.Sprintf("%s_sandbox:%s.state", sid, sid))
	b, err := os.ReadFile(state)
	if err != nil {
		return "", fmt.Errorf("%w: read %s: %v", ErrNoControlSocket, state, err)
	}
	var st struct {
		Sandbox struct {
			ID                string `json:"id"`
			ControlSocketPath string `json:"controlSocketPath"`
		} `json:"sandbox"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return "", fmt.Errorf("%w: decode %s: %v", ErrNoControlSocket, state, err)
	}
	if st.Sandbox.ID != sid {
		return "", fmt.Errorf("%w: %s names sandbox %q, not %q", ErrNoControlSocket, state, st.Sandbox.ID, sid)
	}
	if p := st.Sandbox.ControlSocketPath; p != "" {
		return p, nil
	}
	// runsc 20221219 binds "\x00runsc-sandbox.<sid>" with the terminating
	// NUL counted in the address length (its x/sys/unix did), so the NUL
	// is part of the name.
	return "@runsc-sandbox." + sid + "\x00", nil
}

// dialControl connects to the control socket at addr. A filesystem path
// too long for sockaddr_un is reached through an O_PATH descriptor, as
// runsc does.
func dialControl(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	if addr[0] != '@' && len(addr) >= 108 {
		fd, err := unix.Open(addr, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", addr, err)
		}
		defer unix.Close(fd)
		return d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d", fd))
	}
	return d.DialContext(ctx, "unix", addr)
}

// ControlWait waits for container id, which runs in sandbox sid (both
// containerd ids; the runsc ids are derived), through the sandbox's
// control socket, and returns its exit status as `runsc wait` reports it.
// The call returns once connected (ready closed), so that a caller knows the
// wait is in place. Errors: ErrNoControlSocket when the socket cannot be
// used (fall back to `runsc wait`), ErrControlLost when the sandbox went
// away during the wait.
func (r *Runsc) ControlWait(ctx context.Context, id, sid string, ready func()) (int, error) {
	var ws uint32
	// No deadline: the call returns when the container exits.
	if err := r.controlCall(ctx, sid, contMgrWait, r.ID(id), &ws, 0, ready); err != nil {
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return -1, err
	}
	return exitStatus(syscall.WaitStatus(ws)), nil
}

// exitStatus is runsc wait's: 128+signal for a killed process.
func exitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// controlUnsupported remembers, per runsc binary and method, a control
// call whose protocol the sandbox refused: later calls go to the CLI at once.
var controlUnsupported sync.Map

// controlEventNoArg holds the runsc binaries whose Event call takes no
// argument (runsc 20221219).
var controlEventNoArg sync.Map

// controlCall makes one urpc call to sandbox sid's control server, on a
// connection of its own.
func (r *Runsc) controlCall(ctx context.Context, sid, method string, arg, result any, timeout time.Duration, sent func()) error {
	addr, err := r.controlSocket(r.ID(sid))
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, controlDialTimeout)
	conn, err := dialControl(dctx, addr)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: connect %s: %v", ErrNoControlSocket, addr, err)
	}
	defer conn.Close()
	return exchange(ctx, conn, json.NewDecoder(conn), addr, method, arg, result, timeout, sent)
}

// exchange sends one urpc call on conn and decodes its answer with dec (a
// decoder kept with conn: the server answers each call with one object).
// A send or receive failure leaves conn unusable (ErrNoControlSocket,
// ErrControlLost); a refused call or an answer of another shape does not.
func exchange(ctx context.Context, conn net.Conn, dec *json.Decoder, addr, method string, arg, result any, timeout time.Duration, sent func()) error {
	what := method
	if arg != nil {
		what = fmt.Sprintf("%s %v", method, arg)
	}
	if timeout > 0 {
		_ = conn.SetDeadline(time.Now().Add(timeout))
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	call := struct {
		Method string `json:"method"`
		Arg    any    `json:"arg"`
	}{method, arg}
	b, err := json.Marshal(&call)
	if err != nil {
		return fmt.Errorf("encode %s: %w", what, err)
	}
	if _, err := conn.Write(b); err != nil {
		return fmt.Errorf("%w: send to %s: %w", ErrNoControlSocket, addr, brokenConn{err})
	}
	if sent != nil {
		sent()
	}
	var res struct {
		Success bool            `json:"success"`
		Err     string          `json:"err"`
		Result  json.RawMessage `json:"result"`
	}
	if err := dec.Decode(&res); err != nil {
		return fmt.Errorf("%s (control socket %s): %w: %w", what, addr, ErrControlLost, brokenConn{err})
	}
	if !res.Success {
		return fmt.Errorf("%s (control socket %s): %s", what, addr, res.Err)
	}
	if err := json.Unmarshal(res.Result, result); err != nil {
		return fmt.Errorf("%w: %s answered %.200s: %v", ErrNoControlSocket, addr, res.Result, err)
	}
	return nil
}

// brokenConn is a send or receive failure: the connection is unusable.
type brokenConn struct{ err error }

func (b brokenConn) Error() string { return b.err.Error() }
func (b brokenConn) Unwrap() error { return b.err }

// Control is a sandbox's control server for the calls that answer at once
// (stats, polled every second by containerd 2.x's CRI): its address, read
// from the sandbox's state once, so that a poll costs a connect, one write
// and one read instead of a state file as well. No connection is kept open
// between calls: a sandbox whose application has exited waits for its idle
// control clients before it exits (runsc's control-rpc-stop-timeout, 15 s
// in every runsc this shim has met), so a kept connection would hold a
// killed pod's sandbox, its memory and the pod's stop, for that long.
type Control struct {
	r   *Runsc
	sid string // containerd's id of the sandbox

	mu     sync.Mutex
	addr   string
	closed bool
}

// NewControl returns the control server of sandbox sid (containerd's id).
func (r *Runsc) NewControl(sid string) *Control {
	return &Control{r: r, sid: sid}
}

// Close forgets the address; later calls read it from the state again.
func (c *Control) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.addr = ""
	return nil
}

// call makes one call on a connection of its own, closed when answered.
// When the remembered address fails (the sandbox was restored under
// another socket) it is read again and the call retried once: the calls
// made here only read.
func (c *Control) call(ctx context.Context, method string, arg, result any, timeout time.Duration) error {
	c.mu.Lock()
	addr, closed := c.addr, c.closed
	c.mu.Unlock()
	if closed {
		return c.r.controlCall(ctx, c.sid, method, arg, result, timeout, nil)
	}
	for attempt := 0; ; attempt++ {
		remembered := addr != ""
		if !remembered {
			a, err := c.r.controlSocket(c.r.ID(c.sid))
			if err != nil {
				return err
			}
			addr = a
			c.mu.Lock()
			if !c.closed {
				c.addr = addr
			}
			c.mu.Unlock()
		}
		err := c.callAt(ctx, addr, method, arg, result, timeout)
		if err == nil {
			return nil
		}
		var b brokenConn
		if !errors.As(err, &b) && !errors.Is(err, errConnect) || ctx.Err() != nil {
			return err // answered, or given up on
		}
		if !remembered || attempt > 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		c.mu.Lock()
		if c.addr == addr {
			c.addr = ""
		}
		c.mu.Unlock()
		addr = ""
	}
}

// errConnect marks a call whose connection could not be made.
var errConnect = errors.New("connect")

func (c *Control) callAt(ctx context.Context, addr, method string, arg, result any, timeout time.Duration) error {
	dctx, cancel := context.WithTimeout(ctx, controlDialTimeout)
	conn, err := dialControl(dctx, addr)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: %w %s: %v", ErrNoControlSocket, errConnect, addr, err)
	}
	defer conn.Close()
	return exchange(ctx, conn, json.NewDecoder(conn), addr, method, arg, result, timeout, nil)
}

// controlDialTimeout bounds connecting to a control socket; controlTimeout
// bounds a call that answers at once (not a wait).
const (
	controlDialTimeout = 5 * time.Second
	controlTimeout     = 10 * time.Second
)

// ControlStats is `runsc events --stats <id>` through sandbox sid's control
// socket, without starting runsc: the Sentry's accounting of the container.
// As runsc does, the container's CPU time is its share of hostCPU (the
// sandbox's host cgroup usage in ns, 0 when unknown) in proportion to the
// Sentry's per-container usage.
//
// ctl, if not nil, is sandbox sid's Control (NewControl), whose connection
// the call reuses.
func (r *Runsc) ControlStats(ctx context.Context, ctl *Control, id, sid string, hostCPU uint64) (*Stats, error) {
	key := r.command() + "\x00" + contMgrEvent
	if _, broken := controlUnsupported.Load(key); broken {
		return nil, fmt.Errorf("%w: %s does not take the call as this shim sends it", ErrNoControlSocket, contMgrEvent)
	}
	var out struct {
		Event          json.RawMessage   `json:"event"`
		ContainerUsage map[string]uint64 `json:"containerUsage"`
	}
	// Current runsc takes the container's id; runsc 20221219 takes no
	// argument (struct{}) and answers for the whole sandbox, with each
	// container's CPU in containerUsage, as its `runsc events` reports.
	var arg any = r.ID(id)
	if _, sandboxWide := controlEventNoArg.Load(r.command()); sandboxWide {
		arg = nil
	}
	call := func() error {
		if ctl != nil {
			return ctl.call(ctx, contMgrEvent, arg, &out, controlTimeout)
		}
		return r.controlCall(ctx, sid, contMgrEvent, arg, &out, controlTimeout, nil)
	}
	err := call()
	if err != nil && arg != nil && strings.Contains(err.Error(), "into Go value of type struct {}") {
		controlEventNoArg.Store(r.command(), true)
		arg = nil
		err = call()
	}
	if err != nil {
		if errors.Is(err, ErrNoControlSocket) || errors.Is(err, ErrControlLost) {
			return nil, err
		}
		// The server refused the call as this shim sends it: this
		// runsc's own CLI knows its protocol.
		controlUnsupported.Store(key, true)
		return nil, fmt.Errorf("%w: %v", ErrNoControlSocket, err)
	}
	st, err := ParseStats(out.Event)
	if err != nil {
		controlUnsupported.Store(key, true)
		return nil, fmt.Errorf("%w: %v", ErrNoControlSocket, err)
	}
	st.SandboxWide = arg == nil
	if len(out.ContainerUsage) > 0 {
		var mine, all uint64
		for cid, u := range out.ContainerUsage {
			all += u
			if cid == r.ID(id) {
				mine = u
			}
		}
		switch {
		case hostCPU == 0:
			st.CPU.Usage.Total = mine
		case all == 0:
			st.CPU.Usage.Total = hostCPU / uint64(len(out.ContainerUsage))
		default:
			st.CPU.Usage.Total = uint64(float64(mine) * (float64(hostCPU) / float64(all)))
		}
	}
	return st, nil
}
