// Package runsc is a typed wrapper of the runsc command line. It is the only
// code in this project that starts the runsc binary.
//
// Every invocation carries the same global flags, in a stable order:
//
//	runsc --root=<root> --log=<bundle>/log.json --log-format=json <user flags...> <subcommand> ...
//
// A failed invocation returns an *Error that quotes runsc's own last error
// message from log.json (or, when runsc failed before it opened its log, from
// its stderr), never just "exit status 1".
package runsc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// DefaultCommand is the runsc binary looked up in PATH when none is configured.
const DefaultCommand = "runsc"

// DefaultConfigFile is the runsc.toml the shim reads when the runtime's
// options name none.
const DefaultConfigFile = "/etc/containerd/runsc.toml"

// LogFile is the name of runsc's log in the bundle.
const LogFile = "log.json"

// Runsc runs runsc for one bundle.
type Runsc struct {
	// Command is the runsc binary (a name looked up in PATH, or a path).
	Command string
	// Root is runsc's state root (--root).
	Root string
	// Bundle is the container's bundle; runsc logs to <Bundle>/log.json.
	Bundle string
	// Flags are extra global flags from the user's configuration, already
	// formatted ("--platform=ptrace") and in a stable order.
	Flags []string
	// Monitor starts and waits for runsc processes. The shim sets the reaper
	// here, because it is a subreaper and reaps every child itself.
	Monitor runc.ProcessMonitor
	// IDSuffix is appended to every container id runsc is given. runsc
	// resolves ids by prefix (a container "a" cannot be addressed while "ab"
	// exists); a suffix that containerd's ids never contain (IDSuffix)
	// makes no runsc id a prefix of another.
	IDSuffix string
	// Features are what this runsc binary supports (Probe); nil: unknown,
	// every optional feature is assumed missing.
	Features *Features
}

// IDSuffix is the suffix the shim gives runsc ids: containerd identifiers
// never contain '+', which runsc accepts in ids.
const IDSuffix = "+"

// ID is the id runsc knows the container id by.
func (r *Runsc) ID(id string) string {
	if r.IDSuffix == "" || strings.HasSuffix(id, r.IDSuffix) {
		return id
	}
	return id + r.IDSuffix
}

// LogPath is the path of runsc's JSON log for this bundle.
func (r *Runsc) LogPath() string {
	return filepath.Join(r.Bundle, LogFile)
}

// GlobalArgs returns the global flags every invocation carries.
func (r *Runsc) GlobalArgs() []string {
	args := make([]string, 0, 3+len(r.Flags))
	args = append(args,
		"--root="+r.Root,
		"--log="+r.LogPath(),
		"--log-format=json",
	)
	return append(args, r.Flags...)
}

func (r *Runsc) command() string {
	if r.Command == "" {
		return DefaultCommand
	}
	return r.Command
}

func (r *Runsc) monitor() runc.ProcessMonitor {
	if r.Monitor == nil {
		return runc.Monitor
	}
	return r.Monitor
}

// unsupported refuses a subcommand the probed runsc does not have, instead
// of running it and reporting runsc's usage text.
func (r *Runsc) unsupported(sub string) error {
	f := r.Features
	if f == nil || len(f.Subcommands) == 0 || f.HasSubcommand(sub) {
		return nil
	}
	return fmt.Errorf("runsc %s: %s has no %q subcommand (see `%s help`): %w", sub, f, sub, f.Binary, ErrUnsupported)
}

// Args is the full argv (without the binary) for a subcommand.
func (r *Runsc) Args(sub string, args ...string) []string {
	g := r.GlobalArgs()
	out := make([]string, 0, len(g)+1+len(args))
	out = append(out, g...)
	out = append(out, sub)
	return append(out, args...)
}

func (r *Runsc) cmd(ctx context.Context, sub string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, r.command(), r.Args(sub, args...)...)
	cmd.Dir = r.Bundle
	return cmd
}

// logOffset returns the current size of log.json so that an error can quote
// only what this invocation wrote.
func (r *Runsc) logOffset() int64 {
	st, err := os.Stat(r.LogPath())
	if err != nil {
		return 0
	}
	return st.Size()
}

// run starts cmd through the monitor, waits, and turns a failure into *Error.
func (r *Runsc) run(cmd *exec.Cmd, sub string) ([]byte, error) {
	return r.runWith(context.Background(), cmd, sub, nil)
}

// runWith is run; ctx is for the diagnosis of a failure; place, if set,
// runs with the pid of the process before it executes runsc (see
// CreateOpts.Place).
func (r *Runsc) runWith(ctx context.Context, cmd *exec.Cmd, sub string, place func(pid int) error) ([]byte, error) {
	if err := r.unsupported(sub); err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	ownStderr := cmd.Stderr == nil
	if ownStderr {
		cmd.Stderr = &stderr
	}
	off := r.logOffset()
	status, err := r.startWait(cmd, place)
	if err != nil {
		var pe *placeError
		if errors.As(err, &pe) {
			return nil, pe.err
		}
		return nil, &Error{Subcommand: sub, Message: err.Error(), ExitStatus: -1, Err: err}
	}
	if status != 0 {
		e := r.newError(sub, status, off, stderr.Bytes())
		e.Call = r.call(cmd)
		if e.Message == "" && !ownStderr {
			// runsc's stdio is the container's: when it failed before it
			// opened log.json (a flag it does not know), its complaint went
			// there. Ask again with the same global flags.
			e.Message = r.diagnoseFlags(ctx)
		}
		return stdout.Bytes(), e
	}
	return stdout.Bytes(), nil
}

func (r *Runsc) startWait(cmd *exec.Cmd, place func(pid int) error) (int, error) {
	var h *holder
	if place != nil {
		var err error
		if h, err = hold(cmd); err != nil {
			return -1, err
		}
		defer h.close()
	}
	m := r.monitor()
	ec, err := m.Start(cmd)
	if h != nil {
		h.started()
	}
	if err != nil {
		return -1, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	if h != nil {
		if perr := h.release(place, cmd.Process.Pid); perr != nil {
			// The held process exits without running runsc.
			_, _ = m.Wait(cmd, ec)
			releaseProcess(cmd)
			return -1, &placeError{perr}
		}
	}
	status, err := m.Wait(cmd, ec)
	releaseProcess(cmd)
	if err != nil {
		// go-runc's default monitor reports a non-zero exit as an error;
		// keep the status, the message comes from runsc's own log.
		if status != 0 {
			return status, nil
		}
		return -1, err
	}
	return status, nil
}

// releaseProcess frees what os.Process holds for a runsc process the
// reaper has reaped (a pidfd): a pod's shim runs thousands of them, and the
// garbage collector would close them only eventually.
func releaseProcess(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Release()
	}
}

func (r *Runsc) newError(sub string, status int, off int64, stderr []byte) *Error {
	msg := LastError(r.LogPath(), off)
	if msg == "" {
		msg = stderrMessage(stderr)
	}
	return &Error{Subcommand: sub, Message: msg, ExitStatus: status, Log: r.LogPath()}
}

// call is cmd's subcommand and its arguments, without the binary and the
// global flags: what a message names as the call that failed.
func (r *Runsc) call(cmd *exec.Cmd) string {
	args := heldArgs(cmd.Args)
	n := 1 + len(r.GlobalArgs())
	if len(args) <= n {
		return ""
	}
	return strings.Join(args[n:], " ")
}

// Error is a failed runsc invocation.
type Error struct {
	Subcommand string
	// Call is the subcommand with its arguments ("events --stats c1+"),
	// named when runsc said nothing.
	Call string
	// Log is the runsc log (log.json) the message was looked for in.
	Log string
	// Message is runsc's own last error message, empty if it wrote none.
	Message    string
	ExitStatus int
	Err        error
}

func (e *Error) Error() string {
	if e.Message == "" {
		call := e.Call
		if call == "" {
			call = e.Subcommand
		}
		where := "to its log or stderr"
		if e.Log != "" {
			where = "to " + e.Log + " or stderr"
		}
		return fmt.Sprintf("runsc %s: exit status %d; runsc wrote no error message %s "+
			"(`runsc %s` failed: its debug log says why; set debug = \"true\" and "+
			"debug-log = \"/var/log/runsc/%%ID%%/\" in [runsc_config] of runsc.toml)",
			e.Subcommand, e.ExitStatus, where, call)
	}
	if h := hint(e.Message); h != "" {
		return fmt.Sprintf("runsc %s: %s (%s)", e.Subcommand, e.Message, h)
	}
	return fmt.Sprintf("runsc %s: %s", e.Subcommand, e.Message)
}

// hints explain runsc messages whose fix is in the user's configuration.
var hints = []struct{ match, hint string }{
	{"cannot run with network enabled in root network namespace",
		`runsc's own network stack cannot start on this host: set network = "host" (uses the container's network namespace) or network = "none" in the [runsc_config] table of runsc.toml: the file the runtime's ConfigPath option names or, when the runtime has no ConfigPath, ` + DefaultConfigFile + ` (a file holding the line [runsc_config] and below it network = "host" is enough; ` + "`runsc-node install`" + ` writes it)`},
	{"flag provided but not defined",
		"a key in the [runsc_config] table of runsc.toml is not a flag of this runsc version: see `runsc flags`"},
}

func hint(msg string) string {
	for _, h := range hints {
		if strings.Contains(msg, h.match) {
			return h.hint
		}
	}
	return ""
}

func (e *Error) Unwrap() error { return e.Err }

// State is the output of `runsc state`.
type State struct {
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// CreateOpts are the options of `runsc create`.
type CreateOpts struct {
	// PidFile receives the pid of the sandbox (root container) or of the
	// container's gofer-side process.
	PidFile string
	// ConsoleSocket receives the pty master when the spec asks for a terminal.
	ConsoleSocket runc.ConsoleSocket
	// IO is handed to runsc create; the sandbox inherits it.
	IO runc.IO
	// UserLog is runsc's --user-log (the container's own debug output).
	UserLog string
	// Place, when set, runs with the pid of the `runsc create` process
	// after it was started and before it executes runsc (it is held in a
	// re-executed copy of this binary, see Hold): it puts the process
	// where the sandbox must live (a systemd scope), so that everything
	// runsc forks starts there. runsc runs only if Place succeeds; its
	// error is returned as is.
	Place func(pid int) error
}

func (o *CreateOpts) args(bundle string) []string {
	return append([]string{"--bundle=" + bundle}, o.ioArgs()...)
}

// ioArgs are the flags of the created container's pid file, console and
// user log (create and restore share them).
func (o *CreateOpts) ioArgs() []string {
	var args []string
	if o.PidFile != "" {
		args = append(args, "--pid-file="+o.PidFile)
	}
	if o.ConsoleSocket != nil {
		args = append(args, "--console-socket="+o.ConsoleSocket.Path())
	}
	if o.UserLog != "" {
		args = append(args, "--user-log="+o.UserLog)
	}
	return args
}

// Create runs `runsc create`.
func (r *Runsc) Create(ctx context.Context, id string, opts *CreateOpts) error {
	if opts == nil {
		opts = &CreateOpts{}
	}
	cmd := r.cmd(ctx, "create", append(opts.args(r.Bundle), r.ID(id))...)
	return r.runIO(ctx, cmd, "create", opts.IO, opts.Place)
}

// runIO runs cmd with a process's stdio. runsc forks processes (sandbox,
// gofer, detached exec) that inherit it and outlive the command: without IO
// they get /dev/null, never a pipe that waiting for the command would block
// on. The shim's copy of the child's side of the pipes is closed only once
// the command succeeded, so that a retry can hand the same IO again.
func (r *Runsc) runIO(ctx context.Context, cmd *exec.Cmd, sub string, pio runc.IO, place func(pid int) error) error {
	if err := r.unsupported(sub); err != nil {
		return err
	}
	if pio != nil {
		pio.Set(cmd)
	} else {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("runsc %s: open %s: %w", sub, os.DevNull, err)
		}
		defer null.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	}
	if _, err := r.runWith(ctx, cmd, sub, place); err != nil {
		return err
	}
	if c, ok := pio.(runc.StartCloser); ok {
		_ = c.CloseAfterStart()
	}
	return nil
}

// diagnoseFlags runs `runsc <global flags> flags` and returns runsc's complaint
// about the global flags, if it has one. Used only on failure paths.
func (r *Runsc) diagnoseFlags(ctx context.Context) string {
	cmd := r.cmd(ctx, "flags")
	cmd.Stdout = nil
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	status, err := r.startWait(cmd, nil)
	if err != nil || status == 0 {
		return ""
	}
	return stderrMessage(stderr.Bytes())
}

// Start runs `runsc start`. A container that joins an existing sandbox gets
// the stdio of `runsc start` itself (pio); the root container got its stdio
// at create, and pio is nil. place, when set, is CreateOpts.Place for the
// `runsc start` process: runsc starts a joining container's gofer from it.
func (r *Runsc) Start(ctx context.Context, id string, pio runc.IO, place func(pid int) error) error {
	cmd := r.cmd(ctx, "start", r.ID(id))
	return r.runIO(ctx, cmd, "start", pio, place)
}

// State runs `runsc state`.
func (r *Runsc) State(ctx context.Context, id string) (*State, error) {
	out, err := r.run(r.cmd(ctx, "state", r.ID(id)), "state")
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("runsc state: decode %q: %w", out, err)
	}
	return &s, nil
}

// Kill runs `runsc kill [--all] <id> <signal>`.
func (r *Runsc) Kill(ctx context.Context, id string, sig int, all bool) error {
	args := []string{}
	if all {
		args = append(args, "--all")
	}
	args = append(args, r.ID(id), strconv.Itoa(sig))
	_, err := r.run(r.cmd(ctx, "kill", args...), "kill")
	return err
}

// Delete runs `runsc delete [--force] <id>`.
func (r *Runsc) Delete(ctx context.Context, id string, force bool) error {
	args := []string{}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(r.cmd(ctx, "delete", append(args, r.ID(id))...), "delete")
	return err
}

// Pause runs `runsc pause`.
func (r *Runsc) Pause(ctx context.Context, id string) error {
	_, err := r.run(r.cmd(ctx, "pause", r.ID(id)), "pause")
	return err
}

// Resume runs `runsc resume`.
func (r *Runsc) Resume(ctx context.Context, id string) error {
	_, err := r.run(r.cmd(ctx, "resume", r.ID(id)), "resume")
	return err
}

// Wait runs `runsc wait` and returns the container's exit status.
func (r *Runsc) Wait(ctx context.Context, id string) (int, error) {
	out, err := r.run(r.cmd(ctx, "wait", r.ID(id)), "wait")
	if err != nil {
		return -1, err
	}
	var w struct {
		ID         string `json:"id"`
		ExitStatus int    `json:"exitStatus"`
	}
	if err := json.Unmarshal(out, &w); err != nil {
		return -1, fmt.Errorf("runsc wait: decode %q: %w", out, err)
	}
	return w.ExitStatus, nil
}

// ExecOpts are the options of `runsc exec`.
type ExecOpts struct {
	// ProcessFile is the process spec (JSON) to run.
	ProcessFile string
	// PidFile is where runsc writes its own pid once the process runs in
	// the sandbox. Exec makes it a FIFO to learn that moment without polling.
	PidFile string
	// InternalPidFile receives the process's pid inside the sandbox.
	InternalPidFile string
	ConsoleSocket   runc.ConsoleSocket
	IO              runc.IO
}

func (o *ExecOpts) args() []string {
	args := []string{"--process=" + o.ProcessFile, "--pid-file=" + o.PidFile}
	if o.InternalPidFile != "" {
		args = append(args, "--internal-pid-file="+o.InternalPidFile)
	}
	if o.ConsoleSocket != nil {
		args = append(args, "--console-socket="+o.ConsoleSocket.Path())
	}
	return args
}

// Exec starts `runsc exec` and returns its host pid once the process runs in
// the sandbox. That runsc process lives as long as the process and exits
// with its status: the caller reaps it (through Monitor). Unlike `--detach`,
// which forks a second runsc to do the waiting, this costs one runsc start.
func (r *Runsc) Exec(ctx context.Context, id string, opts *ExecOpts) (int, error) {
	if err := r.unsupported("exec"); err != nil {
		return 0, err
	}
	if err := unix.Mkfifo(opts.PidFile, 0o600); err != nil {
		return 0, fmt.Errorf("runsc exec: create pid fifo: %w", err)
	}
	defer os.Remove(opts.PidFile)
	// Read and write: never blocks on open, and a read waits for runsc's
	// write (through the poller) instead of seeing EOF before runsc opens it.
	pidR, err := os.OpenFile(opts.PidFile, os.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, fmt.Errorf("runsc exec: open pid fifo: %w", err)
	}
	defer pidR.Close()

	// The process outlives this request: not bound to its context.
	cmd := exec.Command(r.command(), r.Args("exec", append(opts.args(), r.ID(id))...)...)
	cmd.Dir = r.Bundle
	if opts.IO != nil {
		opts.IO.Set(cmd)
	} else {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return 0, fmt.Errorf("runsc exec: open %s: %w", os.DevNull, err)
		}
		defer null.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	}
	off := r.logOffset()
	m := r.monitor()
	ec, err := m.Start(cmd)
	if err != nil {
		return 0, fmt.Errorf("runsc exec: start %s: %w", cmd.Path, err)
	}
	pid := cmd.Process.Pid
	// The process is released (its pidfd closed) once reaped; a kill
	// before that goes through it, never to a pid that may be reused.
	var (
		procMu   sync.Mutex
		released bool
	)
	kill := func() {
		procMu.Lock()
		defer procMu.Unlock()
		if !released {
			_ = cmd.Process.Kill()
		}
	}
	exited := make(chan int, 1)
	go func() {
		status, _ := m.Wait(cmd, ec)
		procMu.Lock()
		released = true
		releaseProcess(cmd)
		procMu.Unlock()
		exited <- status
	}()
	type pidRead struct {
		b   []byte
		err error
	}
	started := make(chan pidRead, 1)
	go func() {
		b := make([]byte, 64)
		n, err := pidR.Read(b)
		started <- pidRead{b[:n], err}
	}()
	ok := func() (int, error) {
		if c, ok := opts.IO.(runc.StartCloser); ok {
			_ = c.CloseAfterStart()
		}
		return pid, nil
	}
	select {
	case rd := <-started:
		if rd.err != nil {
			kill()
			return 0, fmt.Errorf("runsc exec: read pid fifo: %w", rd.err)
		}
		return ok()
	case status := <-exited:
		// runsc is gone: it either wrote its pid (the process ran and has
		// already exited) or failed. A marker written after whatever runsc
		// wrote tells which, without racing the reader.
		if _, err := pidR.Write([]byte{execFailedMarker}); err != nil {
			return 0, fmt.Errorf("runsc exec: write pid fifo: %w", err)
		}
		if rd := <-started; rd.err == nil && len(rd.b) > 0 && rd.b[0] != execFailedMarker {
			return ok()
		}
		return 0, r.execError(ctx, status, off)
	case <-ctx.Done():
		kill()
		return 0, fmt.Errorf("runsc exec: %w", ctx.Err())
	}
}

// execFailedMarker is what Exec writes into the pid FIFO after runsc exited:
// runsc writes digits.
const execFailedMarker = '!'

func (r *Runsc) execError(ctx context.Context, status int, off int64) error {
	e := r.newError("exec", status, off, nil)
	e.Call = "exec"
	if e.Message == "" {
		e.Message = r.diagnoseFlags(ctx)
	}
	return e
}

// KillPid runs `runsc kill --pid <pid> <id> <signal>` for one process,
// pid being relative to the sandbox's root PID namespace.
func (r *Runsc) KillPid(ctx context.Context, id string, pid, sig int) error {
	_, err := r.run(r.cmd(ctx, "kill", "--pid="+strconv.Itoa(pid), r.ID(id), strconv.Itoa(sig)), "kill")
	return err
}

// Ps runs `runsc ps --format=json`: the pids of the container's processes
// inside the sandbox.
func (r *Runsc) Ps(ctx context.Context, id string) ([]int, error) {
	out, err := r.run(r.cmd(ctx, "ps", "--format=json", r.ID(id)), "ps")
	if err != nil {
		return nil, err
	}
	var pids []int
	if err := json.Unmarshal(out, &pids); err != nil {
		return nil, fmt.Errorf("runsc ps: decode %q: %w", out, err)
	}
	return pids, nil
}

// RemoveStaleLocks removes runsc's lock files of the containers ids that
// no longer have a state file: a runsc call racing a container's deletion
// (its sandbox killed for memory, say, or a member's delete racing its
// sandbox's) can create the lock again after `runsc delete` removed
// everything else.
func (r *Runsc) RemoveStaleLocks(ids ...string) {
	for _, id := range ids {
		locks, _ := filepath.Glob(filepath.Join(r.Root, r.ID(id)+"_sandbox:*.lock"))
		for _, l := range locks {
			if _, err := os.Stat(strings.TrimSuffix(l, ".lock") + ".state"); os.IsNotExist(err) {
				_ = os.Remove(l)
			}
		}
	}
}
