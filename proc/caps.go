package proc

import (
	"context"
	"regexp"
	"sync"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/oci"
)

// maxCapRetries bounds how many unknown capabilities one create drops.
const maxCapRetries = 8

var unknownCapRE = regexp.MustCompile(`unknown capability "(CAP_[A-Z0-9_]+)"`)

// unknownCaps are the capabilities the installed runsc rejected, remembered
// so that the pod's next containers drop them before runsc create.
var unknownCaps sync.Map

// unknownCapability returns the capability runsc rejected in err, if any.
// Newer containerd grants capabilities (CAP_PERFMON, CAP_BPF, ...) that older
// runsc releases do not know.
func unknownCapability(err error) string {
	if m := unknownCapRE.FindStringSubmatch(err.Error()); m != nil {
		return m[1]
	}
	return ""
}

// dropUnknownCap records that runsc rejected name and removes it from spec
// (a container's, or a wrapper of an exec's process), with a warning. It
// reports whether spec changed, and so whether retrying can help.
func dropUnknownCap(ctx context.Context, spec *specs.Spec, name, what string) bool {
	unknownCaps.Store(name, struct{}{})
	if !oci.DropCapability(spec, name) {
		return false
	}
	log.G(ctx).WithField("capability", name).Warnf("the installed runsc does not know this capability: dropping it from the %s", what)
	return true
}

// dropCachedCaps removes the capabilities runsc already rejected from spec.
func dropCachedCaps(ctx context.Context, spec *specs.Spec, what string) bool {
	changed := false
	unknownCaps.Range(func(k, _ any) bool {
		if oci.DropCapability(spec, k.(string)) {
			log.G(ctx).WithField("capability", k).Warnf("the installed runsc does not know this capability: dropping it from the %s", what)
			changed = true
		}
		return true
	})
	return changed
}

// dropCap drops name from the bundle's spec and saves it.
func dropCap(ctx context.Context, bundle string, spec *specs.Spec, name string) bool {
	if !dropUnknownCap(ctx, spec, name, "container") {
		return false
	}
	if err := oci.SaveSpec(bundle, spec); err != nil {
		log.G(ctx).WithError(err).Warn("rewrite spec without unknown capability")
		return false
	}
	return true
}

// dropKnownUnknownCaps drops the capabilities runsc already rejected from
// the bundle's spec before runsc sees it.
func dropKnownUnknownCaps(ctx context.Context, bundle string, spec *specs.Spec) {
	if dropCachedCaps(ctx, spec, "container") {
		if err := oci.SaveSpec(bundle, spec); err != nil {
			log.G(ctx).WithError(err).Warn("rewrite spec without unknown capabilities")
		}
	}
}

// dropProcessCap drops name from an exec's process spec.
func dropProcessCap(ctx context.Context, process *specs.Process, name string) bool {
	return dropUnknownCap(ctx, &specs.Spec{Process: process}, name, "exec")
}

// dropKnownUnknownProcessCaps drops the capabilities runsc already rejected
// from an exec's process spec.
func dropKnownUnknownProcessCaps(ctx context.Context, process *specs.Process) {
	dropCachedCaps(ctx, &specs.Spec{Process: process}, "exec")
}
