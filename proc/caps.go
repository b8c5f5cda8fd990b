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

// dropCap removes name from the bundle's spec, with a warning, and reports
// whether the spec changed (and so whether retrying can help).
func dropCap(ctx context.Context, bundle string, spec *specs.Spec, name string) bool {
	unknownCaps.Store(name, struct{}{})
	if !oci.DropCapability(spec, name) {
		return false
	}
	log.G(ctx).WithField("capability", name).Warn("the installed runsc does not know this capability: dropping it from the container")
	if err := oci.SaveSpec(bundle, spec); err != nil {
		log.G(ctx).WithError(err).Warn("rewrite spec without unknown capability")
		return false
	}
	return true
}

// dropKnownUnknownCaps drops the capabilities runsc already rejected.
func dropKnownUnknownCaps(ctx context.Context, bundle string, spec *specs.Spec) {
	changed := false
	unknownCaps.Range(func(k, _ any) bool {
		if oci.DropCapability(spec, k.(string)) {
			log.G(ctx).WithField("capability", k).Warn("the installed runsc does not know this capability: dropping it from the container")
			changed = true
		}
		return true
	})
	if changed {
		if err := oci.SaveSpec(bundle, spec); err != nil {
			log.G(ctx).WithError(err).Warn("rewrite spec without unknown capabilities")
		}
	}
}
