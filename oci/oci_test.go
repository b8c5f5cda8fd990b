package oci

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestLoadSpec(t *testing.T) {
	bundle := t.TempDir()
	config := `{
		"ociVersion": "1.1.0",
		"process": {"args": ["sh"], "cwd": "/"},
		"root": {"path": "rootfs"},
		"annotations": {"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "pod1"},
		"linux": {
			"cgroupsPath": "kubepods-besteffort.slice:cri-containerd:pod1",
			"namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/cni-1"}]
		}
	}`
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := LoadSpec(bundle)
	if err != nil {
		t.Fatalf("LoadSpec: %v", err)
	}
	if spec.Root.Path != "rootfs" || spec.Process.Args[0] != "sh" {
		t.Errorf("LoadSpec = %+v", spec)
	}
	if Kind(spec) != Sandbox || SandboxID(spec) != "pod1" {
		t.Errorf("Kind/SandboxID = %v/%q", Kind(spec), SandboxID(spec))
	}
	if got := NetNSPath(spec); got != "/var/run/netns/cni-1" {
		t.Errorf("NetNSPath = %q", got)
	}
	if got := CgroupsPath(spec); got != "kubepods-besteffort.slice:cri-containerd:pod1" {
		t.Errorf("CgroupsPath = %q", got)
	}
}

func TestLoadSpecErrors(t *testing.T) {
	missing := t.TempDir()
	_, err := LoadSpec(missing)
	want := filepath.Join(missing, "config.json")
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadSpec(no config) = %v, want a not-exist error naming %s", err, want)
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "config.json"), []byte(`{"ociVersion": `), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadSpec(bad)
	want = filepath.Join(bad, "config.json")
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("LoadSpec(bad json) = %v, want an error naming %s", err, want)
	}
}

func TestKindAndSandboxID(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		kind        ContainerType
		sandboxID   string
		groupID     string
	}{
		{
			name:    "standalone (ctr run)",
			kind:    Unknown,
			groupID: "c1",
		},
		{
			name:        "containerd sandbox",
			annotations: map[string]string{ContainerTypeAnnotation: "sandbox", SandboxIDAnnotation: "c1"},
			kind:        Sandbox,
			sandboxID:   "c1",
			groupID:     "c1",
		},
		{
			name:        "containerd container",
			annotations: map[string]string{ContainerTypeAnnotation: "container", SandboxIDAnnotation: "pod1"},
			kind:        Container,
			sandboxID:   "pod1",
			groupID:     "pod1",
		},
		{
			name:        "cri-o container",
			annotations: map[string]string{CRIOContainerTypeAnnotation: "container", CRIOSandboxIDAnnotation: "pod2"},
			kind:        Container,
			sandboxID:   "pod2",
			groupID:     "pod2",
		},
		{
			name:        "cri-o sandbox",
			annotations: map[string]string{CRIOContainerTypeAnnotation: "sandbox", CRIOSandboxIDAnnotation: "c1"},
			kind:        Sandbox,
			sandboxID:   "c1",
			groupID:     "c1",
		},
		{
			name:        "dockershim sandbox",
			annotations: map[string]string{DockershimContainerTypeAnnotation: "podsandbox"},
			kind:        Sandbox,
			groupID:     "c1",
		},
		{
			name:        "dockershim container",
			annotations: map[string]string{DockershimContainerTypeAnnotation: "container", DockershimSandboxIDAnnotation: "pod3"},
			kind:        Container,
			sandboxID:   "pod3",
			groupID:     "pod3",
		},
		{
			name: "containerd wins over cri-o",
			annotations: map[string]string{
				ContainerTypeAnnotation: "container", SandboxIDAnnotation: "pod1",
				CRIOContainerTypeAnnotation: "sandbox", CRIOSandboxIDAnnotation: "other",
			},
			kind:      Container,
			sandboxID: "pod1",
			groupID:   "pod1",
		},
		{
			name:        "unrecognised value",
			annotations: map[string]string{ContainerTypeAnnotation: "sidecar"},
			kind:        Unknown,
			groupID:     "c1",
		},
		{
			name:        "unrelated annotations",
			annotations: map[string]string{"io.kubernetes.cri.image-name": "busybox"},
			kind:        Unknown,
			groupID:     "c1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &specs.Spec{Annotations: tc.annotations}
			if got := Kind(spec); got != tc.kind {
				t.Errorf("Kind = %v, want %v", got, tc.kind)
			}
			if got := KindOf(tc.annotations); got != tc.kind {
				t.Errorf("KindOf = %v, want %v", got, tc.kind)
			}
			if got := SandboxID(spec); got != tc.sandboxID {
				t.Errorf("SandboxID = %q, want %q", got, tc.sandboxID)
			}
			if got := GroupID(tc.annotations, "c1"); got != tc.groupID {
				t.Errorf("GroupID = %q, want %q", got, tc.groupID)
			}
		})
	}
}

func TestContainerType(t *testing.T) {
	if Sandbox != "sandbox" || Container != "container" {
		t.Errorf("ContainerType values must be the annotation values")
	}
	for _, tc := range []struct {
		t      ContainerType
		s      string
		starts bool
	}{
		{Unknown, "unknown", true},
		{Sandbox, "sandbox", true},
		{Container, "container", false},
	} {
		if tc.t.String() != tc.s {
			t.Errorf("String(%q) = %q, want %q", string(tc.t), tc.t.String(), tc.s)
		}
		if tc.t.StartsSandbox() != tc.starts {
			t.Errorf("%v.StartsSandbox() = %v", tc.t, tc.t.StartsSandbox())
		}
	}
}

func TestNilSpec(t *testing.T) {
	if Kind(nil) != Unknown || SandboxID(nil) != "" || NetNSPath(nil) != "" || CgroupsPath(nil) != "" {
		t.Error("nil spec must give zero values")
	}
	noLinux := &specs.Spec{}
	if NetNSPath(noLinux) != "" || CgroupsPath(noLinux) != "" {
		t.Error("spec without linux must give zero values")
	}
}

func TestNetNSPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		ns   []specs.LinuxNamespace
		want string
	}{
		{"none", nil, ""},
		{"new network namespace", []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}}, ""},
		{"join", []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace, Path: "/proc/42/ns/net"}}, "/proc/42/ns/net"},
		{"host network (no namespace)", []specs.LinuxNamespace{{Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &specs.Spec{Linux: &specs.Linux{Namespaces: tc.ns}}
			if got := NetNSPath(spec); got != tc.want {
				t.Errorf("NetNSPath = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDropCapabilityAndSave(t *testing.T) {
	dir := t.TempDir()
	spec := &specs.Spec{Version: "1.0.2", Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding:  []string{"CAP_CHOWN", "CAP_PERFMON"},
		Effective: []string{"CAP_PERFMON"},
		Permitted: []string{"CAP_CHOWN"},
	}}}
	if !DropCapability(spec, "CAP_PERFMON") {
		t.Fatal("CAP_PERFMON not reported dropped")
	}
	if DropCapability(spec, "CAP_PERFMON") {
		t.Fatal("dropped twice")
	}
	if err := SaveSpec(dir, spec); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := got.Process.Capabilities
	if len(c.Bounding) != 1 || c.Bounding[0] != "CAP_CHOWN" || len(c.Effective) != 0 || len(c.Permitted) != 1 {
		t.Fatalf("caps after drop: %+v", c)
	}
	if DropCapability(&specs.Spec{}, "CAP_X") {
		t.Fatal("spec without process")
	}
}
