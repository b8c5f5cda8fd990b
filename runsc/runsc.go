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
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	runc "github.com/containerd/go-runc"
)

// DefaultCommand is the runsc binary looked up in PATH when none is configured.
const DefaultCommand = "runsc"

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
	return r.runWith(cmd, sub, nil)
}

// runWith is run with a hook called once the process has started.
func (r *Runsc) runWith(cmd *exec.Cmd, sub string, started func()) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	off := r.logOffset()
	status, err := r.startWait(cmd, started)
	if err != nil {
		return nil, &Error{Subcommand: sub, Message: err.Error(), ExitStatus: -1, Err: err}
	}
	if status != 0 {
		return stdout.Bytes(), r.newError(sub, status, off, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

func (r *Runsc) startWait(cmd *exec.Cmd, started func()) (int, error) {
	m := r.monitor()
	ec, err := m.Start(cmd)
	if err != nil {
		return -1, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	if started != nil {
		started()
	}
	status, err := m.Wait(cmd, ec)
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

func (r *Runsc) newError(sub string, status int, off int64, stderr []byte) *Error {
	msg := LastError(r.LogPath(), off)
	if msg == "" {
		msg = stderrMessage(stderr)
	}
	return &Error{Subcommand: sub, Message: msg, ExitStatus: status}
}

// Error is a failed runsc invocation.
type Error struct {
	Subcommand string
	// Message is runsc's own last error message, empty if it wrote none.
	Message    string
	ExitStatus int
	Err        error
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("runsc %s: exit status %d (runsc wrote no error message)", e.Subcommand, e.ExitStatus)
	}
	return fmt.Sprintf("runsc %s: %s", e.Subcommand, e.Message)
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
}

func (o *CreateOpts) args(bundle string) []string {
	args := []string{"--bundle=" + bundle}
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
	cmd := r.cmd(ctx, "create", append(opts.args(r.Bundle), id)...)
	var started func()
	if opts.IO != nil {
		opts.IO.Set(cmd)
		if c, ok := opts.IO.(runc.StartCloser); ok {
			// The sandbox holds the child side of the pipes now.
			started = func() { _ = c.CloseAfterStart() }
		}
	} else {
		// The sandbox and gofer inherit runsc's stdio and outlive it: never
		// hand them a pipe that we would wait on.
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("runsc create: open %s: %w", os.DevNull, err)
		}
		defer null.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	}
	// The stdio of runsc create is the container's stdio: when runsc fails
	// before it opened log.json (a flag it does not know), its message went
	// there. Find out why with a cheap invocation of the same global flags.
	_, err := r.runWith(cmd, "create", started)
	if e, ok := err.(*Error); ok && e.Message == "" {
		e.Message = r.diagnoseFlags(ctx)
	}
	return err
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

// Start runs `runsc start`.
func (r *Runsc) Start(ctx context.Context, id string) error {
	_, err := r.run(r.cmd(ctx, "start", id), "start")
	return err
}

// State runs `runsc state`.
func (r *Runsc) State(ctx context.Context, id string) (*State, error) {
	out, err := r.run(r.cmd(ctx, "state", id), "state")
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
	args = append(args, id, strconv.Itoa(sig))
	_, err := r.run(r.cmd(ctx, "kill", args...), "kill")
	return err
}

// Delete runs `runsc delete [--force] <id>`.
func (r *Runsc) Delete(ctx context.Context, id string, force bool) error {
	args := []string{}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(r.cmd(ctx, "delete", append(args, id)...), "delete")
	return err
}

// Pause runs `runsc pause`.
func (r *Runsc) Pause(ctx context.Context, id string) error {
	_, err := r.run(r.cmd(ctx, "pause", id), "pause")
	return err
}

// Resume runs `runsc resume`.
func (r *Runsc) Resume(ctx context.Context, id string) error {
	_, err := r.run(r.cmd(ctx, "resume", id), "resume")
	return err
}

// Wait runs `runsc wait` and returns the container's exit status.
func (r *Runsc) Wait(ctx context.Context, id string) (int, error) {
	out, err := r.run(r.cmd(ctx, "wait", id), "wait")
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
