package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// ModulePath is the Go module this harness belongs to.
const ModulePath = "github.com/gvisor-shim/containerd-shim-runsc-v1"

// ShimBinaryName is the file name containerd looks up on PATH for the
// runtime io.containerd.runsc.v1.
const ShimBinaryName = "containerd-shim-runsc-v1"

// RuntimeName is the containerd runtime name served by the shim.
const RuntimeName = "io.containerd.runsc.v1"

// goTool returns the go command to use.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	// The toolchain's usual place; exec names it if it is not there.
	return "/usr/local/go/bin/go"
}

// RepoRoot finds the repository root: the directory of the go.mod of
// ModulePath, asked from `go env GOMOD` in the working directory, falling
// back to this source file's location.
func RepoRoot() (string, error) {
	cmd := exec.Command(goTool(), "env", "GOMOD")
	if out, err := cmd.Output(); err == nil {
		gomod := strings.TrimSpace(string(out))
		if isOurGoMod(gomod) {
			return filepath.Dir(gomod), nil
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		// file is <root>/integration/harness/build.go
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		if isOurGoMod(filepath.Join(root, "go.mod")) {
			return root, nil
		}
	}
	return "", fmt.Errorf("cannot find the go.mod of %s from %s", ModulePath, mustGetwd())
}

func isOurGoMod(path string) bool {
	if path == "" || path == os.DevNull {
		return false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == ModulePath
		}
	}
	return false
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}

// BuildShim builds ./cmd/containerd-shim-runsc-v1 into dir and returns the
// binary's path. Put dir first on the daemon's PATH (DaemonOptions.ShimDirs).
func BuildShim(dir string, logf Logf) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, ShimBinaryName)
	logf.printf("building %s from %s", out, root)
	args := []string{"build", "-o", out}
	if RaceShim() {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool(), append(args, "./cmd/"+ShimBinaryName)...)
	cmd.Dir = root
	if RaceShim() {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	}
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/%s: %w\n%s", ShimBinaryName, err, buf.String())
	}
	return out, nil
}

// RaceShim reports whether SHIM_RACE asks for a shim built with -race (make
// test-race). Its reports go where GORACE's log_path says: see
// RaceReports.
func RaceShim() bool { return os.Getenv("SHIM_RACE") != "" }

// RaceReports returns the race detector reports written under dir by
// shims run with GORACE=log_path=<dir>/race.
func RaceReports(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "race.*"))
	var out []string
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && len(b) > 0 {
			out = append(out, f+":\n"+string(b))
		}
	}
	return out
}

// BuildRunscNode builds ./cmd/runsc-node (the node installer, static like
// `make build`) into dir and returns the binary's path.
func BuildRunscNode(dir string, logf Logf) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "runsc-node")
	logf.printf("building %s from %s", out, root)
	cmd := exec.Command(goTool(), "build", "-o", out, "./cmd/runsc-node")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/runsc-node: %w\n%s", err, b)
	}
	return out, nil
}
