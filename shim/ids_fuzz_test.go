package shim

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/identifiers"
)

// FuzzIdentifiers documents the property the shim relies on when an id
// (container, exec, sandbox) becomes a file name in the bundle or a runsc
// argument: an id pkg/identifiers accepts is one path element, so
// <bundle>/exec-<id>.pid stays in the bundle, and it never contains the
// runsc id suffix, so no suffixed runsc id is a prefix of another.
func FuzzIdentifiers(f *testing.F) {
	for _, s := range []string{
		"abc", "c1", "pod1", "exec-1", "it-rs-sleep-24-4e568e", "probe1",
		"7c1e0a7d3b9f4f2e8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f",
		"a.b_c-d", "A1", "0", strings.Repeat("a", 76), strings.Repeat("a", 77),
		"", ".", "..", "../x", "a/b", "/abs", "a/../..", "a..b", "-a", "a-", "a+", "a b", "a\x00b", "a\nb",
		"%ID%", "é", "exec-1.pid", "..\\x",
	} {
		f.Add(s)
	}
	const bundle = "/bundle"
	f.Fuzz(func(t *testing.T, s string) {
		// The shim's validateID is at least as strict as containerd's rule.
		if validateID("exec", s) == nil && identifiers.Validate(s) != nil {
			t.Fatalf("validateID accepted %q, which identifiers.Validate rejects", s)
		}
		if identifiers.Validate(s) != nil {
			return
		}
		if strings.Contains(s, "/") || s == "." || s == ".." {
			t.Fatalf("valid id %q is not one path element", s)
		}
		for _, name := range []string{"exec-" + s + ".pid", s} {
			p := filepath.Join(bundle, name)
			if filepath.Dir(p) != bundle || filepath.Base(p) != name {
				t.Fatalf("%q: %s is not a file directly in %s", s, p, bundle)
			}
			if rel, err := filepath.Rel(bundle, p); err != nil || rel != name {
				t.Fatalf("%q: %s leaves %s (%q, %v)", s, p, bundle, rel, err)
			}
		}
		if strings.ContainsAny(s, "+%\x00\n=") || strings.HasPrefix(s, "-") {
			t.Fatalf("valid id %q holds a character the shim gives a meaning", s)
		}
		if len(s) > 76 {
			t.Fatalf("valid id %q longer than 76 bytes", s)
		}
	})
}
