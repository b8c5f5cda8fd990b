package shim

import (
	"strings"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
)

func TestStartAction(t *testing.T) {
	// containerd 1.6 style argv.
	f, ok := startAction([]string{"-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock",
		"-publish-binary", "/usr/bin/containerd", "-id", "abc", "-debug", "start"})
	if !ok || f.namespace != "k8s.io" || f.id != "abc" || f.address != "/run/containerd/containerd.sock" || !f.debug {
		t.Fatalf("got %+v %v", f, ok)
	}
	for _, args := range [][]string{
		{"-namespace", "n", "-id", "x", "delete"},
		{"-namespace", "n", "-id", "x"},
		{"-info"},
		{"-v"},
	} {
		if _, ok := startAction(args); ok {
			t.Fatalf("%q is not start", args)
		}
	}
}

func TestParseBootstrap(t *testing.T) {
	params := &bootapi.BootstrapParams{InstanceID: "abc", Namespace: "k8s.io", ContainerdGrpcAddress: "/run/c.sock"}
	b, err := proto.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := parseBootstrap(b, "abc", "k8s.io")
	if !ok || p.ContainerdGrpcAddress != "/run/c.sock" {
		t.Fatalf("2.3+ bootstrap not detected: %v %v", p, ok)
	}
	if _, ok := parseBootstrap(b, "other", "k8s.io"); ok {
		t.Fatal("params for another id accepted")
	}
	if _, ok := parseBootstrap(nil, "abc", "k8s.io"); ok {
		t.Fatal("empty stdin (containerd 1.6 without options) taken as bootstrap")
	}
	// containerd 1.6 writes the runtime options to stdin: they must not be
	// mistaken for bootstrap params.
	opts, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{TypeUrl: "io.containerd.runsc.v1.options", ConfigPath: "/etc/containerd/runsc.toml"})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := proto.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := parseBootstrap(ob, "abc", "k8s.io"); ok {
		t.Fatal("runtime options taken as bootstrap params")
	}
}

func TestVersionAction(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"-v"}, true},
		{[]string{"--version"}, true},
		{[]string{"-namespace", "k8s.io", "-id", "x", "start"}, false},
		{[]string{"-namespace", "k8s.io", "-id", "x", "delete"}, false},
		{[]string{"-bogus"}, false},
	} {
		if got := versionAction(tc.args); got != tc.want {
			t.Errorf("versionAction(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
	var b strings.Builder
	printVersion(&b, "no-such-runsc-binary")
	out := b.String()
	for _, want := range []string{shimBinaryName + ":\n", "  Version:    " + Version + "\n", "  Revision:   ", "  Go version: go", "  runsc:      not found (no-such-runsc-binary is not on PATH"} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}
