package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
)

// TLogf returns a Logf that logs to t.
func TLogf(t testing.TB) Logf {
	return func(format string, args ...any) {
		t.Helper()
		t.Logf(format, args...)
	}
}

// BuildShimT builds the shim into a fresh temp dir of t and returns the dir
// (to be put on the daemon's PATH).
func BuildShimT(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := BuildShim(dir, TLogf(t)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// StartDaemonT starts a daemon for t (skipping, or failing in CI, when not
// root or the binary is missing) and stops it in t's cleanup. If t failed,
// the cleanup prints the tail of the daemon log first. Leftover processes
// or mounts found by Stop fail a test that had passed.
func StartDaemonT(t testing.TB, opts DaemonOptions) *Daemon {
	t.Helper()
	RequireRoot(t)
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, _, err = DaemonBinaries(opts.Version); err != nil {
			t.Fatal(err)
		}
	}
	RequireBinary(t, bin)
	if opts.Logf == nil {
		opts.Logf = TLogf(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := StartDaemon(ctx, opts)
	if err != nil {
		t.Fatalf("start containerd %s: %v", opts.Version, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd %s log tail (%s):\n%s", d.Version, d.LogPath, d.LogTail(200))
		}
		if err := d.Stop(); err != nil {
			if t.Failed() {
				t.Logf("stopping containerd %s: %v", d.Version, err)
			} else {
				t.Errorf("stopping containerd %s: %v", d.Version, err)
			}
		}
	})
	return d
}

// ImportBusyboxT imports the busybox image into d or fails t.
func ImportBusyboxT(t testing.TB, d *Daemon) client.Image {
	t.Helper()
	RequireBinary(t, BusyboxBinary)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := ImportBusybox(ctx, d.Client, TLogf(t))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// WriteRunscConfigT is WriteRunscConfig failing t on error.
func WriteRunscConfigT(t testing.TB, dir string, flags map[string]string) RunscConfig {
	t.Helper()
	cfg, err := WriteRunscConfig(dir, flags)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// LeftoverGrace is how long AssertNoLeftovers waits for shims and sandboxes
// to go away after Delete returned.
var LeftoverGrace = 5 * time.Second

// AssertNoLeftovers fails t if container id left processes, mounts, runsc
// state under runscRoot, its task bundle, its shim socket or any of extra
// behind (see Daemon.Leftovers).
func AssertNoLeftovers(t testing.TB, d *Daemon, id, runscRoot string, extra ...string) {
	t.Helper()
	if left := d.WaitNoLeftovers(LeftoverGrace, id, runscRoot, extra...); len(left) > 0 {
		t.Errorf("container %s left behind after delete:", id)
		for _, l := range left {
			t.Errorf("  %s", l)
		}
	}
}

// LogOnFailure registers a cleanup that, if t failed, logs the daemon log
// lines mentioning id (at most the last 80), next to the failure.
func LogOnFailure(t testing.TB, d *Daemon, id string) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		lines := d.LogGrep(id)
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		t.Logf("containerd %s log lines mentioning %s:\n%s", d.Version, id, strings.Join(lines, "\n"))
	})
}
