package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// NetworkModes are the runsc network modes tried, in order of preference:
// runsc's own network stack, the pod's network namespace, no network.
var NetworkModes = []string{"sandbox", "host", "none"}

// networkWhy says what choosing a mode means for pods.
var networkWhy = map[string]string{
	"sandbox": "runsc's own network stack (its default, the most isolated) starts a sandbox on this host",
	"host":    "pods use the network namespace CNI set up for them, through the host kernel's stack",
	"none":    "pods get only a loopback interface",
}

// RunscBinary is the runsc runsc-node found: its host path, the path it
// runs it by, and its version.
type RunscBinary struct {
	HostPath string
	Path     string
	Features *runsc.Features
}

// findRunsc resolves the runsc binary on the host: opts.Runsc (a host path
// or a name) or runsc on containerd's PATH.
func (n *Node) findRunsc(ctx context.Context) (*RunscBinary, error) {
	name := n.opts.Runsc
	if name == "" {
		name = runsc.DefaultCommand
	}
	hp, err := n.host.LookPath(name, n.containerdPATH())
	if err != nil {
		return nil, fmt.Errorf("runsc: %w", err)
	}
	p := n.host.mustPath(hp)
	f, err := runsc.Probe(ctx, p, nil)
	if err != nil {
		return nil, fmt.Errorf("runsc %s: %w", hp, err)
	}
	return &RunscBinary{HostPath: hp, Path: p, Features: f}, nil
}

// probeTimeout bounds one test sandbox.
const probeTimeout = 30 * time.Second

// ProbeResult is the outcome of starting a test sandbox with one setting.
type ProbeResult struct {
	Network string
	Err     error
	Took    time.Duration
}

// ProbeNetworks starts `runsc do true` with each network mode.
func ProbeNetworks(ctx context.Context, r *RunscBinary, modes []string) []ProbeResult {
	var out []ProbeResult
	for _, m := range modes {
		start := time.Now()
		err := probeSandbox(ctx, r, "--network="+m)
		out = append(out, ProbeResult{Network: m, Err: err, Took: time.Since(start)})
	}
	return out
}

func probeSandbox(ctx context.Context, r *RunscBinary, flags ...string) error {
	dir, err := os.MkdirTemp("", "runsc-node-probe")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// A sandbox that starts does so in well under a second.
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	rs := &runsc.Runsc{Command: r.Path, Root: filepath.Join(dir, "root"), Bundle: dir, Flags: flags, Features: r.Features}
	_, err = rs.Do(ctx, "true")
	return err
}

// Platforms are the runsc platforms doctor tries: systrap (runsc's default
// since 2023) and ptrace (before). Not kvm: runsc 20221219 hangs in
// `do --platform=kvm` on this CI host, which has /dev/kvm.
var Platforms = []string{"systrap", "ptrace"}

// ProbePlatforms starts `runsc --network=none --platform=<p> do true` for each.
func ProbePlatforms(ctx context.Context, r *RunscBinary) (works []string) {
	for _, p := range Platforms {
		if probeSandbox(ctx, r, "--network=none", "--platform="+p) == nil {
			works = append(works, p)
		}
	}
	return works
}

// ChooseNetwork picks the first mode that started and explains why.
func ChooseNetwork(results []ProbeResult) (string, string, error) {
	var failed []string
	for _, r := range results {
		if r.Err == nil {
			why := fmt.Sprintf("network = %q: %s", r.Network, networkWhy[r.Network])
			if len(failed) > 0 {
				why += " (" + strings.Join(failed, "; ") + ")"
			}
			return r.Network, why, nil
		}
		failed = append(failed, fmt.Sprintf("network %q fails: %v", r.Network, r.Err))
	}
	return "", "", fmt.Errorf("no runsc network mode starts a sandbox on this host: %s", strings.Join(failed, "; "))
}

// runscTOML is the runsc.toml install writes.
func runscTOML(binaryName, network, why string) []byte {
	var b strings.Builder
	b.WriteString("# Written by runsc-node install for containerd-shim-runsc-v1 (see its README, \"runsc.toml\").\n")
	b.WriteString("# " + strings.ReplaceAll(why, "\n", " ") + "\n")
	if binaryName != "" {
		fmt.Fprintf(&b, "binary_name = %s\n", tomlString(binaryName))
	}
	fmt.Fprintf(&b, "\n[runsc_config]\n  network = %s\n", tomlString(network))
	return []byte(b.String())
}
