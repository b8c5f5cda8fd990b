package shim

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Revision is the VCS revision the shim was built from, set at build time
// (else taken from the Go build info).
var Revision = ""

// versionAction reports whether args ask for the version (-v, -version).
func versionAction(args []string) bool {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	v := fs.Bool("v", false, "")
	version := fs.Bool("version", false, "")
	// The rest of pkg/shim's flags, so that they parse.
	for _, b := range []string{"debug", "info"} {
		fs.Bool(b, false, "")
	}
	for _, s := range []string{"namespace", "id", "socket", "debug-socket", "bundle", "address", "publish-binary"} {
		fs.String(s, "", "")
	}
	if err := fs.Parse(args); err != nil {
		return false
	}
	return *v || *version
}

func revision() string {
	if Revision != "" {
		return Revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" && dirty {
			rev += ".m"
		}
		if rev != "" {
			return rev
		}
	}
	return "unknown"
}

// printVersion writes the shim's own version (not containerd's library's)
// in the layout of containerd's runc shim, and the runsc on PATH.
func printVersion(w io.Writer, runscBinary string) {
	fmt.Fprintf(w, "%s:\n", shimBinaryName)
	fmt.Fprintf(w, "  Version:    %s\n", Version)
	fmt.Fprintf(w, "  Revision:   %s\n", revision())
	fmt.Fprintf(w, "  Go version: %s\n", runtime.Version())
	fmt.Fprintf(w, "  runsc:      %s\n", runscVersion(runscBinary))
}

const shimBinaryName = "containerd-shim-runsc-v1"

// runscVersion is `runsc --version`'s first line and the binary, or why
// there is none.
func runscVersion(name string) string {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Sprintf("not found (%s is not on PATH; runsc.toml's binary_name may name another)", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return fmt.Sprintf("%s --version failed: %v", path, err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return fmt.Sprintf("%s (%s)", strings.TrimPrefix(first, "runsc version "), path)
}
