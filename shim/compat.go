package shim

import (
	"context"
	"sort"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/gvisor-shim/containerd-shim-runsc-v1/runsc"
)

// compatFlags returns the runsc flags a container's spec needs to mean what
// it means under runc, when the runsc in use has them and runsc.toml's
// [runsc_config] does not decide already:
//
//   - --oci-seccomp when the spec has a seccomp profile: without it runsc
//     ignores linux.seccomp (TestCompatRawSeccomp). runsc reads it from
//     each container's own `runsc create`, so a pod's containers are
//     filtered each by its own profile (TestCompatRawSeccompPerContainer).
//   - --allow-suid on every container: without it runsc never honours
//     setuid/setgid bits (TestCompatRawSetuid); runsc reads it from the
//     sandbox's create only (the pause container, whose spec has
//     no_new_privs on), and no_new_privs still stops the elevation per
//     container (TestCompatRawSetuidSandboxFlag), as with runc.
func compatFlags(ctx context.Context, id string, cfg *Config, f *runsc.Features, spec *specs.Spec) []string {
	var flags []string
	set := func(name string) bool {
		_, ok := cfg.RunscConfig[name]
		return ok
	}
	l := log.G(ctx).WithField("id", id).WithField("runsc", f.String())
	if spec.Linux != nil && spec.Linux.Seccomp != nil && !set("oci-seccomp") {
		if f.HasFlag("oci-seccomp") {
			flags = append(flags, "--oci-seccomp")
			l.Debug("the spec has a seccomp profile: runsc --oci-seccomp enforces it inside the sandbox")
		} else {
			l.Warn("the spec's seccomp profile is not enforced: this runsc has no --oci-seccomp flag")
		}
	}
	if !set("allow-suid") && f.HasFlag("allow-suid") {
		flags = append(flags, "--allow-suid")
		l.Debug("runsc --allow-suid: setuid and setgid bits work as with runc, unless no_new_privs is on")
	}
	return flags
}

// containerdSysctls are the sysctls containerd 2.x adds to every pod
// sandbox by itself; nobody can act on a warning about them.
var containerdSysctls = map[string]bool{
	"net.ipv4.ip_unprivileged_port_start": true,
	"net.ipv4.ping_group_range":           true,
}

// warnIgnoredSpec logs a warning for the parts of a container's spec that
// runsc accepts but does not apply, so that nothing is dropped silently:
// linux.sysctl (TestCompatRawSysctls; containerd puts a pod's sysctls in
// its sandbox container's spec) and process.apparmorProfile
// (TestCompatRawLSM: gVisor applies no LSM; the Sentry is the isolation
// boundary). A process.selinuxLabel needs no warning: runsc refuses the
// spec ("SELinux is not supported"), and the shim quotes it.
func warnIgnoredSpec(ctx context.Context, id string, spec *specs.Spec) {
	l := log.G(ctx).WithField("id", id)
	if spec.Process != nil && spec.Process.ApparmorProfile != "" {
		l.WithField("apparmorProfile", spec.Process.ApparmorProfile).Warn("runsc does not apply process.apparmorProfile: the container runs without that AppArmor profile (gVisor's Sentry confines it)")
	}
	if spec.Linux == nil || len(spec.Linux.Sysctl) == 0 {
		return
	}
	var user, defaults []string
	for k := range spec.Linux.Sysctl {
		if containerdSysctls[k] {
			defaults = append(defaults, k)
		} else {
			user = append(user, k)
		}
	}
	sort.Strings(user)
	sort.Strings(defaults)
	if len(defaults) > 0 {
		l.WithField("sysctls", defaults).Debug("runsc does not apply linux.sysctl (containerd's defaults)")
	}
	if len(user) > 0 {
		l.WithField("sysctls", user).Warn("runsc does not apply linux.sysctl: the container runs with gVisor's own values")
	}
}
