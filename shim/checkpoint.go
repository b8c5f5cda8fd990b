package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/proc"
)

// Checkpoint saves a container's sandbox into a checkpoint image with
// `runsc checkpoint`. runsc checkpoints a whole sandbox, so only a container
// that is alone in the sandbox it started, or a pod's only member (see
// holdWholeSandbox), can be checkpointed. The
// container keeps running unless the options ask for Exit; then its exit is
// reported as any other.
func (s *service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	c, err := s.container(r.ID)
	if err != nil {
		return nil, errToTTRPC(err)
	}
	cfg, err := checkpointConfig(r)
	if err != nil {
		return nil, errToTTRPC(fmt.Errorf("checkpoint %q: %w", r.ID, err))
	}
	if err := s.holdWholeSandbox(c, "checkpoint"); err != nil {
		return nil, errToTTRPC(err)
	}
	defer s.releaseWholeSandbox(c, "checkpoint", false)
	if cfg.Exit && c.init.Subcontainer() {
		return nil, errToTTRPC(fmt.Errorf("cannot checkpoint %q with exit: runsc would stop the whole gVisor sandbox %q, its pod's with it; "+
			"checkpoint it leaving it running (what kubelet does): %w", r.ID, c.sandboxID, errdefs.ErrFailedPrecondition))
	}
	if err := os.MkdirAll(cfg.ImagePath, 0o700); err != nil {
		return nil, errToTTRPC(fmt.Errorf("checkpoint %q: create image directory: %w", r.ID, err))
	}
	if cfg.Exit && c.init.Status() == proc.Paused && !c.init.CheckpointsPaused() {
		// containerd pauses a task around task.Checkpoint; this runsc
		// cannot checkpoint a paused sandbox. It runs again for the
		// moment runsc needs to stop it, as a resumed task.
		if err := c.init.Resume(ctx); err != nil {
			return nil, errToTTRPC(fmt.Errorf("checkpoint %q: resume it first (its runsc cannot checkpoint a paused sandbox): %w", r.ID, err))
		}
		s.resumed(c)
		s.events.publish(runtime.TaskResumedEventTopic, &eventstypes.TaskResumed{ContainerID: r.ID})
	}
	log.G(ctx).WithField("id", r.ID).WithField("image", cfg.ImagePath).WithField("exit", cfg.Exit).Info("checkpoint")
	if err := c.init.Checkpoint(ctx, cfg); err != nil {
		return nil, errToTTRPC(fmt.Errorf("checkpoint %q: %w", r.ID, err))
	}
	if c.init.Subcontainer() {
		if err := writePodImageMark(cfg.ImagePath, c.sandboxID, r.ID); err != nil {
			return nil, errToTTRPC(fmt.Errorf("checkpoint %q: %w", r.ID, err))
		}
	}
	return empty, nil
}

// podImageMark names the file the shim adds to the checkpoint image of a
// pod's member: the image holds the pod's whole sandbox (its pause
// container and the member), which a restore as one container cannot bring
// back (runsc restores the sandbox's root, the pause container, and the
// task never starts).
const podImageMark = "gvisor-pod-sandbox.json"

type podImage struct {
	Sandbox    string   `json:"sandbox"`
	Containers []string `json:"containers"`
}

func writePodImageMark(dir, sandbox, member string) error {
	b, err := json.Marshal(podImage{Sandbox: sandbox, Containers: []string{sandbox, member}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, podImageMark), b, 0o600); err != nil {
		return fmt.Errorf("mark the image as a pod sandbox's: %w", err)
	}
	return nil
}

// checkRestorable refuses a restore from a pod sandbox's checkpoint image.
func checkRestorable(id, dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, podImageMark))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create %q from checkpoint %q: read %s: %w", id, dir, podImageMark, err)
	}
	var m podImage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("create %q from checkpoint %q: %s: %v: %w", id, dir, podImageMark, err, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("create %q from checkpoint %q: the image holds pod sandbox %q with containers %s (kubelet's checkpoint of a pod's container), "+
		"and runsc restores a sandbox only with all its containers, which a container's restore cannot ask for: %w",
		id, dir, m.Sandbox, strings.Join(m.Containers, ", "), errdefs.ErrFailedPrecondition)
}

// checkpointConfig reads the request's options (the runc shim's
// containerd.runc.v1.CheckpointOptions, which ctr and CRI send). The fields
// that ask CRIU for something runsc does not do (allow open TCP
// connections, external unix sockets, a terminal; empty namespaces; a
// cgroups mode; a parent image) are refused rather than silently ignored.
// file_locks is accepted: the sandbox's file locks live in its kernel and
// are always saved with it, and containerd's container.Checkpoint (`ctr
// containers checkpoint`) always sets it.
func checkpointConfig(r *taskAPI.CheckpointTaskRequest) (proc.CheckpointConfig, error) {
	cfg := proc.CheckpointConfig{ImagePath: r.Path}
	if r.Options != nil && r.Options.GetTypeUrl() != "" {
		v, err := typeurl.UnmarshalAny(r.Options)
		if err != nil {
			return cfg, fmt.Errorf("decode checkpoint options %s: %v: %w", r.Options.GetTypeUrl(), err, errdefs.ErrInvalidArgument)
		}
		o, ok := v.(*options.CheckpointOptions)
		if !ok {
			return cfg, fmt.Errorf("checkpoint options of type %s: want containerd.runc.v1.CheckpointOptions: %w", r.Options.GetTypeUrl(), errdefs.ErrInvalidArgument)
		}
		var bad []string
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"open_tcp", o.OpenTcp},
			{"external_unix_sockets", o.ExternalUnixSockets},
			{"terminal", o.Terminal},
			{"empty_namespaces", len(o.EmptyNamespaces) > 0},
			{"cgroups_mode", o.CgroupsMode != ""},
			{"parent_path", o.ParentPath != ""},
		} {
			if f.set {
				bad = append(bad, f.name)
			}
		}
		if len(bad) > 0 {
			return cfg, fmt.Errorf("checkpoint options %s do not apply to gVisor (they tune CRIU; runsc saves the whole sandbox as it is): %w",
				strings.Join(bad, ", "), errdefs.ErrInvalidArgument)
		}
		cfg.Exit = o.Exit
		cfg.WorkPath = o.WorkPath
		if o.ImagePath != "" {
			cfg.ImagePath = o.ImagePath
		}
	}
	if cfg.ImagePath == "" {
		return cfg, fmt.Errorf("no checkpoint image path (neither the request's path nor the options' image_path): %w", errdefs.ErrInvalidArgument)
	}
	return cfg, nil
}
