package harness

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pelletier/go-toml/v2"
)

func TestBusyboxArchive(t *testing.T) {
	RequireBinary(t, BusyboxBinary)
	a, err := BusyboxArchive(BusyboxBinary, BusyboxRef)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BusyboxArchive(BusyboxBinary, BusyboxRef)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("archive is not deterministic")
	}

	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(a))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = data
	}
	blob := func(d digest.Digest) []byte {
		t.Helper()
		data, ok := files["blobs/sha256/"+d.Encoded()]
		if !ok {
			t.Fatalf("blob %s missing", d)
		}
		if digest.FromBytes(data) != d {
			t.Fatalf("blob %s has wrong content", d)
		}
		return data
	}
	var index ocispec.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != BusyboxRef {
		t.Fatalf("index: %+v", index)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &m); err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(blob(m.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	layer := blob(m.Layers[0].Digest)
	if cfg.RootFS.DiffIDs[0] != m.Layers[0].Digest {
		t.Errorf("diff id %s != layer digest %s", cfg.RootFS.DiffIDs[0], m.Layers[0].Digest)
	}
	entries := map[string]*tar.Header{}
	lr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = h
	}
	for _, name := range []string{"bin/busybox", "bin/sh", "bin/uname", "bin/dmesg", "bin/sleep", "etc/passwd", "etc/group", "tmp/", "proc/", "sys/", "dev/"} {
		if entries[name] == nil {
			t.Errorf("layer lacks %s", name)
		}
	}
	if h := entries["bin/sh"]; h != nil && (h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox") {
		t.Errorf("bin/sh: %+v", h)
	}
}

func TestWriteRunscConfig(t *testing.T) {
	t.Setenv(RunscDebugEnv, "")
	t.Setenv(RunscEnv, "/opt/gvisor/runsc")
	dir := t.TempDir()
	cfg, err := WriteRunscConfig(dir, map[string]string{"platform": "ptrace", "network": "host"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		BinaryName  string            `toml:"binary_name"`
		Root        string            `toml:"root"`
		RunscConfig map[string]string `toml:"runsc_config"`
	}
	if err := toml.Unmarshal(data, &got); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if got.Root != filepath.Join(dir, "runsc-root") || cfg.Root != got.Root {
		t.Errorf("root = %q (cfg %q)", got.Root, cfg.Root)
	}
	if got.BinaryName != "/opt/gvisor/runsc" {
		t.Errorf("binary_name = %q, want $%s", got.BinaryName, RunscEnv)
	}
	want := map[string]string{"platform": "ptrace", "network": "host"}
	if len(got.RunscConfig) != len(want) || got.RunscConfig["platform"] != "ptrace" || got.RunscConfig["network"] != "host" {
		t.Errorf("runsc_config = %v, want %v", got.RunscConfig, want)
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b\134c`); got != `/a b\c` {
		t.Errorf("got %q", got)
	}
}
