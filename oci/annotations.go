package oci

import (
	"regexp"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Annotations CRI implementations put in a container's spec to say whether it
// is a pod's sandbox (pause) container or an application container of a pod,
// and which sandbox it belongs to.
const (
	// containerd CRI.
	ContainerTypeAnnotation = "io.kubernetes.cri.container-type"
	SandboxIDAnnotation     = "io.kubernetes.cri.sandbox-id"

	// CRI-O (same values as containerd: "sandbox" / "container").
	CRIOContainerTypeAnnotation = "io.kubernetes.cri-o.ContainerType"
	CRIOSandboxIDAnnotation     = "io.kubernetes.cri-o.SandboxID"

	// dockershim (sandbox value "podsandbox").
	DockershimContainerTypeAnnotation = "io.kubernetes.docker.type"
	DockershimSandboxIDAnnotation     = "io.kubernetes.sandbox.id"
	DockershimContainerTypeSandbox    = "podsandbox"
)

// ContainerType is the role of a container in a pod. Its Sandbox and
// Container values are the values of ContainerTypeAnnotation.
type ContainerType string

const (
	// Unknown: no container type annotation (or one with an unrecognised
	// value). The container is standalone, e.g. `ctr run`, and runs in a
	// sandbox of its own.
	Unknown ContainerType = ""
	// Sandbox is a pod's sandbox (pause) container: it starts the sandbox.
	Sandbox ContainerType = "sandbox"
	// Container is an application container joining its pod's sandbox.
	Container ContainerType = "container"
)

func (t ContainerType) String() string {
	if t == Unknown {
		return "unknown"
	}
	return string(t)
}

// StartsSandbox reports whether a container of this type gets a new runsc
// sandbox (a pod sandbox or a standalone container) rather than joining an
// existing one.
func (t ContainerType) StartsSandbox() bool {
	return t != Container
}

// Kind returns the container type the spec's annotations declare, checking
// containerd's, then CRI-O's, then dockershim's annotation.
func Kind(spec *specs.Spec) ContainerType {
	if spec == nil {
		return Unknown
	}
	return KindOf(spec.Annotations)
}

// KindOf is Kind for an annotation map.
func KindOf(annotations map[string]string) ContainerType {
	for _, key := range []string{ContainerTypeAnnotation, CRIOContainerTypeAnnotation, DockershimContainerTypeAnnotation} {
		v, ok := annotations[key]
		if !ok {
			continue
		}
		switch v {
		case string(Sandbox), DockershimContainerTypeSandbox:
			return Sandbox
		case string(Container):
			return Container
		}
		return Unknown
	}
	return Unknown
}

// SandboxID returns the id of the pod sandbox the spec's annotations name, or
// "" if there is none. For a sandbox container it is its own id.
func SandboxID(spec *specs.Spec) string {
	if spec == nil {
		return ""
	}
	return sandboxID(spec.Annotations)
}

func sandboxID(annotations map[string]string) string {
	for _, key := range []string{SandboxIDAnnotation, CRIOSandboxIDAnnotation, DockershimSandboxIDAnnotation} {
		if v := annotations[key]; v != "" {
			return v
		}
	}
	return ""
}

// GroupID returns the id that groups containers into one shim: the sandbox id
// from the annotations, or id itself for a container outside any pod. A
// sandbox id that is not a valid containerd identifier (e.g. "../other-ns/pod",
// which would alias another namespace's shim socket) is ignored: the
// container gets a shim of its own, where Create rejects the annotation.
func GroupID(annotations map[string]string, id string) string {
	if s := sandboxID(annotations); s != "" && validID(s) {
		return s
	}
	return id
}

// identifierRe and maxIDLength are containerd's pkg/identifiers rule (kept
// here so that oci imports only the runtime spec; a test checks they agree).
var identifierRe = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$`)

const maxIDLength = 76

// validID reports whether s is a valid containerd identifier: no "/", never
// "." or "..".
func validID(s string) bool {
	return s != "" && len(s) <= maxIDLength && identifierRe.MatchString(s)
}

// Pod-level resources containerd's CRI sets on the sandbox container's spec
// (from the pod's resources, when kubelet sends them).
const (
	SandboxCPUPeriodAnnotation = "io.kubernetes.cri.sandbox-cpu-period"
	SandboxCPUQuotaAnnotation  = "io.kubernetes.cri.sandbox-cpu-quota"
	SandboxCPUSharesAnnotation = "io.kubernetes.cri.sandbox-cpu-shares"
	SandboxMemoryAnnotation    = "io.kubernetes.cri.sandbox-memory"
)

// SandboxResources returns the pod-level limits from the sandbox annotations,
// or nil if there are none (0 means unset).
func SandboxResources(spec *specs.Spec) *specs.LinuxResources {
	if spec == nil {
		return nil
	}
	num := func(key string) int64 {
		v, err := strconv.ParseInt(spec.Annotations[key], 10, 64)
		if err != nil || v <= 0 {
			return 0
		}
		return v
	}
	mem, quota, period, shares := num(SandboxMemoryAnnotation), num(SandboxCPUQuotaAnnotation), num(SandboxCPUPeriodAnnotation), num(SandboxCPUSharesAnnotation)
	if mem == 0 && quota == 0 && shares == 0 {
		return nil
	}
	r := &specs.LinuxResources{}
	if mem > 0 {
		r.Memory = &specs.LinuxMemory{Limit: &mem}
	}
	if quota > 0 || shares > 0 {
		r.CPU = &specs.LinuxCPU{}
		if quota > 0 {
			r.CPU.Quota = &quota
			if period > 0 {
				p := uint64(period)
				r.CPU.Period = &p
			}
		}
		if shares > 0 {
			s := uint64(shares)
			r.CPU.Shares = &s
		}
	}
	return r
}
