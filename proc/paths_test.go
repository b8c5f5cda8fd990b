package proc

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/oci"
)

func TestApplyPathMounts(t *testing.T) {
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "secret-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{
		Root:  &specs.Root{Path: "rootfs"},
		Linux: &specs.Linux{MaskedPaths: []string{"/secret", "/secret-dir", "/proc/kcore"}, ReadonlyPaths: []string{"/secret-dir"}},
	}
	if err := applyPathMounts(context.Background(), "c1", bundle, spec); err != nil {
		t.Fatal(err)
	}
	saved, err := oci.LoadSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved.Mounts) != 3 {
		t.Fatalf("saved spec has %d mounts, want 3 (read-only /secret-dir, masked /secret and /secret-dir): %+v", len(saved.Mounts), saved.Mounts)
	}
	if m := saved.Mounts[1]; m.Destination != "/secret" || m.Source != filepath.Join(bundle, maskedEmptyFile) {
		t.Errorf("masked file mount %+v", m)
	}
	st, err := os.Stat(filepath.Join(bundle, maskedEmptyFile))
	if err != nil || st.Size() != 0 || st.Mode().Perm() != 0o444 {
		t.Errorf("empty file for masked files: %v %v", st, err)
	}
	// Nothing to do: no spec change, no file.
	other := t.TempDir()
	if err := applyPathMounts(context.Background(), "c2", other, &specs.Spec{Linux: &specs.Linux{MaskedPaths: []string{"/proc/kcore"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(other, oci.ConfigFilename)); !os.IsNotExist(err) {
		t.Errorf("a spec with nothing to mask was saved: %v", err)
	}
}
