package shim

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/oci"
	"github.com/gvisor-shim/containerd-shim-runsc-v1/systemd"
)

func TestSystemdCgroupConfig(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, "[runsc_config]\nsystemd-cgroup = \"true\"\nplatform = \"ptrace\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The shim implements it: runsc never gets --systemd-cgroup.
	if !c.SystemdCgroup || !reflect.DeepEqual(c.RunscFlags(), []string{"--platform=ptrace"}) {
		t.Errorf("SystemdCgroup %v, runsc flags %q; want true and only --platform", c.SystemdCgroup, c.RunscFlags())
	}
	if c, err := LoadConfig(writeConfig(t, "[runsc_config]\nsystemd-cgroup = false\n")); err != nil || c.SystemdCgroup || c.RunscConfig != nil {
		t.Errorf("systemd-cgroup = false: %+v, %v", c, err)
	}
	path := writeConfig(t, "[runsc_config]\nsystemd-cgroup = \"yes please\"\n")
	if _, err := LoadConfig(path); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "systemd-cgroup") || !strings.Contains(err.Error(), path) {
		t.Errorf("systemd-cgroup = \"yes please\": %v, want InvalidArgument naming the key and file", err)
	}
	if got := c.ForID("x"); !got.SystemdCgroup {
		t.Errorf("ForID dropped SystemdCgroup")
	}
}

func bundleWith(t *testing.T, cgroupsPath string) (string, *specs.Spec) {
	t.Helper()
	bundle := t.TempDir()
	spec := &specs.Spec{Linux: &specs.Linux{CgroupsPath: cgroupsPath}}
	if err := oci.SaveSpec(bundle, spec); err != nil {
		t.Fatal(err)
	}
	return bundle, spec
}

// TestCgroupDriver: which sandboxes get a systemd scope, and that malformed
// paths are InvalidArgument and an unreachable systemd FailedPrecondition
// naming the path, before anything is created.
func TestCgroupDriver(t *testing.T) {
	ctx := context.Background()
	systemdHere := systemd.Booted() == nil
	for _, tc := range []struct {
		name   string
		cfg    *Config
		path   string
		sub    bool
		kind   func(error) bool // nil: no error
		scope  bool             // a systemd scope (where systemd runs)
		errHas string
	}{
		{name: "cgroupfs", cfg: &Config{}, path: "/kubepods/besteffort/pod1/abc"},
		{name: "none", cfg: &Config{}, path: ""},
		{name: "bad slice", cfg: &Config{}, path: "kubepods--x.slice:cri-containerd:abc", kind: errdefs.IsInvalidArgument, errHas: "empty component"},
		{name: "two fields", cfg: &Config{}, path: "kubepods.slice:abc", kind: errdefs.IsInvalidArgument, errHas: "want 3"},
		{name: "path in name", cfg: &Config{}, path: "kubepods.slice:p:../x", kind: errdefs.IsInvalidArgument, errHas: `name "../x"`},
		{name: "config wants systemd, cgroupfs path", cfg: &Config{SystemdCgroup: true}, path: "/kubepods/pod1/abc",
			kind: errdefs.IsInvalidArgument, errHas: `systemd-cgroup = "true"`},
		{name: "subcontainer", cfg: &Config{}, path: "kubepods-besteffort-pod1.slice:cri-containerd:abc", sub: true},
		{name: "sandbox", cfg: &Config{}, path: "kubepods-besteffort-pod1.slice:cri-containerd:abc", scope: true},
		{name: "config default path", cfg: &Config{SystemdCgroup: true}, path: "", scope: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle, spec := bundleWith(t, tc.path)
			s, err := cgroupDriver(ctx, tc.cfg, "/etc/containerd/runsc.toml", "abc", bundle, spec, tc.sub)
			kind, errHas := tc.kind, tc.errHas
			if tc.scope && !systemdHere {
				kind, errHas = errdefs.IsFailedPrecondition, "systemd is not running as the init system"
			}
			if kind != nil {
				if err == nil || !kind(err) || !strings.Contains(err.Error(), errHas) {
					t.Fatalf("err %v, want one containing %q of the right kind", err, errHas)
				}
				if tc.path != "" && !strings.Contains(err.Error(), tc.path) {
					t.Errorf("error %q does not name the cgroupsPath %q", err, tc.path)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (s != nil) != tc.scope {
				t.Fatalf("scope %+v, want one: %v", s, tc.scope)
			}
			saved, err := oci.LoadSpec(bundle)
			if err != nil {
				t.Fatal(err)
			}
			if tc.sub && saved.Linux.CgroupsPath != "" {
				t.Errorf("a pod container's systemd cgroupsPath was kept in its spec: %q (runsc would make a directory of it)", saved.Linux.CgroupsPath)
			}
			if s != nil && s.scope.Unit != "runsc-abc.scope" && s.scope.Unit != "cri-containerd-abc.scope" {
				t.Errorf("unit %q", s.scope.Unit)
			}
		})
	}
}

func TestMissingCgroupDirs(t *testing.T) {
	if unifiedCgroups {
		t.Skip("cgroup v1 layout only")
	}
	root := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []string{"memory", "cpuset", "systemd", "unified"} {
		mk(h)
		if err := os.WriteFile(filepath.Join(root, h, "cgroup.procs"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cg := "/kubepods.slice/kubepods-besteffort.slice/x.scope"
	mk("memory" + cg)            // systemd made it
	mk("cpuset/kubepods.slice")  // kubelet made the top
	mk("systemd/kubepods.slice") // never touched
	got := missingCgroupDirs(root, cg)
	want := []string{
		filepath.Join(root, "cpuset/kubepods.slice/kubepods-besteffort.slice/x.scope"),
		filepath.Join(root, "cpuset/kubepods.slice/kubepods-besteffort.slice"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestCreateSystemdPathWithoutSystemd: on a host where systemd is not the
// init system, a sandbox with a systemd cgroupsPath fails Create with
// FailedPrecondition naming the path and why, before runsc runs (so no
// directory "slice:prefix:name" is ever made); a malformed one fails with
// InvalidArgument.
func TestCreateSystemdPathWithoutSystemd(t *testing.T) {
	if systemd.Booted() == nil {
		t.Skip("systemd runs here: make test-systemd covers this host")
	}
	e := newFaultEnv(t)
	for _, tc := range []struct {
		path string
		kind func(error) bool
		has  string
	}{
		{"kubepods-besteffort-pod1.slice:cri-containerd:c1", errdefs.IsFailedPrecondition, "systemd is not running as the init system"},
		{"kubepods-besteffort-pod1.slice:cri-containerd", errdefs.IsInvalidArgument, "slice:prefix:name"},
	} {
		r := e.createReq("c1", "")
		spec, err := oci.LoadSpec(r.Bundle)
		if err != nil {
			t.Fatal(err)
		}
		spec.Linux = &specs.Linux{CgroupsPath: tc.path}
		if err := oci.SaveSpec(r.Bundle, spec); err != nil {
			t.Fatal(err)
		}
		_, err = e.s.Create(e.ctx, r)
		wantKind(t, err, tc.kind, "right")
		if !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.has) {
			t.Errorf("Create with cgroupsPath %q: %v, want the path and %q", tc.path, err, tc.has)
		}
		if strings.Contains(e.calls(), "create") {
			t.Errorf("runsc create ran:\n%s", e.calls())
		}
	}
	e.noneLeft()
}

// TestScopeRemoveOnlyWhatItStarted: a scope whose Start failed (its name
// may be another sandbox's active unit) is never stopped, neither by
// Remove nor by the `delete` action without the shim's record.
func TestScopeRemoveOnlyWhatItStarted(t *testing.T) {
	s := &systemdScope{scope: systemd.Scope{Unit: "cri-containerd-abc.scope", Slice: "kubepods.slice"}, bundle: t.TempDir()}
	// Stopping would need systemd (FailedPrecondition here): nil means
	// it was not asked.
	if err := s.Remove(context.Background()); err != nil {
		t.Errorf("Remove of a scope never started: %v", err)
	}
	removeLostScope(context.Background(), s.bundle, s.scope.Unit) // no record: nothing to do, no panic
}
