package oci

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestGroupIDRejectsHostileSandboxID: the group id names the pod's shim
// socket (hashed from <socket dir>/<namespace>/<group>), so a sandbox id
// annotation with "/" or ".." could make a container share the shim of a pod
// in another namespace. Such an annotation is ignored: the container keeps
// its own id as its group (and Create rejects the annotation).
func TestGroupIDRejectsHostileSandboxID(t *testing.T) {
	for _, hostile := range []string{
		"../default/pod1", "..", ".", "a/b", "/abs", "pod1/..", "pod1\x00", "pod 1",
		strings.Repeat("a", maxIDLength+1),
	} {
		for _, key := range []string{SandboxIDAnnotation, CRIOSandboxIDAnnotation, DockershimSandboxIDAnnotation} {
			if got := GroupID(map[string]string{key: hostile}, "c1"); got != "c1" {
				t.Errorf("GroupID(%s=%q) = %q, want the container's own id c1", key, hostile, got)
			}
		}
	}
	// Valid ids are still used, up to containerd's maximum length.
	long := strings.Repeat("f", maxIDLength)
	if got := GroupID(map[string]string{SandboxIDAnnotation: long}, "c1"); got != long {
		t.Errorf("GroupID(76-char id) = %q", got)
	}
	if got := GroupID(map[string]string{SandboxIDAnnotation: "pod-1.a_b"}, "c1"); got != "pod-1.a_b" {
		t.Errorf("GroupID(pod-1.a_b) = %q", got)
	}
}

// FuzzAnnotations feeds hostile CRI annotations (container type, sandbox id,
// pod resources) and a memory limit to every annotation reader.
func FuzzAnnotations(f *testing.F) {
	const podID = "7c1e0a7d3b9f4f2e8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"
	// ctype, sandbox, crioType, crioSandbox, dockerType, dockerSandbox, id,
	// memory, quota, period, shares, limit.
	f.Add("sandbox", podID, "", "", "", "", podID, "268435456", "50000", "100000", "512", int64(268435456))
	f.Add("container", podID, "", "", "", "", "c1", "", "", "", "", int64(0))
	f.Add("", "", "container", "pod2", "", "", "c1", "", "", "", "", int64(-1))
	f.Add("", "", "sandbox", "c1", "", "", "c1", "0", "-1", "100000", "2", int64(1))
	f.Add("", "", "", "", "podsandbox", "", "c1", "", "", "", "", int64(0))
	f.Add("", "", "", "", "container", "pod3", "c1", "", "", "", "", int64(0))
	f.Add("sidecar", "pod1", "sandbox", "pod2", "", "", "c1", "", "", "", "", int64(0))
	f.Add("container", "../default/pod1", "", "", "", "", "c1", "9223372036854775807", "9223372036854775808", "x", "1e3", int64(9223372036854775807))
	f.Add("container", "..", "", "", "", "", "c1", " 1", "+5", "-0", "0x10", int64(-9223372036854775808))
	f.Add("container", "a/b", "", "", "", "", "..", "", "", "", "", int64(0))

	f.Fuzz(func(t *testing.T, ctype, sandbox, crioType, crioSandbox, dockerType, dockerSandbox, id,
		memory, quota, period, shares string, limit int64) {
		ann := map[string]string{}
		set := func(k, v string) {
			if v != "" {
				ann[k] = v
			}
		}
		set(ContainerTypeAnnotation, ctype)
		set(SandboxIDAnnotation, sandbox)
		set(CRIOContainerTypeAnnotation, crioType)
		set(CRIOSandboxIDAnnotation, crioSandbox)
		set(DockershimContainerTypeAnnotation, dockerType)
		set(DockershimSandboxIDAnnotation, dockerSandbox)
		set(SandboxMemoryAnnotation, memory)
		set(SandboxCPUQuotaAnnotation, quota)
		set(SandboxCPUPeriodAnnotation, period)
		set(SandboxCPUSharesAnnotation, shares)
		spec := &specs.Spec{Annotations: ann, Linux: &specs.Linux{Resources: &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: &limit}}}}

		// Kind: one of three values, decided by the first annotation present.
		kind := Kind(spec)
		if kind != KindOf(ann) {
			t.Fatalf("Kind(spec) = %q, KindOf = %q", kind, KindOf(ann))
		}
		switch kind {
		case Unknown, Sandbox, Container:
		default:
			t.Fatalf("Kind = %q, not a known type", kind)
		}
		if kind.String() == "" || kind.StartsSandbox() != (kind != Container) {
			t.Fatalf("Kind %q: String %q StartsSandbox %v", kind, kind.String(), kind.StartsSandbox())
		}
		if first := firstPresent(ann, ContainerTypeAnnotation, CRIOContainerTypeAnnotation, DockershimContainerTypeAnnotation); first == "" && kind != Unknown {
			t.Fatalf("Kind = %q without a type annotation", kind)
		}

		// SandboxID: "" or one of the annotation values, first non-empty wins.
		sid := SandboxID(spec)
		if want := firstPresent(ann, SandboxIDAnnotation, CRIOSandboxIDAnnotation, DockershimSandboxIDAnnotation); sid != want {
			t.Fatalf("SandboxID = %q, want %q", sid, want)
		}

		// GroupID: the sandbox id or id; valid whenever id is valid, so
		// that it cannot leave its namespace's socket directory.
		g := GroupID(ann, id)
		if g != id && g != sid {
			t.Fatalf("GroupID = %q, neither id %q nor sandbox id %q", g, id, sid)
		}
		if identifiers.Validate(id) == nil {
			if err := identifiers.Validate(g); err != nil {
				t.Fatalf("GroupID(%q) = %q: %v", id, g, err)
			}
			if strings.Contains(g, "/") || g == "." || g == ".." {
				t.Fatalf("GroupID = %q is not one path element", g)
			}
			dir := filepath.Join("/run/containerd/s", "k8s.io")
			if p := filepath.Join(dir, g); filepath.Dir(p) != dir {
				t.Fatalf("group %q: %s leaves %s", g, p, dir)
			}
		}
		// The local rule is containerd's.
		for _, s := range []string{sandbox, crioSandbox, dockerSandbox, id} {
			if validID(s) != (identifiers.Validate(s) == nil) {
				t.Fatalf("validID(%q) = %v, identifiers.Validate = %v", s, validID(s), identifiers.Validate(s))
			}
		}

		// SandboxResources: only positive values, as the annotations say.
		num := func(s string) int64 {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v <= 0 {
				return 0
			}
			return v
		}
		mem, q, p, sh := num(memory), num(quota), num(period), num(shares)
		r := SandboxResources(spec)
		if (r == nil) != (mem == 0 && q == 0 && sh == 0) {
			t.Fatalf("SandboxResources = %+v for memory %q quota %q shares %q", r, memory, quota, shares)
		}
		if r != nil {
			if (r.Memory != nil) != (mem > 0) || (r.Memory != nil && (r.Memory.Limit == nil || *r.Memory.Limit != mem)) {
				t.Fatalf("memory %q: %+v", memory, r.Memory)
			}
			if (r.CPU != nil) != (q > 0 || sh > 0) {
				t.Fatalf("cpu quota %q shares %q: %+v", quota, shares, r.CPU)
			}
			if c := r.CPU; c != nil {
				if (c.Quota != nil) != (q > 0) || (c.Quota != nil && *c.Quota != q) {
					t.Fatalf("quota %q: %v", quota, c.Quota)
				}
				if (c.Period != nil) != (q > 0 && p > 0) || (c.Period != nil && *c.Period != uint64(p)) {
					t.Fatalf("period %q (quota %q): %v", period, quota, c.Period)
				}
				if (c.Shares != nil) != (sh > 0) || (c.Shares != nil && *c.Shares != uint64(sh)) {
					t.Fatalf("shares %q: %v", shares, c.Shares)
				}
				if c.Cpus != "" || c.Mems != "" || c.RealtimePeriod != nil || c.RealtimeRuntime != nil {
					t.Fatalf("unexpected cpu fields %+v", c)
				}
			}
		}

		// MemoryLimit: the limit if positive, else 0 (unlimited is -1).
		if got := MemoryLimit(spec); (limit > 0 && got != uint64(limit)) || (limit <= 0 && got != 0) {
			t.Fatalf("MemoryLimit(%d) = %d", limit, got)
		}

		// RenameSandbox rewrites exactly containerd's and CRI-O's sandbox id.
		before := map[string]string{}
		for k, v := range ann {
			before[k] = v
		}
		changed := RenameSandbox(spec, func(s string) string { return s + "+" })
		if changed != (sandbox != "" || crioSandbox != "") {
			t.Fatalf("RenameSandbox changed = %v for %q/%q", changed, sandbox, crioSandbox)
		}
		for k, v := range before {
			want := v
			if k == SandboxIDAnnotation || k == CRIOSandboxIDAnnotation {
				want = v + "+"
			}
			if ann[k] != want {
				t.Fatalf("RenameSandbox: %s = %q, want %q", k, ann[k], want)
			}
		}
		if RenameSandbox(spec, func(s string) string { return s }) {
			t.Fatal("RenameSandbox with the identity reported a change")
		}
	})
}

// firstPresent is the value of the first key present in m, or "".
func firstPresent(m map[string]string, keys ...string) string {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v
		}
	}
	return ""
}
