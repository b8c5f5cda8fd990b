package harness

import (
	"context"
	"strings"
	"testing"
	"time"
)

// StartCRIDaemonT starts a CRI daemon for t (skipping, or failing in CI,
// when not root or a prerequisite is missing) and stops it in t's cleanup,
// printing the daemon log tail first if t failed. What Stop had to clean up
// fails a test that had passed.
func StartCRIDaemonT(t testing.TB, opts CRIDaemonOptions) *CRIDaemon {
	t.Helper()
	RequireRoot(t)
	bin, _, err := DaemonBinaries(opts.Version)
	if err != nil {
		t.Fatal(err)
	}
	RequireBinary(t, bin)
	RequireBinary(t, Runsc())
	RequireBinary(t, BusyboxBinary)
	RequireBinary(t, CNIBinDir+"/bridge")
	RequireBinary(t, CNIBinDir+"/host-local")
	RequireBinary(t, CNIBinDir+"/loopback")
	RequireBinary(t, "ip")
	if opts.PauseBinary == "" {
		RequireBinary(t, "gcc")
	}
	if opts.Logf == nil {
		opts.Logf = TLogf(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartCRIDaemon(ctx, opts)
	if err != nil {
		t.Fatalf("start containerd %s with CRI: %v", opts.Version, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd %s log tail (%s):\n%s", c.Version, c.LogPath, c.LogTail(200))
		}
		if err := c.Stop(); err != nil {
			if t.Failed() {
				t.Logf("stopping containerd %s: %v", opts.Version, err)
			} else {
				t.Errorf("stopping containerd %s: %v", opts.Version, err)
			}
		}
	})
	return c
}

// AssertNoPodLeftovers fails t if the pod left anything behind (see
// CRIDaemon.PodLeftovers), after LeftoverGrace.
func AssertNoPodLeftovers(t testing.TB, c *CRIDaemon, p PodRecord) {
	t.Helper()
	if left := c.WaitNoPodLeftovers(LeftoverGrace, p); len(left) > 0 {
		t.Errorf("pod %s left behind after StopPodSandbox+RemovePodSandbox:\n  %s", p.SandboxID, strings.Join(left, "\n  "))
	}
}
