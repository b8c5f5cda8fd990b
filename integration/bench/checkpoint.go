package main

import (
	"context"
	"fmt"
	"syscall"
	"time"

	runc "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// CheckpointReport is section 7: checkpoint and restore of a small and a
// 100 MiB-resident container, next to a cold start of the same container.
type CheckpointReport struct {
	Kinds []CheckpointKind `json:"kinds"`
}

// CheckpointKind is one container kind's figures.
type CheckpointKind struct {
	Name string `json:"name"`
	// ColdStart is NewContainer + NewTask + Start until the task runs;
	// Checkpoint is task Checkpoint with exit (image written to
	// containerd's content store); Restore is NewContainer + NewTask from
	// the image + Start.
	ColdStart  Summary `json:"cold_start"`
	Checkpoint Summary `json:"checkpoint"`
	Restore    Summary `json:"restore"`
	// ImageBytes is the checkpoint image's size (content store).
	ImageBytes int64 `json:"image_bytes"`
}

// checkpointRounds bounds the rounds per kind: each writes an image.
const checkpointRounds = 5

func (e *env) checkpointBench(ctx context.Context) (*CheckpointReport, error) {
	kinds := []struct{ name, cmd string }{
		{"small (sleep)", "exec sleep 1000000"},
		{"100 MiB resident (tmpfs)", "head -c 104857600 /dev/urandom > /dev/shm/fill && exec sleep 1000000"},
	}
	r := &CheckpointReport{}
	rounds := min(e.o.runs, checkpointRounds)
	for _, k := range kinds {
		var cold, ckpt, rest []float64
		var size int64
		for i := 0; i < rounds; i++ {
			co, ck, rs, sz, err := e.checkpointRound(ctx, k.cmd)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %s (round %d): %w", k.name, i, err)
			}
			cold, ckpt, rest, size = append(cold, ms(co)), append(ckpt, ms(ck)), append(rest, ms(rs)), sz
		}
		r.Kinds = append(r.Kinds, CheckpointKind{
			Name:       k.name,
			ColdStart:  summarize("cold start", cold),
			Checkpoint: summarize("checkpoint (exit)", ckpt),
			Restore:    summarize("restore", rest),
			ImageBytes: size,
		})
	}
	return r, nil
}

// checkpointRound starts a container running sh -c cmd, waits until cmd
// has done its setup (the task's first sleep), checkpoints it with exit,
// restores it as a new container, and removes everything.
func (e *env) checkpointRound(ctx context.Context, cmd string) (cold, ckpt, rest time.Duration, size int64, err error) {
	ctx, cancel := context.WithTimeout(e.d.Context(ctx), 3*opTimeout)
	defer cancel()
	newContainer := func(id string) (client.Container, error) {
		return e.d.Client.NewContainer(ctx, id,
			client.WithImage(e.img),
			client.WithNewSnapshot(id+"-snap", e.img),
			client.WithRuntime(runscRuntime, e.runscOpts),
			client.WithNewSpec(oci.WithImageConfig(e.img), oci.WithProcessArgs("sh", "-c", cmd),
				// /dev/shm is a tmpfs in the Sentry's memory; 64 MiB by default.
				oci.WithDevShmSize(128<<10)),
		)
	}
	id := e.nextID("ck")
	t0 := time.Now()
	var c client.Container
	c, err = newContainer(id)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	var task client.Task
	task, err = c.NewTask(ctx, cio.NullIO)
	if err != nil {
		e.cleanupContainer(c, nil)
		return 0, 0, 0, 0, err
	}
	if err := task.Start(ctx); err != nil {
		e.cleanupContainer(c, task)
		return 0, 0, 0, 0, err
	}
	cold = time.Since(t0)
	defer e.cleanupContainer(c, task)
	// The setup is done when sleep runs: its only process besides sh.
	for deadline := time.Now().Add(opTimeout); ; time.Sleep(50 * time.Millisecond) {
		ps, err := task.Pids(ctx)
		if err == nil && len(ps) == 1 {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, 0, 0, fmt.Errorf("container %s: setup not done after %s", id, opTimeout)
		}
	}
	t1 := time.Now()
	img, err := task.Checkpoint(ctx, func(info *client.CheckpointTaskInfo) error {
		info.Options = &runc.CheckpointOptions{Exit: true}
		return nil
	})
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("Checkpoint: %w", err)
	}
	ckpt = time.Since(t1)
	defer func() { _ = e.d.Client.ImageService().Delete(context.WithoutCancel(ctx), img.Name()) }()
	size, err = img.Size(ctx)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("checkpoint image size: %w", err)
	}
	rid := e.nextID("ckr")
	t2 := time.Now()
	rc, err := newContainer(rid)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	rtask, err := rc.NewTask(ctx, cio.NullIO, client.WithTaskCheckpoint(img))
	if err != nil {
		e.cleanupContainer(rc, nil)
		return 0, 0, 0, 0, fmt.Errorf("restore: %w", err)
	}
	if err := rtask.Start(ctx); err != nil {
		e.cleanupContainer(rc, rtask)
		return 0, 0, 0, 0, fmt.Errorf("start restored: %w", err)
	}
	rest = time.Since(t2)
	_ = rtask.Kill(ctx, syscall.SIGKILL)
	e.cleanupContainer(rc, rtask)
	return cold, ckpt, rest, size, nil
}
