package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// RunscBinary is Debian's runsc, the default runsc under test.
const RunscBinary = "/usr/bin/runsc"

// RunscEnv names the runsc under test: `make test RUNSC=<path>` runs the
// integration suite against any runsc binary.
const RunscEnv = "RUNSC"

// Runsc is the runsc binary under test: $RUNSC, or RunscBinary. Every
// runsc.toml the harness writes names it as binary_name.
func Runsc() string {
	if p := os.Getenv(RunscEnv); p != "" {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return p
	}
	return RunscBinary
}

// RunscDebugEnv, when set to a non-empty value, makes WriteRunscConfig turn
// on runsc debug logging into <dir>/runsc-logs/ (kept only with
// HARNESS_KEEP=1, since it is under the daemon dir in the tests).
const RunscDebugEnv = "HARNESS_RUNSC_DEBUG"

// RunscConfig is a written runsc.toml.
type RunscConfig struct {
	// Path of the runsc.toml, for runtimeoptions.Options.ConfigPath.
	Path string
	// Root is the private runsc state root (top-level `root` key).
	Root string
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func tomlKey(k string) string {
	if bareKey.MatchString(k) {
		return k
	}
	return strconv.Quote(k)
}

// WriteRunscConfig writes <dir>/runsc.toml with `binary_name = Runsc()`,
// `root = "<dir>/runsc-root"` and a [runsc_config] table holding network = "none" (this host refuses
// runsc's default sandbox network) plus the given runsc flags, which win
// over the default. Keys are written sorted.
func WriteRunscConfig(dir string, flags map[string]string) (RunscConfig, error) {
	return WriteRunscConfigFor(dir, Runsc(), flags)
}

// WriteRunscConfigFor is WriteRunscConfig for the runsc binary at binary.
func WriteRunscConfigFor(dir, binary string, flags map[string]string) (RunscConfig, error) {
	cfg := RunscConfig{
		Path: filepath.Join(dir, "runsc.toml"),
		Root: filepath.Join(dir, "runsc-root"),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cfg, err
	}
	all := map[string]string{"network": "none"}
	if os.Getenv(RunscDebugEnv) != "" {
		all["debug"] = "true"
		all["debug-log"] = filepath.Join(dir, "runsc-logs") + "/"
		all["strace"] = "true"
	}
	for k, v := range flags {
		all[k] = v
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "binary_name = %s\nroot = %s\n\n[runsc_config]\n", strconv.Quote(binary), strconv.Quote(cfg.Root))
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s = %s\n", tomlKey(k), strconv.Quote(all[k]))
	}
	if err := os.WriteFile(cfg.Path, []byte(b.String()), 0o644); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// IsGVisorKernel reports whether release (uname -r, without the newline) is
// gVisor's kernel: runsc 20221219 reports "4.4.0", current releases
// "<version>-gvisor" (4.19.0-gvisor in 2026-09).
func IsGVisorKernel(release string) bool {
	return release == "4.4.0" || strings.HasSuffix(release, "-gvisor")
}

// NullNetNS is the file in a runsc root where current runsc (2023+) pins an
// empty network namespace (an nsfs bind mount) that every gofer of that root
// joins, so that gofers start without creating one each. It is runsc's own
// per-root state, shared by all the root's sandboxes and kept while the root
// is in use: runsc unmounts it only when it removes a root (`runsc do`), and
// the shim never removes a runsc root. Whoever removes a root unmounts it
// first (the harness's daemon teardown does).
const NullNetNS = "null-netns"

// RunscRootLeftovers lists what a runsc root holds besides runsc's own
// per-root state: with no container left, it must be empty. NullNetNS is
// accepted only as an nsfs mount.
func RunscRootLeftovers(root string) []string {
	entries, err := os.ReadDir(root)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return []string{err.Error()}
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		if e.Name() == NullNetNS {
			if isNsfsMount(p) {
				continue
			}
			out = append(out, p+" (not an nsfs mount)")
			continue
		}
		out = append(out, p)
	}
	return out
}

func isNsfsMount(path string) bool {
	for _, m := range mounts() {
		if m.mountPoint != path {
			continue
		}
		// mountinfo: ... <mount point> <options> [optional fields] - <fstype> ...
		if _, rest, ok := strings.Cut(m.line, " - "); ok && strings.HasPrefix(rest, "nsfs ") {
			return true
		}
	}
	return false
}
