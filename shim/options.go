package shim

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/pelletier/go-toml/v2"
	"github.com/sirupsen/logrus"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

const (
	// runscOptionsType is the TypeUrl gVisor's documentation tells users to
	// put next to ConfigPath in containerd's runtime options. It names the
	// format of the file (runsc.toml), not a protobuf type.
	runscOptionsType = "io.containerd.runsc.v1.options"

	// defaultBinaryName is the runsc binary looked up in PATH when the
	// config does not name one.
	defaultBinaryName = "runsc"

	// defaultRoot is the runsc state root when the config does not set one;
	// the containerd namespace is appended to it (as gVisor's shim does).
	defaultRoot = "/run/containerd/runsc"

	// idPlaceholder is replaced with the container (or sandbox) id in
	// log_path and in runsc_config values.
	idPlaceholder = "%ID%"
)

// Config is the shim's runtime configuration, read from the file containerd
// points to with runtimeoptions.v1.Options.ConfigPath. Its format is that of
// gVisor's own shim (runsc.toml), so existing files keep working:
//
//	binary_name = "/usr/local/bin/runsc"
//	root = "/run/containerd/runsc"
//	log_level = "debug"
//	log_path = "/var/log/runsc/%ID%/shim.log"
//	[runsc_config]
//	  platform = "systrap"
//	  debug = true
//	  debug-log = "/var/log/runsc/%ID%/"
//
// The zero Config is the default configuration.
type Config struct {
	// BinaryName is the runsc binary; "" means "runsc" from PATH.
	BinaryName string `toml:"binary_name"`
	// Root is the runsc state root (runsc --root) before the containerd
	// namespace is appended; "" means /run/containerd/runsc. See RunscRoot.
	Root string `toml:"root"`
	// LogLevel is the shim's log level: one of the logrus levels (trace,
	// debug, info, warn/warning, error, fatal, panic); "" leaves it as is.
	LogLevel string `toml:"log_level"`
	// LogPath is an optional extra shim log file. %ID% is replaced with the
	// id; a path ending in "/" is a directory holding runsc-shim-%ID%.log.
	LogPath string `toml:"log_path"`
	// RunscConfig holds extra runsc global flags, flag name -> value, e.g.
	// "platform" = "ptrace", "network" = "host", "debug" = "true". %ID% in
	// a value is replaced with the id (see ForID).
	RunscConfig map[string]string `toml:"runsc_config"`
	// SystemdCgroup is `systemd-cgroup = "true"` in [runsc_config]: the
	// sandbox's cgroupsPath is in the systemd form (slice:prefix:name) and
	// the shim creates its scope through systemd. The shim implements it
	// itself and never passes --systemd-cgroup to runsc (Debian's runsc
	// ignores it on cgroup v1; see cgroup_systemd.go).
	SystemdCgroup bool `toml:"-"`

	// SandboxOverheadMiB is the memory, in MiB, a pod's sandbox host cgroup
	// gets for the sandbox itself (the Sentry, the pause container and its
	// gofer are charged to it) on top of its containers' limits; nil means
	// measured: the sandbox cgroup's usage when the first container joins.
	// See SandboxOverhead.
	SandboxOverheadMiB *int64 `toml:"sandbox_overhead_mib"`
	// ContainerOverheadMiB is the memory, in MiB, the sandbox's host cgroup
	// gets for each container that joins it on top of that container's
	// limit (its gofer and its share of the Sentry); nil means
	// DefaultContainerOverheadMiB. See ContainerOverhead.
	ContainerOverheadMiB *int64 `toml:"container_overhead_mib"`

	// The following keys exist in gVisor's runsc.toml and are accepted so
	// that existing files load.

	// ShimCgroup is the cgroup the shim should move itself into.
	ShimCgroup string `toml:"shim_cgroup"`
	// IoUID is the owner uid of the container's stdio pipes.
	IoUID uint32 `toml:"io_uid"`
	// IoGID is the owner gid of the container's stdio pipes.
	IoGID uint32 `toml:"io_gid"`
}

// fileConfig is Config as it is decoded: runsc_config values may be TOML
// strings, booleans or integers and are normalised to strings afterwards.
type fileConfig struct {
	BinaryName   string         `toml:"binary_name"`
	Root         string         `toml:"root"`
	LogLevel     string         `toml:"log_level"`
	LogPath      string         `toml:"log_path"`
	RunscConfig  map[string]any `toml:"runsc_config"`
	Overhead     *int64         `toml:"sandbox_overhead_mib"`
	PerContainer *int64         `toml:"container_overhead_mib"`
	ShimCgroup   string         `toml:"shim_cgroup"`
	IoUID        uint32         `toml:"io_uid"`
	IoGID        uint32         `toml:"io_gid"`
}

// configKeys lists the top-level keys of a config file, for error messages.
const configKeys = "binary_name, root, log_level, log_path, sandbox_overhead_mib, container_overhead_mib, shim_cgroup, io_uid, io_gid, [runsc_config]"

// FallbackSandboxOverheadMiB is the sandbox's own memory when
// sandbox_overhead_mib is unset and the sandbox cgroup's usage cannot be
// read when its first container joins: the most an idle CRI sandbox (Sentry,
// pause container and its gofer) was charged on the CI host, 11-12 MiB with
// runsc 20221219 and 14-16 MiB with current runsc (docs/compatibility.md).
const FallbackSandboxOverheadMiB = 16

// DefaultContainerOverheadMiB is container_overhead_mib when runsc.toml does
// not set it: a joined idle busybox container adds 6.3-7.5 MiB to its
// sandbox's cgroup with either runsc generation (its gofer and the Sentry's
// state for it), so a container holding memory up to its limit is not
// killed, and one that goes about 3 MiB beyond it is (docs/compatibility.md).
const DefaultContainerOverheadMiB = 10

// maxSandboxOverheadMiB bounds sandbox_overhead_mib (64 GiB).
const maxSandboxOverheadMiB = 64 << 10

// ownedFlags are runsc global flags the shim sets itself on every call.
var ownedFlags = map[string]string{
	"root":       "root",
	"log":        "",
	"log-format": "",
}

// systemdCgroupFlag is the [runsc_config] key of runsc's --systemd-cgroup,
// which the shim implements itself (Config.SystemdCgroup).
const systemdCgroupFlag = "systemd-cgroup"

// flagName is what a runsc flag name looks like (without its dashes).
var flagName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)

// typeMismatch matches go-toml's message for a value of the wrong type, which
// names this file's Go types.
var typeMismatch = regexp.MustCompile(`^cannot decode TOML (\w+) into struct field \S+ of type (.+)$`)

// goTypeName describes a fileConfig field type in TOML terms.
func goTypeName(t string) string {
	switch {
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "uint"):
		return "a non-negative integer"
	case strings.HasPrefix(t, "map["):
		return "a table"
	default:
		return t
	}
}

// LoadConfig reads and validates the config file at path. Every error names
// the file and wraps errdefs.ErrInvalidArgument.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("runsc config: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return parseConfig(b, path)
}

// parseConfig decodes and validates a config file's content; name is used in
// errors.
func parseConfig(b []byte, name string) (*Config, error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("runsc config %s: %s: %w", name, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
	}

	var fc fileConfig
	dec := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		var strict *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case errors.As(err, &strict) && len(strict.Errors) > 0:
			var msgs []string
			for i := range strict.Errors {
				e := &strict.Errors[i]
				key := strings.Join(e.Key(), ".")
				row, col := e.Position()
				msg := fmt.Sprintf("line %d, column %d: unknown key %q", row, col, key)
				if len(e.Key()) == 1 && flagName.MatchString(key) {
					msg += " (if it is a runsc flag, put it under [runsc_config])"
				}
				msgs = append(msgs, msg)
			}
			return nil, invalid("%s; known keys are %s", strings.Join(msgs, "; "), configKeys)
		case errors.As(err, &de):
			row, col := de.Position()
			msg := strings.TrimPrefix(de.Error(), "toml: ")
			if m := typeMismatch.FindStringSubmatch(msg); m != nil {
				msg = fmt.Sprintf("got a TOML %s, want %s", m[1], goTypeName(m[2]))
			}
			if k := strings.Join(de.Key(), "."); k != "" {
				msg = fmt.Sprintf("key %q: %s", k, msg)
			}
			return nil, invalid("line %d, column %d: %s", row, col, msg)
		default:
			return nil, invalid("%v", err)
		}
	}

	// A NUL byte cannot be in an argv element or a path (every runsc call
	// would fail with EINVAL); runsc --root and the shim's log file are
	// resolved from the bundle directory if relative, a different place
	// for every container of a pod.
	for _, f := range []struct{ key, v string }{
		{"binary_name", fc.BinaryName}, {"root", fc.Root}, {"log_level", fc.LogLevel},
		{"log_path", fc.LogPath}, {"shim_cgroup", fc.ShimCgroup},
	} {
		if strings.ContainsRune(f.v, 0) {
			return nil, invalid("%s %q contains a NUL byte", f.key, f.v)
		}
	}
	if fc.Root != "" && !filepath.IsAbs(fc.Root) {
		return nil, invalid("root %q is not an absolute path", fc.Root)
	}
	if fc.LogPath != "" && !filepath.IsAbs(fc.LogPath) {
		return nil, invalid("log_path %q is not an absolute path", fc.LogPath)
	}

	if fc.LogLevel != "" {
		if _, err := logrus.ParseLevel(fc.LogLevel); err != nil {
			return nil, invalid("log_level %q is not one of trace, debug, info, warn, error, fatal, panic", fc.LogLevel)
		}
	}

	if fc.Overhead != nil && (*fc.Overhead < 0 || *fc.Overhead > maxSandboxOverheadMiB) {
		return nil, invalid("sandbox_overhead_mib %d: must be between 0 and %d", *fc.Overhead, maxSandboxOverheadMiB)
	}
	if fc.PerContainer != nil && (*fc.PerContainer < 0 || *fc.PerContainer > maxSandboxOverheadMiB) {
		return nil, invalid("container_overhead_mib %d: must be between 0 and %d", *fc.PerContainer, maxSandboxOverheadMiB)
	}

	c := &Config{
		SandboxOverheadMiB:   fc.Overhead,
		ContainerOverheadMiB: fc.PerContainer,
		BinaryName:           fc.BinaryName,
		Root:                 fc.Root,
		LogLevel:             fc.LogLevel,
		LogPath:              fc.LogPath,
		ShimCgroup:           fc.ShimCgroup,
		IoUID:                fc.IoUID,
		IoGID:                fc.IoGID,
	}
	if len(fc.RunscConfig) > 0 {
		c.RunscConfig = make(map[string]string, len(fc.RunscConfig))
	}
	for _, k := range sortedKeys(fc.RunscConfig) {
		if !flagName.MatchString(k) {
			return nil, invalid("[runsc_config] key %q is not a runsc flag name (write it without leading dashes, e.g. platform = \"systrap\")", k)
		}
		if top, owned := ownedFlags[k]; owned {
			if top != "" {
				return nil, invalid("[runsc_config] must not set %q: the shim sets runsc --%s itself; use the top-level %q key", k, k, top)
			}
			return nil, invalid("[runsc_config] must not set %q: the shim sets runsc --%s itself (runsc's log goes to <bundle>/log.json; use debug-log for runsc debug logs and log_path for the shim's)", k, k)
		}
		v, err := flagValue(fc.RunscConfig[k])
		if err != nil {
			return nil, invalid("[runsc_config] %s: %v", k, err)
		}
		if k == systemdCgroupFlag {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, invalid("[runsc_config] %s: value %q is not a boolean (\"true\" or \"false\")", k, v)
			}
			c.SystemdCgroup = b
			continue
		}
		if strings.ContainsRune(v, 0) {
			return nil, invalid("[runsc_config] %s: value %q contains a NUL byte", k, v)
		}
		c.RunscConfig[k] = v
	}
	if len(c.RunscConfig) == 0 {
		c.RunscConfig = nil
	}
	return c, nil
}

// flagValue renders a decoded TOML value as a runsc flag value.
func flagValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	}
	return "", fmt.Errorf("value %v (%T) must be a string, boolean or integer", v, v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ConfigFromOptions returns the config for the options containerd sent with
// CreateTaskRequest.Options, and the path of the file it was read from ("" for
// the defaults). Errors wrap errdefs.ErrInvalidArgument.
//
//   - nil (no options) -> defaults.
//   - runtimeoptions.v1.Options (CRI and any client passing a ConfigPath): the
//     file at ConfigPath, or the defaults if ConfigPath is empty. Its TypeUrl
//     must be empty or "io.containerd.runsc.v1.options", as with gVisor's
//     shim. ConfigBody (containerd's inline copy of the runtime's options
//     table, sent when there is no ConfigPath) is ignored, as gVisor's shim
//     does: that table holds containerd's own keys (TypeUrl, SystemdCgroup...),
//     not a runsc.toml.
//   - containerd.runc.v1.Options: accepted and ignored. ctr and other clients
//     built for runc may send runc's options with any runtime; none of its
//     fields (runc binary, criu, systemd cgroup...) apply to runsc.
//   - any other type: an error naming the type url.
func ConfigFromOptions(opts typeurl.Any) (cfg *Config, path string, err error) {
	if opts == nil || (opts.GetTypeUrl() == "" && len(opts.GetValue()) == 0) {
		return defaultConfig()
	}
	if opts.GetTypeUrl() == "" {
		return nil, "", fmt.Errorf("runtime options without a type url: %w", errdefs.ErrInvalidArgument)
	}
	v, err := typeurl.UnmarshalAny(opts)
	if err != nil {
		if errors.Is(err, typeurl.ErrNotFound) {
			return nil, "", unsupportedOptions(opts.GetTypeUrl())
		}
		return nil, "", fmt.Errorf("decode runtime options %q: %v: %w", opts.GetTypeUrl(), err, errdefs.ErrInvalidArgument)
	}
	switch o := v.(type) {
	case *runtimeoptions.Options:
		if o.GetConfigPath() == "" {
			return defaultConfig()
		}
		if t := o.GetTypeUrl(); t != "" && t != runscOptionsType {
			return nil, "", fmt.Errorf("runtime options: unsupported config TypeUrl %q for %s (want %q): %w",
				t, o.GetConfigPath(), runscOptionsType, errdefs.ErrInvalidArgument)
		}
		c, err := LoadConfig(o.GetConfigPath())
		if err != nil {
			return nil, "", err
		}
		return c, o.GetConfigPath(), nil
	case *runcoptions.Options:
		return defaultConfig()
	default:
		return nil, "", unsupportedOptions(opts.GetTypeUrl())
	}
}

// defaultConfigFile is read when the runtime's options name no runsc.toml
// (containerd's minimal snippet: runtime_type alone), if it exists.
var defaultConfigFile = runsc.DefaultConfigFile

func defaultConfig() (*Config, string, error) {
	if _, err := os.Stat(defaultConfigFile); err != nil {
		if os.IsNotExist(err) {
			return &Config{}, "", nil
		}
		return nil, "", fmt.Errorf("runsc config %s: %w", defaultConfigFile, err)
	}
	c, err := LoadConfig(defaultConfigFile)
	if err != nil {
		return nil, "", err
	}
	return c, defaultConfigFile, nil
}

func unsupportedOptions(typeURL string) error {
	return fmt.Errorf("unsupported runtime options type %q (want runtimeoptions.v1.Options with ConfigPath pointing to a runsc.toml): %w",
		typeURL, errdefs.ErrInvalidArgument)
}

// SandboxOverhead is sandbox_overhead_mib in bytes, or -1 if unset: the
// shim then measures the sandbox's own memory when its first container
// joins.
func (c *Config) SandboxOverhead() int64 {
	if c == nil || c.SandboxOverheadMiB == nil {
		return -1
	}
	return *c.SandboxOverheadMiB << 20
}

// ContainerOverhead is container_overhead_mib in bytes (the default if
// unset).
func (c *Config) ContainerOverhead() int64 {
	if c == nil || c.ContainerOverheadMiB == nil {
		return DefaultContainerOverheadMiB << 20
	}
	return *c.ContainerOverheadMiB << 20
}

// RunscFlags returns the runsc global flags from [runsc_config] as
// "--key=value", sorted by key. Values are as written; use ForID first to
// expand %ID%.
func (c *Config) RunscFlags() []string {
	if c == nil || len(c.RunscConfig) == 0 {
		return nil
	}
	flags := make([]string, 0, len(c.RunscConfig))
	for _, k := range sortedKeys(c.RunscConfig) {
		flags = append(flags, "--"+k+"="+c.RunscConfig[k])
	}
	return flags
}

// checkFlags fails with InvalidArgument, naming the key and the runsc, when
// a [runsc_config] key is not a global flag of the runsc in use: runsc
// itself would fail every call with "flag provided but not defined".
func (c *Config) checkFlags(f *runsc.Features, path string) error {
	if c == nil {
		return nil
	}
	var unknown []string
	for _, k := range sortedKeys(c.RunscConfig) {
		if !f.HasFlag(k) {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	if path == "" {
		path = "(runtime options)"
	}
	what := "key " + unknown[0] + " is not a flag"
	if len(unknown) > 1 {
		what = "keys " + strings.Join(unknown, ", ") + " are not flags"
	}
	return fmt.Errorf("runsc config %s: [runsc_config] %s of %s (see `%s flags`): %w",
		path, what, f, f.Binary, errdefs.ErrInvalidArgument)
}

// RunscRoot returns runsc's --root for the containerd namespace: Root (or
// /run/containerd/runsc) joined with the namespace, as gVisor's shim does, so
// that `root = "/run/containerd/runsc"` in an existing file keeps the same
// state directories.
func (c *Config) RunscRoot(namespace string) string {
	root := defaultRoot
	if c != nil && c.Root != "" {
		root = c.Root
	}
	return filepath.Join(root, namespace)
}

// RunscBinary returns the runsc binary to run: BinaryName or "runsc".
func (c *Config) RunscBinary() string {
	if c == nil || c.BinaryName == "" {
		return defaultBinaryName
	}
	return c.BinaryName
}

// ForID returns a copy of c with %ID% replaced by id in LogPath and in the
// RunscConfig values (e.g. debug-log = "/var/log/runsc/%ID%/"). A LogPath
// ending in "/" becomes "<dir>/runsc-shim-<id>.log", as in gVisor's shim.
func (c *Config) ForID(id string) *Config {
	if c == nil {
		return &Config{}
	}
	out := *c
	if out.LogPath != "" {
		p := out.LogPath
		if strings.HasSuffix(p, "/") {
			p += "runsc-shim-" + idPlaceholder + ".log"
		}
		out.LogPath = expandID(p, id)
	}
	if c.RunscConfig != nil {
		out.RunscConfig = make(map[string]string, len(c.RunscConfig))
		for k, v := range c.RunscConfig {
			out.RunscConfig[k] = expandID(v, id)
		}
	}
	return &out
}

// expandID replaces every %ID% in s with id.
func expandID(s, id string) string {
	return strings.ReplaceAll(s, idPlaceholder, id)
}
