// Package harness runs real containerd daemons, a locally built busybox
// image and the freshly built containerd-shim-runsc-v1 for the end-to-end
// tests in ./integration and for the demo program.
//
// Every function that does real work returns an error and takes a Logf, so
// the demo can use it without a *testing.T; the ...T variants in testing.go
// wrap them for tests, register cleanups and print the daemon log on failure.
//
// Environment:
//
//	CI=true              a missing prerequisite (root, a binary) fails instead of skipping
//	CONTAINERD24         path of the containerd 2.4 binary (default /var/cache/runsc-shim-ci/bin/containerd);
//	                     ctr and containerd-shim-runc-v2 are taken from the same directory
//	HARNESS_KEEP=1       keep each daemon's temp dir (config, log, state) after Stop
//	HARNESS_RUNSC_DEBUG=1 runsc.toml turns on runsc debug logs into <dir>/runsc-logs/
package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Logf is where the harness reports progress. A nil Logf discards.
type Logf func(format string, args ...any)

func (l Logf) printf(format string, args ...any) {
	if l != nil {
		l(format, args...)
	}
}

// StderrLogf logs to the process's stderr, for programs.
func StderrLogf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// InCI reports whether the environment says this is a CI run (CI=true).
// In CI a missing prerequisite fails the test instead of skipping it.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1" || v == "yes"
}

// Unavailable skips the test with the reason, or fails it when InCI: a CI
// run must never pass by skipping.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true, prerequisite missing: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot skips (fails in CI) unless running as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root (euid %d)", os.Geteuid())
	}
}

// RequireBinary skips (fails in CI) unless the named binary exists: an
// absolute path must be an executable file, a bare name must be on PATH.
// It returns the resolved path.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := lookBinary(name)
	if err != nil {
		Unavailable(t, "%v", err)
	}
	return p
}

func lookBinary(name string) (string, error) {
	if strings.Contains(name, "/") {
		st, err := os.Stat(name)
		if err != nil {
			return "", fmt.Errorf("binary %s: %w", name, err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("binary %s is not an executable file", name)
		}
		return name, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("binary %s not found on PATH: %w", name, err)
	}
	return p, nil
}
