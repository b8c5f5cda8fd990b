// Package oci holds pure functions over an OCI bundle's config.json: loading
// it, reading the annotations CRI implementations set (container type and
// sandbox id) and the bits of linux config the shim needs.
package oci

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ConfigFilename is the name of the runtime spec inside a bundle.
const ConfigFilename = "config.json"

// LoadSpec reads and decodes <bundle>/config.json. Errors name the file; a
// missing file still satisfies errors.Is(err, fs.ErrNotExist).
func LoadSpec(bundle string) (*specs.Spec, error) {
	path := filepath.Join(bundle, ConfigFilename)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load OCI spec: %w", err) // *PathError names path
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("load OCI spec %s: %w", path, err)
	}
	return &spec, nil
}

// NetNSPath returns the path of the network namespace the container must
// join, or "" if the spec has none (no network namespace, or a new one).
func NetNSPath(spec *specs.Spec) string {
	if spec == nil || spec.Linux == nil {
		return ""
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			return ns.Path
		}
	}
	return ""
}

// CgroupsPath returns linux.cgroupsPath, or "" if unset. With the systemd
// cgroup driver it has the form "slice:prefix:name".
func CgroupsPath(spec *specs.Spec) string {
	if spec == nil || spec.Linux == nil {
		return ""
	}
	return spec.Linux.CgroupsPath
}

// SaveSpec writes spec to <bundle>/config.json atomically.
func SaveSpec(bundle string, spec *specs.Spec) error {
	path := filepath.Join(bundle, ConfigFilename)
	b, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode OCI spec: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write OCI spec: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write OCI spec: %w", err)
	}
	return nil
}

// DropCapability removes the capability name from every set of the
// process's capabilities and reports whether it was present.
func DropCapability(spec *specs.Spec, name string) bool {
	if spec == nil || spec.Process == nil || spec.Process.Capabilities == nil {
		return false
	}
	c := spec.Process.Capabilities
	dropped := false
	for _, set := range []*[]string{&c.Bounding, &c.Effective, &c.Inheritable, &c.Permitted, &c.Ambient} {
		out := (*set)[:0]
		for _, v := range *set {
			if v == name {
				dropped = true
				continue
			}
			out = append(out, v)
		}
		*set = out
	}
	return dropped
}

// MemoryLimit returns linux.resources.memory.limit in bytes, 0 if unset or
// unlimited.
func MemoryLimit(spec *specs.Spec) uint64 {
	if spec == nil || spec.Linux == nil || spec.Linux.Resources == nil || spec.Linux.Resources.Memory == nil ||
		spec.Linux.Resources.Memory.Limit == nil || *spec.Linux.Resources.Memory.Limit <= 0 {
		return 0
	}
	return uint64(*spec.Linux.Resources.Memory.Limit)
}

// RenameSandbox rewrites the sandbox id in the CRI annotations runsc reads
// to find a joining container's sandbox (containerd's and CRI-O's) with
// rename, and reports whether anything changed.
func RenameSandbox(spec *specs.Spec, rename func(string) string) bool {
	if spec == nil {
		return false
	}
	changed := false
	for _, key := range []string{SandboxIDAnnotation, CRIOSandboxIDAnnotation} {
		if v := spec.Annotations[key]; v != "" {
			if n := rename(v); n != v {
				spec.Annotations[key] = n
				changed = true
			}
		}
	}
	return changed
}
