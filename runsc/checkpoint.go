package runsc

import (
	"context"
	"regexp"
	"strings"
	"time"
)

// CheckpointOpts are the options of `runsc checkpoint`.
type CheckpointOpts struct {
	// ImagePath is the directory runsc writes the checkpoint image into.
	ImagePath string
	// WorkPath is runsc's --work-path (its own scratch files), if set.
	WorkPath string
	// LeaveRunning keeps the sandbox running after the checkpoint
	// (--leave-running); otherwise runsc stops it.
	LeaveRunning bool
}

func (o *CheckpointOpts) args() []string {
	args := []string{"--image-path=" + o.ImagePath}
	if o.WorkPath != "" {
		args = append(args, "--work-path="+o.WorkPath)
	}
	if o.LeaveRunning {
		args = append(args, "--leave-running")
	}
	return args
}

// Checkpoint runs `runsc checkpoint`: it saves the whole sandbox of the
// root container id into opts.ImagePath.
func (r *Runsc) Checkpoint(ctx context.Context, id string, opts *CheckpointOpts) error {
	_, err := r.run(r.cmd(ctx, "checkpoint", append(opts.args(), r.ID(id))...), "checkpoint")
	return err
}

// RestoreOpts are the options of `runsc restore`. runsc restore creates and
// starts the container in one call; it always runs with --detach, so that
// it returns once the restored sandbox runs (the sandbox is the shim's to
// reap, as after create).
type RestoreOpts struct {
	// ImagePath is the directory holding the checkpoint image.
	ImagePath string
	// WorkPath is runsc's --work-path, if set.
	WorkPath string
	// CreateOpts are as for create: PidFile receives the pid of the
	// restored sandbox, IO is handed to runsc restore, Place holds it.
	CreateOpts
}

func (o *RestoreOpts) args(bundle string) []string {
	args := []string{"--bundle=" + bundle, "--image-path=" + o.ImagePath, "--detach"}
	if o.WorkPath != "" {
		args = append(args, "--work-path="+o.WorkPath)
	}
	return append(args, o.ioArgs()...)
}

// Restore runs `runsc restore --detach`: the container id is created from
// the bundle and its sandbox restored from the checkpoint image and started.
func (r *Runsc) Restore(ctx context.Context, id string, opts *RestoreOpts) error {
	cmd := r.cmd(ctx, "restore", append(opts.args(r.Bundle), r.ID(id))...)
	return r.runIO(ctx, cmd, "restore", opts.IO, opts.Place)
}

// lastReplacingCheckpoint is the newest runsc release known to implement
// --leave-running by destroying the sandbox and restoring a new one that the
// checkpoint command then waits for (so it never returns while the container
// runs), and to panic when asked to checkpoint a paused sandbox
// ("invalid state transition: paused => stopped"): Debian's 0.0~20221219.0.
// Current runsc (checked: 0.0.0-20260905035102) checkpoints in place, paused
// or not.
var lastReplacingCheckpoint = time.Date(2022, 12, 19, 0, 0, 0, 0, time.UTC)

// versionDate matches the release date in runsc's version strings:
// "0.0~20221219.0" (Debian), "release-20221219.0", "0.0.0-20260905035102-160fafc42237" (Go module).
var versionDate = regexp.MustCompile(`(?:^|[~-])(\d{8})(?:\d{6})?(?:[.-]|$)`)

// ReleaseDate is the date in the runsc version, if it has one.
func (f *Features) ReleaseDate() (time.Time, bool) {
	if f == nil {
		return time.Time{}, false
	}
	m := versionDate.FindStringSubmatch(strings.TrimSpace(f.Version))
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102", m[1])
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// CheckpointsInPlace reports whether this runsc checkpoints a sandbox
// without replacing it: --leave-running keeps the same sandbox running, and a
// paused sandbox can be checkpointed. Older releases (up to
// lastReplacingCheckpoint) and versions without a date are assumed not to.
func (f *Features) CheckpointsInPlace() bool {
	d, ok := f.ReleaseDate()
	return ok && d.After(lastReplacingCheckpoint)
}
