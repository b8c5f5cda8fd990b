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
