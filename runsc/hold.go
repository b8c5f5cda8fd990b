package runsc

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

// HoldArg is argv[1] of this binary re-executed to hold a runsc process
// before it executes runsc (CreateOpts.Place): the process exists, with
// its final pid, but has not run anything of runsc yet.
const HoldArg = "__runsc_shim_hold"

// holdExit is the exit status of a held process that was told not to run
// runsc.
const holdExit = 125

// Hold runs the held process when this binary was started as one (argv:
// <self> HoldArg <fd> <runsc> <args...>) and never returns then; otherwise
// it returns at once. main calls it first.
//
// The held process waits for one byte on fd <fd>: then it executes runsc
// in place (same pid); at EOF (the shim gave up) it exits with holdExit.
func Hold() {
	if len(os.Args) < 4 || os.Args[1] != HoldArg {
		return
	}
	fd, err := strconv.Atoi(os.Args[2])
	if err != nil || fd < 3 {
		fmt.Fprintf(os.Stderr, "%s: bad fd %q\n", HoldArg, os.Args[2])
		os.Exit(holdExit)
	}
	var b [1]byte
	n, _ := unix.Read(fd, b[:])
	unix.Close(fd)
	if n != 1 {
		os.Exit(holdExit)
	}
	argv := os.Args[3:]
	err = unix.Exec(argv[0], argv, os.Environ())
	fmt.Fprintf(os.Stderr, "exec %s: %v\n", argv[0], err)
	os.Exit(127)
}

// heldArgs are the runsc argv (binary first) of a held command's argv.
func heldArgs(args []string) []string {
	if len(args) >= 4 && args[1] == HoldArg {
		return args[3:]
	}
	return args
}

// holder is the shim's end of a held process.
type holder struct {
	r, w *os.File
}

// hold rewrites cmd to start this binary holding runsc.
func hold(cmd *exec.Cmd) (*holder, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("hold runsc: find this binary: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("hold runsc: %w", err)
	}
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	// cmd.Path was resolved by exec.Command; the held process executes it.
	cmd.Args = append([]string{cmd.Args[0], HoldArg, strconv.Itoa(fd), cmd.Path}, cmd.Args[1:]...)
	cmd.Path = self
	return &holder{r: r, w: w}, nil
}

// started drops the shim's copy of the held process's end.
func (h *holder) started() {
	if h.r != nil {
		h.r.Close()
		h.r = nil
	}
}

// release runs place with the held process's pid, then lets it execute
// runsc, or (place failed) exit.
func (h *holder) release(place func(int) error, pid int) error {
	err := place(pid)
	if err == nil {
		if _, werr := h.w.Write([]byte{1}); werr != nil {
			err = fmt.Errorf("release held runsc process %d: %w", pid, werr)
		}
	}
	h.w.Close()
	h.w = nil
	return err
}

func (h *holder) close() {
	h.started()
	if h.w != nil {
		h.w.Close()
	}
}

// placeError carries Place's error through startWait.
type placeError struct{ err error }

func (e *placeError) Error() string { return e.err.Error() }
