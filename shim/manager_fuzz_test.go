package shim

import (
	"slices"
	"strings"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
)

// FuzzParseBootstrap: whatever containerd (any version) or anything else
// writes to the shim's stdin, parseBootstrap never panics, and it only
// reports containerd 2.3+'s protocol for params naming the flags' id and
// namespace.
func FuzzParseBootstrap(f *testing.F) {
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	socketDir := "/run/containerd/s"
	// containerd 2.3+.
	f.Add(marshal(&bootapi.BootstrapParams{InstanceID: "abc", Namespace: "k8s.io", ContainerdGrpcAddress: "/run/c.sock"}), "abc", "k8s.io")
	f.Add(marshal(&bootapi.BootstrapParams{
		InstanceID: "7c1e0a7d3b9f4f2e8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f", Namespace: "k8s.io",
		LogLevel: bootapi.LogLevel_LOG_LEVEL_DEBUG, ContainerdVersion: "v2.4.2",
		ContainerdTtrpcAddress: "/run/containerd/containerd.sock.ttrpc", ContainerdGrpcAddress: "/run/containerd/containerd.sock",
		ContainerdBinary: "/usr/bin/containerd", SocketDir: &socketDir,
	}), "7c1e0a7d3b9f4f2e8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f", "k8s.io")
	f.Add(marshal(&bootapi.BootstrapParams{InstanceID: "abc", Namespace: "k8s.io"}), "other", "k8s.io")
	// containerd up to 2.2: the runtime options (an Any), or nothing.
	for _, m := range []proto.Message{
		&runtimeoptions.Options{TypeUrl: "io.containerd.runsc.v1.options", ConfigPath: "/etc/containerd/runsc.toml"},
		&runtimeoptions.Options{},
		&runcoptions.Options{BinaryName: "/usr/bin/runc", SystemdCgroup: true},
	} {
		a, err := typeurl.MarshalAnyToProto(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(marshal(a), "abc", "k8s.io")
	}
	f.Add([]byte{}, "abc", "k8s.io")
	f.Add([]byte("not a protobuf\n"), "abc", "default")
	f.Add([]byte{0x0a, 0x03, 'a', 'b', 'c', 0x12, 0x06, 'k', '8', 's', '.', 'i', 'o', 0xff}, "abc", "k8s.io")

	f.Fuzz(func(t *testing.T, input []byte, id, ns string) {
		p, ok := parseBootstrap(input, id, ns)
		if !ok {
			if p != nil {
				t.Fatalf("params %v returned without ok", p)
			}
			return
		}
		if p == nil || len(input) == 0 {
			t.Fatalf("ok with params %v for %d bytes", p, len(input))
		}
		if p.GetInstanceID() != id || p.GetNamespace() != ns {
			t.Fatalf("params for %q/%q accepted for -id %q -namespace %q", p.GetNamespace(), p.GetInstanceID(), id, ns)
		}
		// The same params, re-encoded, are still recognised.
		b, err := proto.Marshal(p)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		if len(b) > 0 {
			p2, ok := parseBootstrap(b, id, ns)
			if !ok || !proto.Equal(p, p2) {
				t.Fatalf("re-encoded params %v not recognised: %v %v", p, p2, ok)
			}
		}
	})
}

// FuzzStartAction: any argv gives a decision, never a panic; `start` is only
// recognised when it is the first argument after the flags.
func FuzzStartAction(f *testing.F) {
	join := func(a ...string) string { return strings.Join(a, "\x00") }
	f.Add(join("-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock",
		"-publish-binary", "/usr/bin/containerd", "-id", "abc", "-debug", "start"))
	f.Add(join("-namespace", "k8s.io", "-address", "/run/containerd/containerd.sock", "-id", "abc", "start"))
	f.Add(join("-namespace", "n", "-id", "x", "delete"))
	f.Add(join("-namespace", "n", "-id", "x"))
	f.Add(join("-info"))
	f.Add(join("-v"))
	f.Add(join("--namespace=k8s.io", "--id=abc", "-bundle", "/b", "start", "extra"))
	f.Add(join("-debug=false", "-id", "-namespace", "start"))
	f.Add(join("-unknown-flag", "start"))
	f.Add(join("-h"))
	f.Add(join("--", "start"))
	f.Add(join("-id"))
	f.Add("")

	f.Fuzz(func(t *testing.T, argv string) {
		var args []string
		if argv != "" {
			args = strings.Split(argv, "\x00")
		}
		orig := slices.Clone(args)
		sf, ok := startAction(args)
		if !slices.Equal(args, orig) {
			t.Fatalf("startAction modified its argv: %q -> %q", orig, args)
		}
		if sf2, ok2 := startAction(args); ok2 != ok || sf2 != sf {
			t.Fatalf("not deterministic: %+v %v then %+v %v", sf, ok, sf2, ok2)
		}
		if !ok {
			return
		}
		i := slices.Index(args, "start")
		if i < 0 {
			t.Fatalf("start recognised in %q", args)
		}
		// Every value parsed came from the argv.
		for _, v := range []string{sf.namespace, sf.id, sf.address, sf.bundle} {
			if v != "" && !strings.Contains(argv, v) {
				t.Fatalf("value %q not in argv %q", v, args)
			}
		}
	})
}

// FuzzStartActionContainerdArgv: the argv every containerd version builds
// for `start` (pkg/shim's flags, then the action) is always recognised and
// gives back exactly the values containerd passed, whatever they hold.
func FuzzStartActionContainerdArgv(f *testing.F) {
	f.Add("k8s.io", "abc", "/run/containerd/containerd.sock", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc", true, true)
	f.Add("default", "7c1e0a7d3b9f4f2e8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f", "", "", false, false)
	f.Add("-id", "start", "-debug", "--", false, true)
	f.Add("", "", "unix:///run/c.sock", "=x", true, false)

	f.Fuzz(func(t *testing.T, ns, id, address, bundle string, debug, publish bool) {
		args := []string{"-namespace", ns, "-address", address}
		if publish {
			args = append(args, "-publish-binary", "/usr/bin/containerd")
		}
		args = append(args, "-id", id)
		if bundle != "" {
			args = append(args, "-bundle", bundle)
		}
		if debug {
			args = append(args, "-debug")
		}
		args = append(args, "start")
		sf, ok := startAction(args)
		want := startFlags{namespace: ns, id: id, address: address, bundle: bundle, debug: debug}
		if !ok || sf != want {
			t.Fatalf("startAction(%q) = %+v %v, want %+v", args, sf, ok, want)
		}
		// The same argv for another action is not start.
		args[len(args)-1] = "delete"
		if _, ok := startAction(args); ok {
			t.Fatalf("%q taken as start", args)
		}
	})
}
