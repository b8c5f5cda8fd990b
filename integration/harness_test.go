package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
	"golang.org/x/sys/unix"
)

// TestHarnessRunc checks the harness itself with containerd's runc shim: the
// daemon starts with CRI disabled, the busybox image imports and runs, and
// the leak check passes for a well-behaved shim.
func TestHarnessRunc(t *testing.T) {
	harness.RequireRoot(t)
	harness.RequireBinary(t, "runc")
	forEachDaemon(t, harness.DaemonOptions{}, func(t *testing.T, d *harness.Daemon) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()

		ps, err := d.Client.IntrospectionService().Plugins(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps.Plugins {
			if strings.Contains(p.Type, "cri") || p.ID == "cri" {
				t.Errorf("CRI plugin %s.%s loaded although disabled", p.Type, p.ID)
			}
		}

		img := harness.ImportBusyboxT(t, d)
		var uts unix.Utsname
		if err := unix.Uname(&uts); err != nil {
			t.Fatal(err)
		}
		hostRelease := unix.ByteSliceToString(uts.Release[:])

		id := containerID("runc-" + strings.ReplaceAll(d.Version, ".", ""))
		res, err := d.Run(ctx, harness.RunOptions{
			ID:      id,
			Image:   img,
			Runtime: "io.containerd.runc.v2",
			Args:    []string{"sh", "-c", "uname -r; echo err >&2; exit 3"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(res.Stdout); got != hostRelease {
			t.Errorf("runc uname -r = %q, want host's %q", got, hostRelease)
		}
		if res.Stderr != "err\n" {
			t.Errorf("stderr = %q, want %q", res.Stderr, "err\n")
		}
		if res.ExitStatus != 3 {
			t.Errorf("exit status = %d, want 3", res.ExitStatus)
		}
		if res.ShimAddress == "" {
			t.Errorf("no shim address found in the task bundle")
		}
		harness.AssertNoLeftovers(t, d, id, "", res.ShimAddress)

		// The leak check must see a live task's bundle, rootfs mount and socket.
		live := containerID("runc-live-" + strings.ReplaceAll(d.Version, ".", ""))
		_, err = d.Run(ctx, harness.RunOptions{
			ID:      live,
			Image:   img,
			Runtime: "io.containerd.runc.v2",
			Args:    []string{"true"},
			AfterStart: func(ctx context.Context, task client.Task) error {
				left := d.Leftovers(live, "")
				joined := strings.Join(left, "\n")
				for _, want := range []string{"path exists: " + d.TaskBundle(live), "mount: "} {
					if !strings.Contains(joined, want) {
						t.Errorf("Leftovers of a live task lacks %q; got:\n%s", want, joined)
					}
				}
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		harness.AssertNoLeftovers(t, d, live, "")

		// ctr run --rm through the daemon's own ctr.
		ctrID := containerID("runc-ctr-" + strings.ReplaceAll(d.Version, ".", ""))
		if got := strings.TrimSpace(ctrRun(t, d, []string{"--runtime", "io.containerd.runc.v2"}, ctrID, "uname", "-r")); got != hostRelease {
			t.Errorf("ctr run uname -r = %q, want %q", got, hostRelease)
		}
		harness.AssertNoLeftovers(t, d, ctrID, "")
	})
}
