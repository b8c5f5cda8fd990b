package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestPathMounts(t *testing.T) {
	root := t.TempDir()
	vol := t.TempDir()
	for _, d := range []string{"etc", "secret-dir", "ro-dir", "bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"etc/secret", "bin/busybox", "hostsfile"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("busybox", filepath.Join(root, "bin/ls")); err != nil {
		t.Fatal(err)
	}
	// A symlink escaping the root resolves inside it.
	if err := os.Symlink("/../../etc", filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(vol, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind", "rw"}},
			{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(root, "hostsfile"), Options: []string{"rbind"}},
		},
		Linux: &specs.Linux{
			MaskedPaths:   []string{"/etc/secret", "/secret-dir", "/proc/kcore", "/sys/firmware", "/missing", "/bin/ls", "/vol/data", "/dev/foo", "/etc/hosts", "/escape/secret"},
			ReadonlyPaths: []string{"/ro-dir", "/proc/sys", "relative"},
		},
	}
	pms := PathMounts(spec, root, "/bundle/empty")
	var got []string
	for _, pm := range pms {
		s := pm.String()
		if pm.Mount != nil {
			s += " => " + pm.Mount.Type + " " + pm.Mount.Source + " " + strings.Join(pm.Mount.Options, ",")
		}
		got = append(got, strings.ReplaceAll(strings.ReplaceAll(s, root, "<root>"), vol, "<vol>"))
	}
	want := []string{
		"read-only /ro-dir: read-only bind mount of itself => bind <root>/ro-dir rbind,ro",
		"read-only /proc/sys: left alone: served by gVisor's own procfs, which holds no host data",
		"read-only relative: left alone: not an absolute path",
		"masked /etc/secret: read-only bind of an empty file => bind /bundle/empty bind,ro",
		"masked /secret-dir: read-only empty tmpfs => tmpfs tmpfs ro,nosuid,nodev,noexec,mode=0555",
		"masked /proc/kcore: left alone: served by gVisor's own procfs, which holds no host data",
		"masked /sys/firmware: left alone: served by gVisor's own sysfs, which holds no host data",
		"masked /missing: left alone: does not exist",
		"masked /bin/ls: read-only bind of an empty file => bind /bundle/empty bind,ro",
		"masked /vol/data: read-only empty tmpfs => tmpfs tmpfs ro,nosuid,nodev,noexec,mode=0555",
		"masked /dev/foo: left alone: inside the tmpfs mount at /dev",
		"masked /etc/hosts: read-only bind of an empty file => bind /bundle/empty bind,ro",
		"masked /escape/secret: read-only bind of an empty file => bind /bundle/empty bind,ro",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("PathMounts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	n := len(spec.Mounts)
	if !ApplyPathMounts(spec, pms) || len(spec.Mounts) != n+7 {
		t.Errorf("ApplyPathMounts added %d mounts, want 7", len(spec.Mounts)-n)
	}
	if ApplyPathMounts(spec, nil) {
		t.Error("ApplyPathMounts with nothing to add reported a change")
	}
	if PathMounts(&specs.Spec{}, root, "/e") != nil {
		t.Error("a spec without linux has no path mounts")
	}
}
