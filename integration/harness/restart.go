package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Pid returns the pid of the running containerd process (0 if none).
func (d *Daemon) Pid() int {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Kill SIGKILLs the containerd process alone (not its shims, which run in
// process groups of their own) and waits for it to exit. The client is
// closed; Restart brings the daemon back with the same directories.
func (d *Daemon) Kill() error {
	if d.cmd == nil || d.cmd.Process == nil {
		return errors.New("containerd is not running")
	}
	if d.Client != nil {
		d.Client.Close()
		d.Client = nil
	}
	select {
	case <-d.exited:
		return fmt.Errorf("containerd had already exited: %v", d.waitErr)
	default:
	}
	d.logf.printf("killing containerd %s (pid %d) with SIGKILL", d.Version, d.cmd.Process.Pid)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill containerd: %w", err)
	}
	select {
	case <-d.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("containerd pid %d did not exit within 10s of SIGKILL", d.cmd.Process.Pid)
	}
}

// Restart starts containerd again with the same binary, config, root, state,
// sockets, PATH and environment as before, after Kill or a crash (it kills a
// still running daemon first), appends to the same log, and waits until it
// serves; d.Client is then a fresh client.
func (d *Daemon) Restart(ctx context.Context, timeout time.Duration) error {
	if d.cmd == nil {
		return errors.New("containerd was never started")
	}
	select {
	case <-d.exited:
	default:
		if err := d.Kill(); err != nil {
			return err
		}
	}
	if d.Client != nil {
		d.Client.Close()
		d.Client = nil
	}
	logFile, err := os.OpenFile(d.LogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "==== harness: restarting containerd %s at %s ====\n", d.Version, time.Now().Format(time.RFC3339Nano))
	old := d.cmd
	cmd := exec.Command(old.Path, old.Args[1:]...)
	cmd.Env = slices.Clone(old.Env)
	cmd.Dir = old.Dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if d.logFile != nil {
		d.logFile.Close()
	}
	d.logFile = logFile
	d.exited = make(chan struct{})
	d.waitErr = nil
	d.logf.printf("restarting containerd %s (%s) in %s", d.Version, d.Binary, d.Dir)
	if err := cmd.Start(); err != nil {
		d.cmd = nil
		return fmt.Errorf("restart %s: %w", d.Binary, err)
	}
	d.cmd = cmd
	exited := d.exited
	go func() {
		d.waitErr = cmd.Wait()
		close(exited)
	}()
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if err := d.waitServing(ctx, timeout); err != nil {
		if tail := d.LogTail(60); tail != "" {
			err = fmt.Errorf("%w\ncontainerd log tail (%s):\n%s", err, d.LogPath, tail)
		}
		return err
	}
	return nil
}

// ShimPids returns the pids of the runsc shim processes serving container
// (or shim) id in the daemon's namespace: their command line is
// `containerd-shim-runsc-v1 -namespace <ns> -id <id> ...`.
func (d *Daemon) ShimPids(id string) []int {
	var pids []int
	for _, p := range processes() {
		if filepath.Base(p.argv[0]) != "containerd-shim-runsc-v1" {
			continue
		}
		if argValue(p.argv, "-namespace") == d.Namespace && argValue(p.argv, "-id") == id {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// ProcessAlive reports whether pid exists and is not a zombie.
func ProcessAlive(pid int) bool {
	if err := unix.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i+2 < len(b) && b[i+2] != 'Z'
		}
	}
	return true
}

func argValue(argv []string, flag string) string {
	for i, a := range argv {
		if a == flag && i+1 < len(argv) {
			return argv[i+1]
		}
		if len(a) > len(flag)+1 && a[:len(flag)+1] == flag+"=" {
			return a[len(flag)+1:]
		}
	}
	return ""
}
