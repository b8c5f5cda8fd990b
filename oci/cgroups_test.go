package oci

import (
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParseSystemdCgroupsPath(t *testing.T) {
	id := strings.Repeat("a", 64)
	for _, tc := range []struct {
		path      string
		unit      string
		cgroup    string
		wantError string // substring; "" means valid
	}{
		{path: "kubepods-besteffort-pod123.slice:cri-containerd:" + id, unit: "cri-containerd-" + id + ".scope",
			cgroup: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/cri-containerd-" + id + ".scope"},
		{path: "kubepods-burstable-pod1a2b_3c4d.slice:cri-containerd:abc", unit: "cri-containerd-abc.scope",
			cgroup: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c4d.slice/cri-containerd-abc.scope"},
		{path: "kubepods.slice:cri-containerd:x1", unit: "cri-containerd-x1.scope", cgroup: "/kubepods.slice/cri-containerd-x1.scope"},
		{path: "system.slice:docker:abc", unit: "docker-abc.scope", cgroup: "/system.slice/docker-abc.scope"},
		{path: ":runsc:abc", unit: "runsc-abc.scope", cgroup: "/system.slice/runsc-abc.scope"},
		{path: "-.slice:runsc:abc", unit: "runsc-abc.scope", cgroup: "/runsc-abc.scope"},
		{path: "a.b-c.slice:p:n.1_x-y", unit: "p-n.1_x-y.scope", cgroup: "/a.b.slice/a.b-c.slice/p-n.1_x-y.scope"},

		{path: "kubepods.slice:cri-containerd", wantError: "2 fields"},
		{path: "a.slice:b:c:d", wantError: "4 fields"},
		{path: "kubepods:cri-containerd:x", wantError: `slice "kubepods": a slice name ends in ".slice"`},
		{path: ".slice:p:x", wantError: `ends in ".slice"`},
		{path: "kubepods--besteffort.slice:p:x", wantError: "empty component"},
		{path: "-kubepods.slice:p:x", wantError: "empty component"},
		{path: "kubepods-.slice:p:x", wantError: "empty component"},
		{path: "kube/pods.slice:p:x", wantError: `component "kube/pods"`},
		{path: "../x.slice:p:x", wantError: `component "../x"`},
		{path: `kube\x2dpods.slice:p:x`, wantError: "component"},
		{path: "kubepods.slice::x", wantError: `prefix ""`},
		{path: "kubepods.slice:p:", wantError: `name ""`},
		{path: "kubepods.slice:p/q:x", wantError: `prefix "p/q"`},
		{path: "kubepods.slice:p:../../x", wantError: `name "../../x"`},
		{path: "kubepods.slice:p:.x", wantError: `name ".x"`},
		{path: "kubepods.slice:p:x y", wantError: `name "x y"`},
		{path: "kubepods.slice:p:-x", wantError: `name "-x"`},
		{path: "kubepods.slice:p:x.slice", wantError: "is a slice"},
		{path: "kubepods.slice:p:" + strings.Repeat("x", 250), wantError: "systemd allows 255"},
		{path: strings.Repeat("x", 250) + ".slice:p:x", wantError: "systemd allows 255"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if !IsSystemdCgroupsPath(tc.path) {
				t.Fatalf("IsSystemdCgroupsPath(%q) = false", tc.path)
			}
			c, err := ParseSystemdCgroupsPath(tc.path)
			if tc.wantError != "" {
				if err == nil {
					t.Fatalf("parsed as %+v, want an error containing %q", c, tc.wantError)
				}
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.wantError) || !strings.Contains(err.Error(), strconv.Quote(tc.path)) {
					t.Fatalf("error %q: want InvalidArgument naming the path and containing %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Unit() != tc.unit || c.Path() != tc.cgroup {
				t.Errorf("unit %q cgroup %q, want %q %q", c.Unit(), c.Path(), tc.unit, tc.cgroup)
			}
		})
	}
}

func TestIsSystemdCgroupsPath(t *testing.T) {
	for p, want := range map[string]bool{
		"":                          false,
		"/kubepods/besteffort/pod1": false,
		"kubepods/pod1/abc":         false,
		"a.slice:b:c":               true,
		"/a:b":                      true, // rejected by the parser, never made a directory
	} {
		if got := IsSystemdCgroupsPath(p); got != want {
			t.Errorf("IsSystemdCgroupsPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestExpandSlice(t *testing.T) {
	for slice, want := range map[string]string{
		"-.slice":                           "/",
		"system.slice":                      "/system.slice",
		"kubepods-besteffort-pod123.slice":  "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice",
		"user-1000.slice":                   "/user.slice/user-1000.slice",
		"a-b-c-d.slice":                     "/a.slice/a-b.slice/a-b-c.slice/a-b-c-d.slice",
		"kubepods-burstable-pod_a_b.slice":  "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod_a_b.slice",
		"kubepods-burstable-pod1.2.3.slice": "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.2.3.slice",
	} {
		got, err := ExpandSlice(slice)
		if err != nil || got != want {
			t.Errorf("ExpandSlice(%q) = %q, %v; want %q", slice, got, err, want)
		}
	}
	for _, bad := range []string{"", "slice", ".slice", "a", "a--b.slice", "a-.slice", "-a.slice", "a/b.slice", "..slice", "a-..slice"} {
		if got, err := ExpandSlice(bad); err == nil {
			t.Errorf("ExpandSlice(%q) = %q, want an error", bad, got)
		}
	}
}

// FuzzParseSystemdCgroupsPath: whatever is accepted becomes a clean
// absolute cgroup path below systemd's root and a plain unit name.
func FuzzParseSystemdCgroupsPath(f *testing.F) {
	for _, s := range []string{"kubepods-besteffort-pod1.slice:cri-containerd:abc", ":runsc:x", "-.slice:p:n", "a--b.slice:p:n", "a.slice:p:../x", "a.slice:p:x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseSystemdCgroupsPath(s)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error %v is not InvalidArgument", err)
			}
			return
		}
		p, u := c.Path(), c.Unit()
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.Contains(p, "/../") || !strings.HasSuffix(p, "/"+u) {
			t.Fatalf("%q: cgroup path %q (unit %q)", s, p, u)
		}
		if len(u) > 255 || strings.ContainsAny(u, "/\\\x00 :") || !strings.HasSuffix(u, ".scope") {
			t.Fatalf("%q: unit %q", s, u)
		}
	})
}
