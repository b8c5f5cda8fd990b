package harness

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ShimSocketRoot is where containerd's shim library puts shim sockets.
const ShimSocketRoot = "/run/containerd/s"

// DefaultShimSocket is the socket path containerd's shim library derives for
// shim id (pkg/shim.SocketAddress): sha256(<grpc address>/<ns>/<id>).
func (d *Daemon) DefaultShimSocket(id string) string {
	sum := sha256.Sum256([]byte(filepath.Join(d.Address, d.Namespace, id)))
	return fmt.Sprintf("%s/%x", ShimSocketRoot, sum)
}

// ShimAddress reads the shim's socket path from the task bundle: the
// `address` file the shim writes, else the address in containerd 2.x's
// bootstrap.json; without the unix:// scheme. Call it while the task exists
// and pass the result to AssertNoLeftovers as an extra path.
func (d *Daemon) ShimAddress(id string) (string, error) {
	bundle := d.TaskBundle(id)
	var a string
	if b, err := os.ReadFile(filepath.Join(bundle, "address")); err == nil {
		a = strings.TrimSpace(string(b))
	} else if b, err2 := os.ReadFile(filepath.Join(bundle, "bootstrap.json")); err2 == nil {
		var params struct {
			Address string `json:"address"`
		}
		if err := json.Unmarshal(b, &params); err != nil {
			return "", fmt.Errorf("bootstrap.json: %w", err)
		}
		a = params.Address
	} else {
		return "", err
	}
	return strings.TrimPrefix(a, "unix://"), nil
}

// Leftovers lists what container id left behind:
//   - processes of runsc (runsc, runsc-gofer, runsc-sandbox, ...) or of the
//     runsc shim whose command line mentions id;
//   - mounts mentioning id in /proc/self/mountinfo;
//   - entries under runscRoot whose name contains id (if runscRoot != "");
//   - the task bundle <state>/io.containerd.runtime.v2.task/<ns>/<id>;
//   - the default shim socket for id, and every path in extra.
func (d *Daemon) Leftovers(id, runscRoot string, extra ...string) []string {
	var out []string
	for _, p := range processes() {
		if p.pid == os.Getpid() || !strings.Contains(p.cmdline, id) {
			continue
		}
		base := filepath.Base(p.argv[0])
		if strings.HasPrefix(base, "runsc") || strings.Contains(base, "containerd-shim-runsc") {
			out = append(out, fmt.Sprintf("process %d: %s", p.pid, shorten(p.cmdline, 200)))
		}
	}
	for _, m := range mounts() {
		if strings.Contains(m.line, id) {
			out = append(out, "mount: "+m.line)
		}
	}
	if runscRoot != "" {
		_ = filepath.WalkDir(runscRoot, func(path string, e fs.DirEntry, err error) error {
			if err == nil && strings.Contains(e.Name(), id) {
				out = append(out, "runsc state: "+path)
			}
			return nil
		})
	}
	paths := append([]string{d.TaskBundle(id), d.DefaultShimSocket(id)}, extra...)
	for _, p := range paths {
		if p == "" {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			out = append(out, "path exists: "+p)
		}
	}
	return out
}

// WaitNoLeftovers polls Leftovers until it is empty or grace has passed
// (shims and sandboxes exit asynchronously after Delete returns) and returns
// the last non-empty result.
func (d *Daemon) WaitNoLeftovers(grace time.Duration, id, runscRoot string, extra ...string) []string {
	deadline := time.Now().Add(grace)
	for {
		left := d.Leftovers(id, runscRoot, extra...)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}
