package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/continuity/fs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runsc (20221219 and current) ignores linux.maskedPaths and
// linux.readonlyPaths (integration tests TestCompatRawMaskedPaths and
// TestCompatRawReadonlyPaths). PathMounts expresses them as mounts, which
// runsc honours: a read-only empty tmpfs over a masked directory, a
// read-only bind of an empty file over a masked file, a read-only bind of
// the path onto itself for a read-only path.

// PathMount is one masked or read-only path turned into a mount, or left
// alone (Mount nil) with the reason.
type PathMount struct {
	// Kind is "masked" or "read-only".
	Kind string
	Path string
	// Mount is what the path became; nil if it was left alone.
	Mount *specs.Mount
	// Note says what was done or why nothing was.
	Note string
}

// String describes the change for a log line.
func (p PathMount) String() string {
	return fmt.Sprintf("%s %s: %s", p.Kind, p.Path, p.Note)
}

// PathMounts computes, for each of the spec's masked and read-only paths,
// the mount that makes it so. rootfs is the container's root directory on
// the host; emptyFile an empty read-only file to bind over masked files.
// Paths are resolved as the container would see them: inside the rootfs
// (symlinks bounded to it) or inside a bind-mounted volume; paths under
// /proc and /sys (gVisor's own procfs and sysfs, which hold no host data),
// inside other mounts (tmpfs, devices) or that do not exist are left alone,
// as runc leaves a missing path. Read-only paths come before masked ones,
// the order runc applies them in.
func PathMounts(spec *specs.Spec, rootfs, emptyFile string) []PathMount {
	if spec == nil || spec.Linux == nil {
		return nil
	}
	var out []PathMount
	for _, p := range spec.Linux.ReadonlyPaths {
		pm := PathMount{Kind: "read-only", Path: p}
		if host, _, why := resolve(spec, rootfs, p); why != "" {
			pm.Note = "left alone: " + why
		} else {
			pm.Mount = &specs.Mount{Destination: p, Type: "bind", Source: host, Options: []string{"rbind", "ro"}}
			pm.Note = "read-only bind mount of itself"
		}
		out = append(out, pm)
	}
	for _, p := range spec.Linux.MaskedPaths {
		pm := PathMount{Kind: "masked", Path: p}
		_, isDir, why := resolve(spec, rootfs, p)
		switch {
		case why != "":
			pm.Note = "left alone: " + why
		case isDir:
			pm.Mount = &specs.Mount{Destination: p, Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid", "nodev", "noexec", "mode=0555"}}
			pm.Note = "read-only empty tmpfs"
		default:
			pm.Mount = &specs.Mount{Destination: p, Type: "bind", Source: emptyFile, Options: []string{"bind", "ro"}}
			pm.Note = "read-only bind of an empty file"
		}
		out = append(out, pm)
	}
	return out
}

// ApplyPathMounts appends the mounts of pms to the spec and reports whether
// any was added.
func ApplyPathMounts(spec *specs.Spec, pms []PathMount) bool {
	added := false
	for _, pm := range pms {
		if pm.Mount != nil {
			spec.Mounts = append(spec.Mounts, *pm.Mount)
			added = true
		}
	}
	return added
}

// resolve finds path p of the container on the host: its host path and
// whether it is a directory, or why it cannot be used.
func resolve(spec *specs.Spec, rootfs, p string) (host string, isDir bool, why string) {
	if !filepath.IsAbs(p) {
		return "", false, "not an absolute path"
	}
	p = filepath.Clean(p)
	for _, synthetic := range []string{"/proc", "/sys"} {
		if p == synthetic || strings.HasPrefix(p, synthetic+"/") {
			return "", false, "served by gVisor's own " + strings.TrimPrefix(synthetic, "/") + "fs, which holds no host data"
		}
	}
	root, rel := rootfs, p
	if m := coveringMount(spec.Mounts, p); m != nil {
		if !isBind(m) {
			return "", false, fmt.Sprintf("inside the %s mount at %s", m.Type, m.Destination)
		}
		root = m.Source
		rel = strings.TrimPrefix(p, filepath.Clean(m.Destination))
		if st, err := os.Stat(root); err == nil && !st.IsDir() {
			if rel != "" {
				return "", false, fmt.Sprintf("below the file mounted at %s", m.Destination)
			}
			return root, false, ""
		}
	}
	if rel == "" || rel == "/" {
		host = root
	} else {
		h, err := fs.RootPath(root, rel)
		if err != nil {
			return "", false, fmt.Sprintf("cannot resolve it: %v", err)
		}
		host = h
	}
	st, err := os.Stat(host)
	if err != nil {
		if os.IsNotExist(err) {
			return "", false, "does not exist"
		}
		return "", false, fmt.Sprintf("cannot stat it: %v", err)
	}
	return host, st.IsDir(), ""
}

// coveringMount is the mount whose destination is p or its closest parent.
func coveringMount(mounts []specs.Mount, p string) *specs.Mount {
	var best *specs.Mount
	for i := range mounts {
		d := filepath.Clean(mounts[i].Destination)
		if d == "/" {
			continue
		}
		if (p == d || strings.HasPrefix(p, d+"/")) && (best == nil || len(d) >= len(filepath.Clean(best.Destination))) {
			best = &mounts[i]
		}
	}
	return best
}

func isBind(m *specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}
