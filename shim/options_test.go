package shim

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runsc.toml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		want    *Config
		// wantErr lists substrings the error must contain; the file path
		// is always required too.
		wantErr []string
	}{
		{
			name: "gVisor runsc.toml",
			content: `
binary_name = "/usr/local/bin/runsc"
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
			want: &Config{
				BinaryName: "/usr/local/bin/runsc",
				Root:       "/run/containerd/runsc",
				LogLevel:   "debug",
				LogPath:    "/var/log/runsc/%ID%/shim.log",
				ShimCgroup: "/shim",
				IoUID:      1000,
				IoGID:      1001,
				RunscConfig: map[string]string{
					"platform":  "ptrace",
					"network":   "host",
					"debug":     "true",
					"debug-log": "/var/log/runsc/%ID%/",
				},
			},
		},
		{
			name:    "empty file",
			content: "",
			want:    &Config{},
		},
		{
			name: "bool and integer values",
			content: `[runsc_config]
debug = true
overlay = false
num-network-channels = 4
TESTONLY-flag_x = -1
`,
			want: &Config{RunscConfig: map[string]string{
				"debug":                "true",
				"overlay":              "false",
				"num-network-channels": "4",
				"TESTONLY-flag_x":      "-1",
			}},
		},
		{
			name:    "log_level warning",
			content: `log_level = "warning"`,
			want:    &Config{LogLevel: "warning"},
		},
		{
			name:    "unknown top-level key",
			content: "root = \"/r\"\nplatform = \"kvm\"\n",
			wantErr: []string{`line 2, column 1`, `unknown key "platform"`, `[runsc_config]`},
		},
		{
			name:    "unknown table",
			content: "[runsc]\ndebug = true\n",
			wantErr: []string{`unknown key "runsc"`},
		},
		{
			name:    "malformed",
			content: "root = \"/r\"\nlog_level = \"debug\n",
			wantErr: []string{`line 2, column`},
		},
		{
			name:    "malformed table header",
			content: "[runsc_config\ndebug = true\n",
			wantErr: []string{`line 1, column`},
		},
		{
			name:    "wrong type",
			content: "root = \"/r\"\nbinary_name = 3\n",
			wantErr: []string{`line 2, column`, `"binary_name"`, `want a string`},
		},
		{
			name:    "bad log_level",
			content: `log_level = "verbose"`,
			wantErr: []string{`log_level "verbose"`},
		},
		{
			name:    "flag with dashes",
			content: "[runsc_config]\n\"--debug\" = true\n",
			wantErr: []string{`"--debug" is not a runsc flag name`},
		},
		{
			name:    "flag with space",
			content: "[runsc_config]\n\"debug log\" = \"/x\"\n",
			wantErr: []string{`"debug log" is not a runsc flag name`},
		},
		{
			name:    "owned flag root",
			content: "[runsc_config]\nroot = \"/x\"\n",
			wantErr: []string{`"root"`, `top-level "root" key`},
		},
		{
			name:    "owned flag log",
			content: "[runsc_config]\nlog = \"/x\"\n",
			wantErr: []string{`must not set "log"`},
		},
		{
			name:    "owned flag log-format",
			content: "[runsc_config]\nlog-format = \"text\"\n",
			wantErr: []string{`must not set "log-format"`},
		},
		{
			name:    "float value",
			content: "[runsc_config]\ncpu-num = 1.5\n",
			wantErr: []string{`cpu-num`, `string, boolean or integer`},
		},
		{
			name:    "nested table",
			content: "[runsc_config.x]\na = 1\n",
			wantErr: []string{`[runsc_config] x`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.content)
			got, err := LoadConfig(path)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadConfig: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("LoadConfig = %+v\nwant %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadConfig = %+v, want an error", got)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %v does not wrap ErrInvalidArgument", err)
			}
			for _, s := range append([]string{path}, tc.wantErr...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), path) || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("LoadConfig(missing) = %v, want an invalid-argument error naming %s", err, path)
	}
}

func TestRunscFlags(t *testing.T) {
	c := &Config{RunscConfig: map[string]string{
		"platform":  "systrap",
		"debug-log": "/var/log/runsc/%ID%/",
		"debug":     "true",
		"network":   "host",
	}}
	want := []string{"--debug=true", "--debug-log=/var/log/runsc/%ID%/", "--network=host", "--platform=systrap"}
	for i := 0; i < 20; i++ { // map order varies between iterations
		if got := c.RunscFlags(); !reflect.DeepEqual(got, want) {
			t.Fatalf("RunscFlags = %q, want %q", got, want)
		}
	}
	if got := (&Config{}).RunscFlags(); len(got) != 0 {
		t.Errorf("empty RunscFlags = %q", got)
	}
	if got := (*Config)(nil).RunscFlags(); len(got) != 0 {
		t.Errorf("nil RunscFlags = %q", got)
	}
}

func TestRunscRootAndBinary(t *testing.T) {
	if got, want := (&Config{}).RunscRoot("k8s.io"), "/run/containerd/runsc/k8s.io"; got != want {
		t.Errorf("default RunscRoot = %q, want %q", got, want)
	}
	if got, want := (&Config{Root: "/var/run/gvisor"}).RunscRoot("default"), "/var/run/gvisor/default"; got != want {
		t.Errorf("RunscRoot = %q, want %q", got, want)
	}
	if got := (&Config{}).RunscBinary(); got != "runsc" {
		t.Errorf("default RunscBinary = %q", got)
	}
	if got := (&Config{BinaryName: "/opt/runsc"}).RunscBinary(); got != "/opt/runsc" {
		t.Errorf("RunscBinary = %q", got)
	}
}

func TestForID(t *testing.T) {
	c := &Config{
		LogPath:     "/var/log/runsc/%ID%/shim.log",
		RunscConfig: map[string]string{"debug-log": "/var/log/runsc/%ID%/", "debug": "true"},
	}
	got := c.ForID("abc")
	if got.LogPath != "/var/log/runsc/abc/shim.log" {
		t.Errorf("LogPath = %q", got.LogPath)
	}
	if want := []string{"--debug=true", "--debug-log=/var/log/runsc/abc/"}; !reflect.DeepEqual(got.RunscFlags(), want) {
		t.Errorf("RunscFlags = %q, want %q", got.RunscFlags(), want)
	}
	if c.RunscConfig["debug-log"] != "/var/log/runsc/%ID%/" || c.LogPath != "/var/log/runsc/%ID%/shim.log" {
		t.Errorf("ForID modified its receiver: %+v", c)
	}
	if got := (&Config{LogPath: "/var/log/runsc/"}).ForID("abc").LogPath; got != "/var/log/runsc/runsc-shim-abc.log" {
		t.Errorf("directory LogPath = %q", got)
	}
	if got := expandID("%ID%-%ID%", "x"); got != "x-x" {
		t.Errorf("expandID = %q", got)
	}
}

func TestConfigFromOptions(t *testing.T) {
	good := writeConfig(t, "[runsc_config]\nplatform = \"systrap\"\n")
	bad := writeConfig(t, "nope = 1\n")

	pack := func(m proto.Message) *anypb.Any {
		a, err := typeurl.MarshalAnyToProto(m)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	// anypb.New uses the type.googleapis.com/ prefix; containerd does not,
	// but both must work.
	prefixed, err := anypb.New(&runtimeoptions.Options{ConfigPath: good})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		opts     typeurl.Any
		want     *Config
		wantPath string
		wantErr  string
	}{
		{name: "nil", opts: nil, want: &Config{}},
		{name: "typed nil", opts: (*anypb.Any)(nil), want: &Config{}},
		{
			name:     "runtimeoptions with path",
			opts:     pack(&runtimeoptions.Options{TypeUrl: "io.containerd.runsc.v1.options", ConfigPath: good}),
			want:     &Config{RunscConfig: map[string]string{"platform": "systrap"}},
			wantPath: good,
		},
		{
			name:     "runtimeoptions without TypeUrl",
			opts:     pack(&runtimeoptions.Options{ConfigPath: good}),
			want:     &Config{RunscConfig: map[string]string{"platform": "systrap"}},
			wantPath: good,
		},
		{
			name:     "type.googleapis.com prefix",
			opts:     prefixed,
			want:     &Config{RunscConfig: map[string]string{"platform": "systrap"}},
			wantPath: good,
		},
		{
			name: "runtimeoptions without path",
			opts: pack(&runtimeoptions.Options{TypeUrl: "io.containerd.runsc.v1.options", ConfigBody: []byte("TypeUrl = 'io.containerd.runsc.v1.options'")}),
			want: &Config{},
		},
		{
			name:    "runtimeoptions with bad file",
			opts:    pack(&runtimeoptions.Options{ConfigPath: bad}),
			wantErr: bad,
		},
		{
			name:    "runtimeoptions with foreign TypeUrl",
			opts:    pack(&runtimeoptions.Options{TypeUrl: "io.containerd.kata.v2.options", ConfigPath: good}),
			wantErr: "io.containerd.kata.v2.options",
		},
		{
			name: "runc options ignored",
			opts: pack(&runcoptions.Options{BinaryName: "/usr/bin/runc", SystemdCgroup: true}),
			want: &Config{},
		},
		{
			name:    "other registered type",
			opts:    pack(&emptypb.Empty{}),
			wantErr: `"google.protobuf.Empty"`,
		},
		{
			name:    "unknown type",
			opts:    &anypb.Any{TypeUrl: "example.com/Nope", Value: []byte{1}},
			wantErr: `"example.com/Nope"`,
		},
		{
			name:    "undecodable runtimeoptions",
			opts:    &anypb.Any{TypeUrl: "runtimeoptions.v1.Options", Value: []byte{0xff}},
			wantErr: `"runtimeoptions.v1.Options"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, path, err := ConfigFromOptions(tc.opts)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ConfigFromOptions = %+v, want an error", got)
				}
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q: want invalid argument containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ConfigFromOptions: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) || path != tc.wantPath {
				t.Errorf("ConfigFromOptions = %+v, %q\nwant %+v, %q", got, path, tc.want, tc.wantPath)
			}
		})
	}
}

func TestConfigErrorsAreInvalidArgument(t *testing.T) {
	_, err := LoadConfig(writeConfig(t, "x = 1"))
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("%v is not ErrInvalidArgument", err)
	}
}

func TestCheckFlags(t *testing.T) {
	f := runsc.NewFeatures("/usr/bin/runsc", "0.0~20221219.0", []string{"network", "platform", "debug"}, []string{"create"})
	ok := &Config{RunscConfig: map[string]string{"network": "host", "debug": "true"}}
	if err := ok.checkFlags(f, "/etc/containerd/runsc.toml"); err != nil {
		t.Fatal(err)
	}
	bad := &Config{RunscConfig: map[string]string{"network": "host", "systrap-disable-fast-path": "true", "zz": "1"}}
	err := bad.checkFlags(f, "/etc/containerd/runsc.toml")
	want := `runsc config /etc/containerd/runsc.toml: [runsc_config] keys "systrap-disable-fast-path", "zz" are not flags of runsc 0.0~20221219.0 (/usr/bin/runsc) (see ` + "`/usr/bin/runsc flags`" + `)`
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("got %v\nwant %s: invalid argument", err, want)
	}
}

func TestDefaultConfigFileWhenNoConfigPath(t *testing.T) {
	saved := defaultConfigFile
	t.Cleanup(func() { defaultConfigFile = saved })
	defaultConfigFile = filepath.Join(t.TempDir(), "runsc.toml")
	noPath, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []typeurl.Any{nil, noPath} {
		cfg, path, err := ConfigFromOptions(opts)
		if err != nil || path != "" || len(cfg.RunscConfig) != 0 {
			t.Fatalf("no default file: cfg %+v path %q err %v", cfg, path, err)
		}
	}
	if err := os.WriteFile(defaultConfigFile, []byte("[runsc_config]\n  network = \"host\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []typeurl.Any{nil, noPath} {
		cfg, path, err := ConfigFromOptions(opts)
		if err != nil || path != defaultConfigFile || cfg.RunscConfig["network"] != "host" {
			t.Fatalf("with %s: cfg %+v path %q err %v", defaultConfigFile, cfg, path, err)
		}
	}
	if err := os.WriteFile(defaultConfigFile, []byte("bogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ConfigFromOptions(nil); err == nil || !strings.Contains(err.Error(), defaultConfigFile) {
		t.Fatalf("a broken default file must fail naming it, got %v", err)
	}
}
