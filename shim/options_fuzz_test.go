package shim

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// configSeeds are runsc.toml files: gVisor's documented examples, the unit
// tests' cases and hostile variants.
var configSeeds = []string{
	`binary_name = "/usr/local/bin/runsc"
root = "/run/containerd/runsc"
log_level = "debug"
log_path = "/var/log/runsc/%ID%/shim.log"
shim_cgroup = "/shim"
io_uid = 1000
io_gid = 1001
[runsc_config]
  platform = "ptrace"
  network = "host"
  debug = "true"
  debug-log = "/var/log/runsc/%ID%/"
`,
	"",
	"[runsc_config]\ndebug = true\noverlay = false\nnum-network-channels = 4\nTESTONLY-flag_x = -1\n",
	`log_level = "warning"`,
	"log_path = \"/var/log/runsc/\"\n[runsc_config]\nplatform = \"systrap\"\noverlay2 = \"root:self\"\n",
	"root = \"/r\"\nplatform = \"kvm\"\n",
	"[runsc]\ndebug = true\n",
	"root = \"/r\"\nlog_level = \"debug\n",
	"[runsc_config\ndebug = true\n",
	"root = \"/r\"\nbinary_name = 3\n",
	`log_level = "verbose"`,
	"[runsc_config]\n\"--debug\" = true\n",
	"[runsc_config]\n\"debug log\" = \"/x\"\n",
	"[runsc_config]\nroot = \"/x\"\n",
	"[runsc_config]\nlog = \"/x\"\n",
	"[runsc_config]\nlog-format = \"text\"\n",
	"[runsc_config]\ncpu-num = 1.5\n",
	"[runsc_config.x]\na = 1\n",
	"[runsc_config]\n\"a=b\" = \"c\"\nx = \"--root=/evil\"\ny = \"line\\nbreak\"\n",
	"[runsc_config]\ndebug-log = \"/x\\u0000y\"\n",
	"binary_name = \"a\\u0000b\"\n",
	"root = \"relative/root\"\n",
	"root = \"/a/../..\"\nlog_path = \"rel.log\"\n",
	"io_uid = -1\n",
	"[runsc_config]\nx = 2024-01-01\n[runsc_config]\ny = 1\n",
}

// checkConfig checks what the shim relies on in a parsed config: flags
// become well-formed runsc arguments and paths are absolute.
func checkConfig(t *testing.T, c *Config, id, ns string) {
	t.Helper()
	if c.LogLevel != "" {
		if !strings.Contains("trace debug info warn warning error fatal panic", strings.ToLower(c.LogLevel)) {
			t.Fatalf("log_level %q accepted", c.LogLevel)
		}
	}
	for _, v := range []string{c.BinaryName, c.Root, c.LogPath, c.ShimCgroup} {
		if strings.ContainsRune(v, 0) {
			t.Fatalf("NUL byte accepted in %q", v)
		}
	}
	if (c.Root != "" && !filepath.IsAbs(c.Root)) || (c.LogPath != "" && !filepath.IsAbs(c.LogPath)) {
		t.Fatalf("relative path accepted: root %q log_path %q", c.Root, c.LogPath)
	}

	flags := c.RunscFlags()
	if len(flags) != len(c.RunscConfig) {
		t.Fatalf("%d flags for %d keys", len(flags), len(c.RunscConfig))
	}
	if !reflect.DeepEqual(flags, c.RunscFlags()) {
		t.Fatalf("flags not in a stable order: %q", flags)
	}
	seen := map[string]bool{}
	var keys []string
	for _, fl := range flags {
		k, v, ok := strings.Cut(strings.TrimPrefix(fl, "--"), "=")
		if !strings.HasPrefix(fl, "--") || !ok || !flagName.MatchString(k) || strings.HasPrefix(k, "-") {
			t.Fatalf("malformed flag %q", fl)
		}
		if _, owned := ownedFlags[k]; owned {
			t.Fatalf("flag %q overrides a flag the shim owns", fl)
		}
		if seen[k] || c.RunscConfig[k] != v {
			t.Fatalf("flag %q does not match [runsc_config] %q = %q", fl, k, c.RunscConfig[k])
		}
		seen[k] = true
		keys = append(keys, k)
		if strings.ContainsRune(fl, 0) {
			t.Fatalf("flag %q has a NUL byte", fl)
		}
	}

	if !sort.StringsAreSorted(keys) {
		t.Fatalf("flags not sorted by name: %q", flags)
	}

	root := c.RunscRoot(ns)
	if !filepath.IsAbs(root) || filepath.Clean(root) != root || filepath.Base(root) != ns {
		t.Fatalf("RunscRoot(%q) = %q", ns, root)
	}
	if c.BinaryName == "" && c.RunscBinary() != "runsc" || c.BinaryName != "" && c.RunscBinary() != c.BinaryName {
		t.Fatalf("RunscBinary = %q for binary_name %q", c.RunscBinary(), c.BinaryName)
	}

	// ForID: %ID% expanded everywhere, receiver untouched.
	before := *c
	beforeFlags := c.RunscFlags()
	fc := c.ForID(id)
	if !reflect.DeepEqual(before, *c) || !reflect.DeepEqual(beforeFlags, c.RunscFlags()) {
		t.Fatalf("ForID modified its receiver")
	}
	if strings.Contains(fc.LogPath, idPlaceholder) {
		t.Fatalf("ForID(%q).LogPath = %q", id, fc.LogPath)
	}
	if c.LogPath != "" && (!filepath.IsAbs(fc.LogPath) ||
		strings.HasSuffix(c.LogPath, "/") && !strings.HasSuffix(fc.LogPath, "runsc-shim-"+id+".log")) {
		t.Fatalf("ForID(%q).LogPath = %q from %q", id, fc.LogPath, c.LogPath)
	}
	idFlags := fc.RunscFlags()
	if len(idFlags) != len(flags) {
		t.Fatalf("ForID flags %q, was %q", idFlags, flags)
	}
	for i, fl := range idFlags {
		if strings.Contains(fl, idPlaceholder) || !strings.HasPrefix(fl, strings.SplitN(flags[i], "=", 2)[0]+"=") {
			t.Fatalf("ForID(%q) flag %q from %q", id, fl, flags[i])
		}
	}

	// As runsc gets them: the shim's own flags first, in order, then the
	// user's, each one argv element.
	r := &runsc.Runsc{Command: fc.RunscBinary(), Root: root, Bundle: "/run/containerd/io.containerd.runtime.v2.task/" + ns + "/" + id, Flags: idFlags}
	args := r.Args("create", "--bundle="+r.Bundle, id)
	want := append([]string{"--root=" + root, "--log=" + r.LogPath(), "--log-format=json"}, idFlags...)
	if !reflect.DeepEqual(args[:len(want)], want) || args[len(want)] != "create" {
		t.Fatalf("runsc argv %q", args)
	}
}

// FuzzParseConfig: any runsc.toml either loads into a config whose flags and
// paths are well-formed, or fails with an invalid-argument error naming the
// file; it never panics.
func FuzzParseConfig(f *testing.F) {
	for _, s := range configSeeds {
		f.Add([]byte(s), "abc")
	}
	f.Add([]byte("log_path = \"/l/%ID%%ID%/\"\n[runsc_config]\nd = \"%ID%%ID%ID%\"\n"), "7c1e0a7d3b9f")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		if identifiers.Validate(id) != nil {
			id = "abc" // containerd validates ids before the shim sees them
		}
		const name = "/etc/containerd/runsc.toml"
		c, err := parseConfig(data, name)
		if err != nil {
			if c != nil {
				t.Fatalf("config %+v with error %v", c, err)
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), name) {
				t.Fatalf("error %q is not an invalid-argument error naming the file", err)
			}
			return
		}
		if c == nil {
			t.Fatal("nil config without an error")
		}
		checkConfig(t, c, id, "k8s.io")
		// Parsing is deterministic.
		c2, err := parseConfig(data, name)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("second parse: %+v %v, first %+v", c2, err, c)
		}
	})
}

// FuzzConfigFromOptions: whatever CreateTaskRequest.Options holds (type url
// and bytes), ConfigFromOptions returns a config or an invalid-argument
// error. A ConfigPath in the options is redirected to a file holding body, so
// that the fuzzer never reads arbitrary host files.
func FuzzConfigFromOptions(f *testing.F) {
	add := func(m proto.Message, body string) {
		a, err := typeurl.MarshalAnyToProto(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(a.GetTypeUrl(), a.GetValue(), []byte(body))
	}
	add(&runtimeoptions.Options{TypeUrl: runscOptionsType, ConfigPath: "/etc/containerd/runsc.toml"}, configSeeds[0])
	add(&runtimeoptions.Options{ConfigPath: "/etc/containerd/runsc.toml"}, "[runsc_config]\nplatform = \"systrap\"\n")
	add(&runtimeoptions.Options{TypeUrl: runscOptionsType, ConfigBody: []byte("TypeUrl = 'io.containerd.runsc.v1.options'")}, "")
	add(&runtimeoptions.Options{ConfigPath: "/etc/containerd/runsc.toml"}, "nope = 1\n")
	add(&runtimeoptions.Options{TypeUrl: "io.containerd.kata.v2.options", ConfigPath: "/x"}, "")
	add(&runcoptions.Options{BinaryName: "/usr/bin/runc", SystemdCgroup: true}, "")
	f.Add("type.googleapis.com/runtimeoptions.v1.Options", []byte{0x12, 0x02, '/', 'x'}, []byte("root = \"/r\"\n"))
	f.Add("google.protobuf.Empty", []byte{}, []byte{})
	f.Add("example.com/Nope", []byte{1}, []byte{})
	f.Add("", []byte{1}, []byte{})
	f.Add("", []byte{}, []byte{})
	f.Add("runtimeoptions.v1.Options", []byte{0xff, 0xff, 0xff}, []byte{})

	f.Fuzz(func(t *testing.T, typeURL string, value, body []byte) {
		dir := t.TempDir()
		file := filepath.Join(dir, "runsc.toml")
		opts := &anypb.Any{TypeUrl: typeURL, Value: value}
		if v, err := typeurl.UnmarshalAny(opts); err == nil {
			if o, ok := v.(*runtimeoptions.Options); ok && o.GetConfigPath() != "" {
				o.ConfigPath = file
				b, err := proto.Marshal(o)
				if err != nil {
					t.Skip()
				}
				opts.Value = b
				if err := os.WriteFile(file, body, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}

		cfg, path, err := ConfigFromOptions(opts)
		if err != nil {
			if cfg != nil || path != "" {
				t.Fatalf("config %+v / path %q with error %v", cfg, path, err)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error %q does not wrap ErrInvalidArgument", err)
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil config without an error")
		}
		switch path {
		case "":
			if !reflect.DeepEqual(cfg, &Config{}) {
				t.Fatalf("config %+v without a file", cfg)
			}
		case file:
			want, err := parseConfig(body, file)
			if err != nil || !reflect.DeepEqual(cfg, want) {
				t.Fatalf("config %+v, the file parses to %+v %v", cfg, want, err)
			}
		default:
			t.Fatalf("config read from %q, not the options' file", path)
		}
		checkConfig(t, cfg, "abc", "default")
	})
}

// TestParseConfigRejectsUnusablePaths: values runsc or the shim could not use
// (NUL bytes in argv, relative state root / log file) fail at load time
// with an error naming the key, not at the first runsc call.
func TestParseConfigRejectsUnusablePaths(t *testing.T) {
	for content, want := range map[string]string{
		"binary_name = \"a\\u0000b\"\n":                   `binary_name "a\x00b" contains a NUL byte`,
		"root = \"/run/\\u0000\"\n":                       `root "/run/\x00" contains a NUL byte`,
		"log_path = \"/l\\u0000\"\n":                      `log_path "/l\x00" contains a NUL byte`,
		"[runsc_config]\ndebug-log = \"/x\\u0000y\"\n":    `[runsc_config] debug-log: value "/x\x00y" contains a NUL byte`,
		"root = \"run/containerd/runsc\"\n":               `root "run/containerd/runsc" is not an absolute path`,
		"log_path = \"shim.log\"\n":                       `log_path "shim.log" is not an absolute path`,
		"[runsc_config]\nplatform = \"systrap\\u0000\"\n": `[runsc_config] platform: value "systrap\x00" contains a NUL byte`,
	} {
		c, err := parseConfig([]byte(content), "runsc.toml")
		if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("parseConfig(%q) = %+v, %v; want an invalid-argument error containing %q", content, c, err, want)
		}
	}
	c, err := parseConfig([]byte("root = \"/a/../b\"\nlog_path = \"/var/log/runsc/\"\n"), "runsc.toml")
	if err != nil || c.RunscRoot("k8s.io") != "/b/k8s.io" {
		t.Fatalf("absolute unclean root: %+v %v", c, err)
	}
}
