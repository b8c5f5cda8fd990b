// Package integration holds the end-to-end tests: real containerd daemons
// (1.6 from Debian, 2.4 built from source), real runsc, and the shim built
// from this repository. Run them as root with `make test` or
//
//	go test -v -count=1 ./integration/...
//
// Without root or a binary they skip, except with CI=true, where they fail.
package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/integration/harness"
)

var (
	shimOnce sync.Once
	shimDir  string
	shimErr  error
	// runID makes this run's container ids unique on the machine, so leak
	// checks that grep command lines and mounts for an id are exact.
	runID = randomHex(3)
)

func TestMain(m *testing.M) {
	var raceDir string
	if harness.RaceShim() {
		// Every shim (started by containerd, which inherits this
		// environment) writes its race reports here.
		var err error
		if raceDir, err = os.MkdirTemp("", "runsc-shim-race"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Setenv("GORACE", "log_path="+raceDir+"/race halt_on_error=0")
	}
	code := m.Run()
	if shimDir != "" {
		os.RemoveAll(shimDir)
	}
	if runscNodeBin != "" {
		os.RemoveAll(filepath.Dir(runscNodeBin))
	}
	if raceDir != "" {
		if reports := harness.RaceReports(raceDir); len(reports) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: %d race report(s) from shims built with -race:\n%s\n", len(reports), strings.Join(reports, "\n"))
			code = 1
		} else {
			fmt.Println("race detector: no reports from the shims")
		}
		os.RemoveAll(raceDir)
	}
	os.Exit(code)
}

// shim builds the shim once per test binary and returns its directory.
func shim(t *testing.T) string {
	t.Helper()
	shimOnce.Do(func() {
		shimDir, shimErr = os.MkdirTemp("", "runsc-shim-bin")
		if shimErr == nil {
			_, shimErr = harness.BuildShim(shimDir, harness.TLogf(t))
		}
	})
	if shimErr != nil {
		t.Fatalf("build shim: %v", shimErr)
	}
	return shimDir
}

// containerID returns a container id unique to this run.
func containerID(name string) string {
	return fmt.Sprintf("it-%s-%s", name, runID)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// forEachDaemon runs f, sequentially, as subtest "containerd-<version>"
// against a fresh daemon of each version in harness.Versions.
func forEachDaemon(t *testing.T, opts harness.DaemonOptions, f func(t *testing.T, d *harness.Daemon)) {
	t.Helper()
	for _, v := range harness.Versions {
		t.Run("containerd-"+v, func(t *testing.T) {
			o := opts
			o.Version = v
			d := harness.StartDaemonT(t, o)
			f(t, d)
		})
	}
}
