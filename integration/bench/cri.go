package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI runtime handlers configured by criConfig.
const (
	criNamespace = "k8s.io"
	handlerRunsc = "runsc"
	handlerRunc  = "runc"
	handlerArgv  = "runsc-argv"
	// handlerCurrent runs current gVisor's runsc (-runsc-current).
	handlerCurrent  = "runsc-current"
	pauseRef        = "docker.io/library/bench-pause:latest"
	criRunscOptions = "io.containerd.runsc.v1.options"
)

// criConfig is the containerd config (version 2 syntax, which 2.x
// migrates) enabling the CRI handlers runsc, runc and runsc-argv, with a
// local pause image and no CNI (the pods use the host network).
func criConfig(version, runscToml, argvToml, currentToml, cniDir string, timed []*timingSetup) string {
	q := strconv.Quote
	var b strings.Builder
	p := `plugins."io.containerd.grpc.v1.cri"`
	fmt.Fprintf(&b, "[%s]\n  sandbox_image = %s\n", p, q(pauseRef))
	// This host cannot lower oom_score_adj (CRI gives the pause process
	// -998): runsc start fails with EACCES without this.
	fmt.Fprintf(&b, "  restrict_oom_score_adj = true\n")
	fmt.Fprintf(&b, "  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n")
	fmt.Fprintf(&b, "[%s.containerd]\n  snapshotter = %s\n  default_runtime_name = %s\n", p, q(harness.DefaultSnapshotter), q(handlerRunc))
	fmt.Fprintf(&b, "[%s.containerd.runtimes.%s]\n  runtime_type = %s\n", p, handlerRunc, q(runcRuntime))
	hs := []struct{ name, toml string }{{handlerRunsc, runscToml}, {handlerArgv, argvToml}}
	if currentToml != "" {
		hs = append(hs, struct{ name, toml string }{handlerCurrent, currentToml})
	}
	for _, h := range hs {
		fmt.Fprintf(&b, "[%s.containerd.runtimes.%s]\n  runtime_type = %s\n", p, q(h.name), q(runscRuntime))
		fmt.Fprintf(&b, "[%s.containerd.runtimes.%s.options]\n  TypeUrl = %s\n  ConfigPath = %s\n", p, q(h.name), q(criRunscOptions), q(h.toml))
	}
	b.WriteString(criTimedHandlers(p, timed))
	fmt.Fprintf(&b, "[%s.cni]\n  bin_dir = %s\n  conf_dir = %s\n", p, q(cniDir), q(cniDir))
	if !strings.HasPrefix(version, "1.") {
		// NRI would listen on the host-wide /var/run/nri/nri.sock.
		fmt.Fprintf(&b, "[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = true\n")
	}
	return b.String()
}

// criEnv talks CRI to the daemon.
type criEnv struct {
	e    *env
	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient
	img  runtimeapi.ImageServiceClient
	seq  atomic.Int64
	// sandboxOnly is set when a pod's container does not start here (the
	// probe in newCRI failed after RunPodSandbox): pods are then measured
	// up to RunPodSandbox only and Degraded says why.
	sandboxOnly bool
	Degraded    string
	// current is the version of current gVisor's runsc behind
	// handlerCurrent ("" when it is not configured).
	current string
}

// newCRI connects to the daemon's CRI service and makes sure the busybox
// and pause images are there. An error means CRI is not usable here.
func newCRI(ctx context.Context, e *env) (*criEnv, error) {
	conn, err := grpc.NewClient("unix://"+e.d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c := &criEnv{e: e, conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn), img: runtimeapi.NewImageServiceClient(conn)}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := c.rt.Version(vctx, &runtimeapi.VersionRequest{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("CRI Version: %w", err)
	}
	e.logf("CRI %s %s (API %s)", v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion)

	nsCtx := namespaces.WithNamespace(ctx, criNamespace)
	if _, err := harness.ImportBusybox(nsCtx, e.d.Client, e.logf); err != nil {
		conn.Close()
		return nil, err
	}
	archive, err := harness.BusyboxArchive(harness.BusyboxBinary, pauseRef)
	if err != nil {
		conn.Close()
		return nil, err
	}
	// The pause container must stay up: busybox's default `sh` would exit
	// at once without stdin.
	archive, err = withImageCmd(archive, []string{"/bin/sleep", "2147483647"})
	if err != nil {
		conn.Close()
		return nil, err
	}
	imgs, err := e.d.Client.Import(nsCtx, bytes.NewReader(archive))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("import %s: %w", pauseRef, err)
	}
	var pimg client.Image
	for _, im := range imgs {
		if im.Name == pauseRef {
			pimg = client.NewImage(e.d.Client, im)
		}
	}
	if pimg == nil {
		conn.Close()
		return nil, fmt.Errorf("import: %s not among %v", pauseRef, imgs)
	}
	if err := pimg.Unpack(nsCtx, harness.DefaultSnapshotter); err != nil {
		conn.Close()
		return nil, fmt.Errorf("unpack %s: %w", pauseRef, err)
	}
	// The CRI image store learns of imported images from events: wait for it.
	for _, ref := range []string{harness.BusyboxRef, pauseRef} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := c.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
			if err == nil && st.Image != nil {
				break
			}
			if time.Now().After(deadline) {
				conn.Close()
				return nil, fmt.Errorf("CRI does not see image %s (err %v)", ref, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Probe: a pod with a container, with the runsc handler.
	pctx, pcancel := context.WithTimeout(ctx, probeTimeout)
	p, err := c.startPod(pctx, handlerRunsc, func(string) {})
	pcancel()
	if p != nil {
		if rerr := c.removePod(p); rerr != nil {
			e.logf("CRI probe cleanup: %v", rerr)
		}
	}
	if err != nil {
		if p == nil {
			conn.Close()
			return nil, fmt.Errorf("probe pod (handler %s): %w", handlerRunsc, err)
		}
		c.sandboxOnly = true
		c.Degraded = fmt.Sprintf("a container in a runsc pod does not start (%v within %s): CRI pods measured up to RunPodSandbox only, density uses client containers", err, probeTimeout)
	}
	return c, nil
}

// probeTimeout bounds the CRI probe pod's start.
const probeTimeout = 30 * time.Second

func (c *criEnv) close() { c.conn.Close() }

// withImageCmd rewrites the OCI layout archive of harness.BusyboxArchive so
// that its image config runs cmd.
func withImageCmd(archive []byte, cmd []string) ([]byte, error) {
	files := map[string][]byte{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[h.Name] = data
		order = append(order, h.Name)
	}
	blob := func(d digest.Digest) string { return "blobs/sha256/" + d.Encoded() }
	var index ocispec.Index
	if err := json.Unmarshal(files[ocispec.ImageIndexFile], &index); err != nil || len(index.Manifests) != 1 {
		return nil, fmt.Errorf("unexpected image index: %v", err)
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(files[blob(index.Manifests[0].Digest)], &manifest); err != nil {
		return nil, err
	}
	var config ocispec.Image
	if err := json.Unmarshal(files[blob(manifest.Config.Digest)], &config); err != nil {
		return nil, err
	}
	config.Config.Cmd = cmd
	config.Config.Entrypoint = nil
	configBlob, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	manifest.Config.Digest = digest.FromBytes(configBlob)
	manifest.Config.Size = int64(len(configBlob))
	manifestBlob, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	index.Manifests[0].Digest = digest.FromBytes(manifestBlob)
	index.Manifests[0].Size = int64(len(manifestBlob))
	indexBlob, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{
		blob(manifest.Config.Digest):    configBlob,
		blob(index.Manifests[0].Digest): manifestBlob,
		ocispec.ImageIndexFile:          indexBlob,
	} {
		if _, ok := files[name]; !ok {
			order = append(order, name)
		}
		files[name] = data
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range order {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(files[name]))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(files[name]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func hostNetwork() *runtimeapi.NamespaceOption {
	return &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}
}

// pod is a started CRI pod with one container.
type pod struct {
	id, container string
}

// startPod runs a pod (host network) with one sleeping busybox container
// and returns once the container is RUNNING; mark gets each step.
func (c *criEnv) startPod(ctx context.Context, handler string, mark func(string)) (*pod, error) {
	name := fmt.Sprintf("bench-%s-%d-%d", handler, c.seq.Add(1), time.Now().UnixNano()%1e9)
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: name},
		// No Hostname: with the host's network the pod shares the host's
		// UTS namespace, and runc refuses to set a hostname there.
		// As kubelet does: every container logs to a file.
		LogDirectory: filepath.Join(c.e.work, "pod-logs", name),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: hostNetwork()},
		},
	}
	rp, err := c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podCfg, RuntimeHandler: handler})
	if err != nil {
		return nil, fmt.Errorf("RunPodSandbox (%s): %w", handler, err)
	}
	p := &pod{id: rp.PodSandboxId}
	mark("RunPodSandbox")
	if c.sandboxOnly {
		return p, nil
	}
	cc, err := c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: p.id,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
			Image:    &runtimeapi.ImageSpec{Image: harness.BusyboxRef},
			Command:  []string{"/bin/sleep", "1000000"},
			LogPath:  "sleep/0.log",
			Linux: &runtimeapi.LinuxContainerConfig{
				SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: hostNetwork()},
			},
		},
		SandboxConfig: podCfg,
	})
	if err != nil {
		return p, fmt.Errorf("CreateContainer (%s): %w", handler, err)
	}
	p.container = cc.ContainerId
	mark("CreateContainer")
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: p.container}); err != nil {
		return p, fmt.Errorf("StartContainer (%s): %w", handler, err)
	}
	mark("StartContainer")
	for {
		st, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: p.container})
		if err != nil {
			return p, fmt.Errorf("ContainerStatus: %w", err)
		}
		if st.Status.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			break
		}
		if st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return p, fmt.Errorf("container exited: %s %s", st.Status.Reason, st.Status.Message)
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	mark("running")
	return p, nil
}

// removePod stops and removes the pod (and its containers).
func (c *criEnv) removePod(p *pod) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var errs []error
	if p.container != "" {
		// A container still "starting" (its StartContainer timed out)
		// cannot be removed until containerd gives up on it: stop it first.
		_, _ = c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: p.container, Timeout: 0})
	}
	if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		errs = append(errs, fmt.Errorf("StopPodSandbox %s: %w", p.id, err))
	}
	if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		errs = append(errs, fmt.Errorf("RemovePodSandbox %s: %w", p.id, err))
	}
	return errors.Join(errs...)
}

// timedPod is one CRI pod-start sample; the pod is removed afterwards,
// outside the timed region.
func (c *criEnv) timedPod(ctx context.Context, handler string, ph *phaseSamples) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	t0 := time.Now()
	last := t0
	p, err := c.startPod(ctx, handler, func(name string) {
		now := time.Now()
		ph.add(name, now.Sub(last))
		last = now
	})
	el := time.Since(t0)
	if p != nil {
		if rerr := c.removePod(p); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return el, err
}

// CRIReport is section 2.
type CRIReport struct {
	Variants []Summary `json:"variants"`
	// Diff is p50(runsc) - p50(runc).
	Diff float64 `json:"runsc_minus_runc_p50_ms"`
	// SandboxOnly: the samples stop at RunPodSandbox (see Degraded).
	SandboxOnly bool    `json:"sandbox_only,omitempty"`
	Degraded    string  `json:"degraded,omitempty"`
	DiffPaired  float64 `json:"runsc_minus_runc_paired_ms"`
	// Current is current gVisor's runsc (-runsc-current), if measured:
	// its version and p50(runsc current) - p50(runc).
	Current           string  `json:"runsc_current,omitempty"`
	DiffCurrent       float64 `json:"runsc_current_minus_runc_p50_ms,omitempty"`
	DiffCurrentPaired float64 `json:"runsc_current_minus_runc_paired_ms,omitempty"`
}

func (c *criEnv) bench(ctx context.Context) (*CRIReport, error) {
	what := "CRI pod"
	if c.sandboxOnly {
		what = "CRI RunPodSandbox only"
	}
	vs := []*variant{
		{name: what + ", handler runsc", run: func(ctx context.Context, ph *phaseSamples) (time.Duration, error) {
			return c.timedPod(ctx, handlerRunsc, ph)
		}},
		{name: what + ", handler runc", run: func(ctx context.Context, ph *phaseSamples) (time.Duration, error) {
			return c.timedPod(ctx, handlerRunc, ph)
		}},
	}
	if c.current != "" {
		vs = append(vs, &variant{name: what + ", handler runsc-current (" + c.current + ")", run: func(ctx context.Context, ph *phaseSamples) (time.Duration, error) {
			return c.timedPod(ctx, handlerCurrent, ph)
		}})
	}
	if err := c.e.interleave(ctx, "cri", c.e.o.warmup, c.e.o.criRuns, vs); err != nil {
		return nil, err
	}
	r := &CRIReport{SandboxOnly: c.sandboxOnly, Degraded: c.Degraded}
	for _, v := range vs {
		r.Variants = append(r.Variants, v.summary())
	}
	r.Diff = round2(r.Variants[0].P50 - r.Variants[1].P50)
	r.DiffPaired = pairedDiffMedian(vs[0].xs, vs[1].xs)
	if c.current != "" {
		r.Current = c.current
		r.DiffCurrent = round2(r.Variants[2].P50 - r.Variants[1].P50)
		r.DiffCurrentPaired = pairedDiffMedian(vs[2].xs, vs[1].xs)
	}
	return r, nil
}

// starter starts pods for the density section.
func (c *criEnv) starter(handler string) starter {
	return func(ctx context.Context, _ int) (func(), error) {
		ctx, cancel := context.WithTimeout(ctx, 3*opTimeout)
		defer cancel()
		p, err := c.startPod(ctx, handler, func(string) {})
		if p == nil {
			return nil, err
		}
		return func() {
			if err := c.removePod(p); err != nil {
				c.e.logf("density cleanup: %v", err)
			}
		}, err
	}
}
