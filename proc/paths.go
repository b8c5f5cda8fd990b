package proc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/oci"
)

// maskedEmptyFile is the empty read-only file in the bundle bound over the
// container's masked files.
const maskedEmptyFile = "masked-empty-file"

// applyPathMounts turns the spec's masked and read-only paths, which runsc
// ignores, into mounts runsc honours (oci.PathMounts), saves the spec and
// logs a warning naming the container and every path it changed.
func applyPathMounts(ctx context.Context, id, bundle string, spec *specs.Spec) error {
	if spec == nil || spec.Linux == nil || len(spec.Linux.MaskedPaths)+len(spec.Linux.ReadonlyPaths) == 0 {
		return nil
	}
	rootfs := filepath.Join(bundle, "rootfs")
	if spec.Root != nil && spec.Root.Path != "" {
		rootfs = spec.Root.Path
		if !filepath.IsAbs(rootfs) {
			rootfs = filepath.Join(bundle, rootfs)
		}
	}
	empty := filepath.Join(bundle, maskedEmptyFile)
	pms := oci.PathMounts(spec, rootfs, empty)
	var changed, left []string
	needEmpty := false
	for _, pm := range pms {
		if pm.Mount == nil {
			left = append(left, pm.String())
			continue
		}
		changed = append(changed, pm.String())
		if pm.Mount.Source == empty {
			needEmpty = true
		}
	}
	if len(left) > 0 {
		log.G(ctx).WithField("id", id).WithField("paths", left).Debug("masked and read-only paths left to runsc")
	}
	if len(changed) == 0 {
		return nil
	}
	if needEmpty {
		if err := os.WriteFile(empty, nil, 0o444); err != nil {
			return fmt.Errorf("create the empty file for masked paths: %w", err)
		}
	}
	oci.ApplyPathMounts(spec, pms)
	if err := oci.SaveSpec(bundle, spec); err != nil {
		return fmt.Errorf("add mounts for masked and read-only paths to the spec: %w", err)
	}
	log.G(ctx).WithField("id", id).WithField("changes", changed).
		Warn("runsc ignores linux.maskedPaths and linux.readonlyPaths: the shim added mounts to the spec for them")
	return nil
}
