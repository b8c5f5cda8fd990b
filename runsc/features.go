package runsc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
)

// FeaturesCacheDir is where probed features are kept across shim processes
// (one file per runsc binary). /run is emptied at boot, and each file is
// checked against the binary's identity before use, so a runsc upgraded in
// place is probed again.
var FeaturesCacheDir = "/run/containerd-shim-runsc-v1/features"

// Features is what one runsc binary supports, learned by asking it: its
// version, its global flags (`runsc flags`) and its subcommands (`runsc help`).
// gVisor's releases differ in all three, and `runsc --version` alone is not
// enough: binaries built from gVisor's Go module say "VERSION_MISSING".
type Features struct {
	// Binary is the absolute path of the binary probed.
	Binary string `json:"binary"`
	// Identity is the binary's device, inode, size and modification time
	// when it was probed.
	Identity string `json:"identity"`
	// Version is what `runsc --version` printed after "runsc version".
	Version string `json:"version"`
	// Spec is the OCI runtime-spec version runsc implements.
	Spec string `json:"spec,omitempty"`
	// Flags are the global flag names (without dashes).
	Flags []string `json:"flags"`
	// Subcommands are the subcommand names `runsc help` lists.
	Subcommands []string `json:"subcommands"`

	flags, subs map[string]bool
}

// HasFlag reports whether runsc has the global flag name (no dashes).
func (f *Features) HasFlag(name string) bool { return f.flags[name] }

// HasSubcommand reports whether runsc has the subcommand name.
func (f *Features) HasSubcommand(name string) bool { return f.subs[name] }

// String describes the binary for messages: "runsc 0.0~20221219.0 (/usr/bin/runsc)".
func (f *Features) String() string {
	return fmt.Sprintf("runsc %s (%s)", f.Version, f.Binary)
}

func (f *Features) index() {
	f.flags = make(map[string]bool, len(f.Flags))
	for _, n := range f.Flags {
		f.flags[n] = true
	}
	f.subs = make(map[string]bool, len(f.Subcommands))
	for _, n := range f.Subcommands {
		f.subs[n] = true
	}
}

var (
	featuresMu sync.Mutex
	features   = map[string]*Features{} // by Binary + Identity
)

// Probe returns the features of the runsc binary command (a name looked up
// in PATH, or a path). It asks the binary once: the answer is kept in memory
// and in FeaturesCacheDir, keyed by the binary's path and identity. m starts
// and reaps the questions (nil: go-runc's default monitor); a subreaper
// passes its reaper.
func Probe(ctx context.Context, command string, m runc.ProcessMonitor) (*Features, error) {
	if command == "" {
		command = DefaultCommand
	}
	bin, err := exec.LookPath(command)
	if err != nil {
		return nil, fmt.Errorf("runsc binary %q: %w", command, err)
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return nil, fmt.Errorf("runsc binary %q: %w", command, err)
	}
	id, err := identity(bin)
	if err != nil {
		return nil, fmt.Errorf("runsc binary %q: %w", command, err)
	}
	key := bin + "\x00" + id
	featuresMu.Lock()
	defer featuresMu.Unlock()
	if f := features[key]; f != nil {
		return f, nil
	}
	cache := filepath.Join(FeaturesCacheDir, cacheName(bin))
	if f := readFeatures(cache, bin, id); f != nil {
		features[key] = f
		log.G(ctx).WithField("runsc", f.String()).Debugf("runsc features from %s", cache)
		return f, nil
	}
	// The shims of pods started at once after an install or upgrade would
	// all ask runsc the same questions on their start path: one asks, the
	// others wait for its answer in the cache.
	if unlock, err := lockCache(cache); err == nil {
		defer unlock()
		if f := readFeatures(cache, bin, id); f != nil {
			features[key] = f
			log.G(ctx).WithField("runsc", f.String()).Debugf("runsc features from %s (probed by another shim)", cache)
			return f, nil
		}
	} else {
		log.G(ctx).WithError(err).Debug("cannot lock the runsc features cache: probing without it")
	}
	start := time.Now()
	f, err := probe(ctx, bin, m)
	if err != nil {
		return nil, err
	}
	f.Identity = id
	features[key] = f
	log.G(ctx).WithFields(log.Fields{
		"runsc":       f.String(),
		"spec":        f.Spec,
		"flags":       len(f.Flags),
		"subcommands": strings.Join(f.Subcommands, ","),
		"took":        time.Since(start).Round(time.Millisecond),
	}).Info("probed runsc")
	if err := writeFeatures(cache, f); err != nil {
		log.G(ctx).WithError(err).Warn("cannot cache runsc features")
	}
	return f, nil
}

// identity identifies a binary's content well enough to notice an upgrade
// (a package manager replaces the file: new inode, new mtime).
func identity(bin string) (string, error) {
	st, err := os.Stat(bin)
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file")
	}
	var dev, ino uint64
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		dev, ino = uint64(sys.Dev), sys.Ino
	}
	return fmt.Sprintf("%d:%d:%d:%d", dev, ino, st.Size(), st.ModTime().UnixNano()), nil
}

func cacheName(bin string) string {
	sum := sha256.Sum256([]byte(bin))
	return hex.EncodeToString(sum[:8]) + ".json"
}

func readFeatures(path, bin, id string) *Features {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var f Features
	if json.Unmarshal(b, &f) != nil || f.Binary != bin || f.Identity != id || len(f.Flags) == 0 {
		return nil
	}
	f.index()
	return &f
}

// lockCache takes an exclusive flock on <cache>.lock, released when the
// holder unlocks or dies; a holder probes for at most 3*probeTimeout.
func lockCache(cache string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(cache+".lock", os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

func writeFeatures(path string, f *Features) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// Shims of several pods may probe at once: write whole files only.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".features-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// probeTimeout bounds each question to the binary.
const probeTimeout = 10 * time.Second

func probe(ctx context.Context, bin string, m runc.ProcessMonitor) (*Features, error) {
	ask := func(args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := runProbe(m, cmd)
		if err != nil {
			return out.Bytes(), fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
		}
		return out.Bytes(), nil
	}
	f := &Features{Binary: bin}
	out, err := ask("--version")
	if err != nil {
		return nil, fmt.Errorf("probe runsc: %w", err)
	}
	f.Version, f.Spec = parseVersion(out)
	if f.Version == "" {
		return nil, fmt.Errorf("probe runsc: %s --version printed %q, not a runsc version", bin, firstLine(out))
	}
	// `runsc flags` prints the global flags (Go's flag.PrintDefaults);
	// `runsc help` lists the subcommands. Both exit 0.
	out, err = ask("flags")
	if err != nil {
		return nil, fmt.Errorf("probe runsc: %w", err)
	}
	f.Flags = parseFlags(out)
	if len(f.Flags) == 0 {
		return nil, fmt.Errorf("probe runsc: %s flags listed no flags", bin)
	}
	out, err = ask("help")
	if err != nil {
		return nil, fmt.Errorf("probe runsc: %w", err)
	}
	f.Subcommands = parseSubcommands(out)
	if len(f.Subcommands) == 0 {
		return nil, fmt.Errorf("probe runsc: %s help listed no subcommands", bin)
	}
	f.index()
	return f, nil
}

func runProbe(m runc.ProcessMonitor, cmd *exec.Cmd) error {
	if m == nil {
		m = runc.Monitor
	}
	ec, err := m.Start(cmd)
	if err != nil {
		return err
	}
	status, err := m.Wait(cmd, ec)
	releaseProcess(cmd)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d", status)
	}
	return err
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

var (
	versionRE = regexp.MustCompile(`(?m)^runsc version (\S+)`)
	specRE    = regexp.MustCompile(`(?m)^spec: (\S+)`)
	flagRE    = regexp.MustCompile(`^\s+-([A-Za-z0-9][A-Za-z0-9_.-]*)`)
	subRE     = regexp.MustCompile(`^\t([a-z][a-z0-9-]*)\s`)
)

func parseVersion(out []byte) (version, spec string) {
	if m := versionRE.FindSubmatch(out); m != nil {
		version = string(m[1])
	}
	if m := specRE.FindSubmatch(out); m != nil {
		spec = string(m[1])
	}
	return version, spec
}

func parseFlags(out []byte) []string {
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := flagRE.FindStringSubmatch(sc.Text()); m != nil {
			seen[m[1]] = true
		}
	}
	return sortedKeys(seen)
}

// parseSubcommands reads the subcommand lists of `runsc help` (one
// "\t<name>   <synopsis>" line each, under "Subcommands..." headings).
func parseSubcommands(out []byte) []string {
	seen := map[string]bool{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Subcommands"):
			in = true
		case line == "" || !strings.HasPrefix(line, "\t"):
			in = false
		case in:
			if m := subRE.FindStringSubmatch(line + " "); m != nil {
				seen[m[1]] = true
			}
		}
	}
	return sortedKeys(seen)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ErrUnsupported is wrapped by errors for something the installed runsc
// does not have.
var ErrUnsupported = errors.New("not supported by this runsc")

// NewFeatures builds Features by hand (tests, and callers that know).
func NewFeatures(binary, version string, flags, subcommands []string) *Features {
	f := &Features{Binary: binary, Version: version, Flags: flags, Subcommands: subcommands}
	f.index()
	return f
}
