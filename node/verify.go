package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/log"
)

// verifyScript prints the kernel release and the first kernel message.
const verifyScript = "uname -r; dmesg | head -n 1"

// Verified is what the verify container printed.
type Verified struct {
	Image   string
	Kernel  string
	Dmesg   string
	Runtime string
}

// IsGVisorKernel reports whether a `uname -r` is gVisor's ("4.4.0" up to
// 2023, "<version>-gvisor" since).
func IsGVisorKernel(release string) bool {
	return release == "4.4.0" || strings.HasSuffix(release, "-gvisor")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (n *Node) dial(ctx context.Context) (*client.Client, error) {
	addr, err := n.host.Path(n.opts.ContainerdAddress)
	if err != nil {
		return nil, err
	}
	c, err := client.New(addr, client.WithDefaultNamespace(n.opts.VerifyNamespace), client.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", n.opts.ContainerdAddress, err)
	}
	return c, nil
}

// pickImage returns opts.VerifyImage, or an image of the namespace whose
// name contains "busybox".
func pickImage(ctx context.Context, c *client.Client, ref string) (client.Image, error) {
	if ref != "" {
		img, err := c.GetImage(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("verify image %s: %w (import or pull it into the namespace first)", ref, err)
		}
		return img, nil
	}
	imgs, err := c.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	for _, img := range imgs {
		if strings.Contains(img.Name(), "busybox") {
			return img, nil
		}
	}
	return nil, errors.New("no image to verify with: pass --verify-image <ref> (an image with sh, uname and dmesg, e.g. busybox, present in the namespace)")
}

// Verify runs a short container with the runsc runtime through containerd's
// API and returns what it printed.
func (n *Node) Verify(ctx context.Context) (*Verified, error) {
	c, err := n.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx = namespaces.WithNamespace(ctx, n.opts.VerifyNamespace)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	img, err := pickImage(ctx, c, n.opts.VerifyImage)
	if err != nil {
		return nil, err
	}
	if ok, err := img.IsUnpacked(ctx, "overlayfs"); err == nil && !ok {
		if err := img.Unpack(ctx, "overlayfs"); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", img.Name(), err)
		}
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	id := "runsc-node-verify-" + hex.EncodeToString(suffix)
	container, err := c.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithNewSnapshot(id, img),
		client.WithRuntime(RuntimeType, &runtimeoptions.Options{TypeUrl: OptionsTypeURL, ConfigPath: n.opts.RunscConfig}),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sh", "-c", verifyScript)),
	)
	if err != nil {
		return nil, fmt.Errorf("verify: create container: %w", err)
	}
	cleanup, cancelCleanup := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelCleanup()
	defer func() {
		if err := container.Delete(cleanup, client.WithSnapshotCleanup); err != nil {
			log.G(ctx).WithError(err).Warnf("verify: delete container %s", id)
		}
	}()
	var out syncBuffer
	task, err := container.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &out)))
	if err != nil {
		return nil, fmt.Errorf("verify: start a container with runtime %s: %w", RuntimeType, err)
	}
	defer func() {
		_ = task.Kill(cleanup, syscall.SIGKILL)
		if _, err := task.Delete(cleanup, client.WithProcessKill); err != nil && !strings.Contains(err.Error(), "not found") {
			log.G(ctx).WithError(err).Warnf("verify: delete task %s", id)
		}
	}()
	statusC, err := task.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: wait: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("verify: start: %w", err)
	}
	var st client.ExitStatus
	select {
	case st = <-statusC:
	case <-ctx.Done():
		return nil, fmt.Errorf("verify: container did not exit: %w (output so far %q)", ctx.Err(), out.String())
	}
	if _, err := task.Delete(ctx); err != nil {
		return nil, fmt.Errorf("verify: delete task: %w", err)
	}
	if st.ExitCode() != 0 {
		return nil, fmt.Errorf("verify: `%s` exited %d: %q", verifyScript, st.ExitCode(), out.String())
	}
	lines := strings.SplitN(strings.TrimSpace(out.String()), "\n", 3)
	v := &Verified{Image: img.Name(), Runtime: RuntimeType}
	if len(lines) > 0 {
		v.Kernel = strings.TrimSpace(lines[0])
	}
	if len(lines) > 1 {
		v.Dmesg = strings.TrimSpace(lines[1])
	}
	if !IsGVisorKernel(v.Kernel) {
		return v, fmt.Errorf("verify: the container ran but not in gVisor: uname -r = %q", v.Kernel)
	}
	return v, nil
}
