package oci

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
)

// SystemdCgroup is a linux.cgroupsPath in the systemd cgroup driver's form
// "slice:prefix:name" (runc's, and what containerd's CRI sends for a pod
// whose cgroup parent is a slice: "kubepods-besteffort-pod<uid>.slice:cri-containerd:<id>").
// It names the transient scope unit "<prefix>-<name>.scope" inside Slice.
type SystemdCgroup struct {
	Slice  string
	Prefix string
	Name   string
}

// DefaultSlice is the slice of a systemd cgroupsPath whose slice is empty
// (":prefix:name"), as with runc and runsc.
const DefaultSlice = "system.slice"

// maxUnitName is systemd's limit on unit names (UNIT_NAME_MAX - 1).
const maxUnitName = 255

// unitWord is what the shim accepts as a scope prefix or name: the
// characters systemd allows in unit names, without ':' and '\' (escapes),
// starting with a letter or digit.
var unitWord = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// IsSystemdCgroupsPath reports whether p is meant in the systemd driver's
// form: a cgroupfs path never contains ':' here, so any ':' makes it one
// (and ParseSystemdCgroupsPath rejects it if it is malformed, rather than
// letting runsc create a directory named after it).
func IsSystemdCgroupsPath(p string) bool {
	return strings.Contains(p, ":")
}

// ParseSystemdCgroupsPath parses "slice:prefix:name". Every error names p
// and wraps errdefs.ErrInvalidArgument.
func ParseSystemdCgroupsPath(p string) (SystemdCgroup, error) {
	invalid := func(format string, args ...any) (SystemdCgroup, error) {
		return SystemdCgroup{}, fmt.Errorf("cgroupsPath %q: %s (the systemd form is slice:prefix:name, e.g. kubepods-besteffort-pod1234.slice:cri-containerd:<id>): %w",
			p, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
	}
	parts := strings.Split(p, ":")
	if len(parts) != 3 {
		return invalid("%d fields separated by ':', want 3", len(parts))
	}
	c := SystemdCgroup{Slice: parts[0], Prefix: parts[1], Name: parts[2]}
	if c.Slice == "" {
		c.Slice = DefaultSlice
	}
	if _, err := ExpandSlice(c.Slice); err != nil {
		return invalid("%v", err)
	}
	if !unitWord.MatchString(c.Prefix) {
		return invalid("prefix %q: must be letters, digits, '_', '.' or '-', starting with a letter or digit", c.Prefix)
	}
	if !unitWord.MatchString(c.Name) {
		return invalid("name %q: must be letters, digits, '_', '.' or '-', starting with a letter or digit", c.Name)
	}
	if strings.HasSuffix(c.Name, ".slice") {
		return invalid("name %q is a slice: the shim creates scopes only", c.Name)
	}
	if u := c.Unit(); len(u) > maxUnitName {
		return invalid("unit name %q is %d characters long, systemd allows %d", u, len(u), maxUnitName)
	}
	return c, nil
}

// Unit is the scope's unit name, "<prefix>-<name>.scope".
func (c SystemdCgroup) Unit() string {
	return c.Prefix + "-" + c.Name + ".scope"
}

// Path is the scope's cgroup path below systemd's root cgroup, e.g.
// "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice/cri-containerd-<id>.scope".
func (c SystemdCgroup) Path() string {
	s, err := ExpandSlice(c.Slice)
	if err != nil {
		return "" // not from ParseSystemdCgroupsPath
	}
	return path.Join(s, c.Unit())
}

// String is the cgroupsPath form.
func (c SystemdCgroup) String() string {
	return c.Slice + ":" + c.Prefix + ":" + c.Name
}

// ExpandSlice returns the cgroup path of a slice as systemd lays it out:
// each '-' opens a level, so "kubepods-besteffort-pod1234.slice" is
// "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice";
// "-.slice" is the root "/".
func ExpandSlice(slice string) (string, error) {
	name, ok := strings.CutSuffix(slice, ".slice")
	if !ok || name == "" {
		return "", fmt.Errorf("slice %q: a slice name ends in \".slice\"", slice)
	}
	if len(slice) > maxUnitName {
		return "", fmt.Errorf("slice %q: %d characters long, systemd allows %d", slice, len(slice), maxUnitName)
	}
	if name == "-" {
		return "/", nil
	}
	var b strings.Builder
	prefix := ""
	for _, part := range strings.Split(name, "-") {
		if part == "" {
			return "", fmt.Errorf("slice %q: empty component (a leading, trailing or doubled '-')", slice)
		}
		if !unitWord.MatchString(part) {
			return "", fmt.Errorf("slice %q: component %q must be letters, digits, '_' or '.', starting with a letter or digit", slice, part)
		}
		prefix += part
		b.WriteString("/" + prefix + ".slice")
		prefix += "-"
	}
	return b.String(), nil
}
