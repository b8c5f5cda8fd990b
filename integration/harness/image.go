package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxRef is the name the busybox image is imported under.
const BusyboxRef = "docker.io/library/busybox:latest"

// BusyboxBinary is the static busybox the image is built from (Debian's
// busybox-static).
const BusyboxBinary = "/bin/busybox"

// DefaultSnapshotter is the snapshotter the image is unpacked for.
const DefaultSnapshotter = "overlayfs"

// fallbackApplets is used when `busybox --list` does not work.
var fallbackApplets = []string{
	"[", "[[", "cat", "date", "dd", "dmesg", "echo", "env", "false", "grep", "head",
	"hostname", "httpd", "id", "kill", "ls", "mkdir", "mount", "printf", "ps", "pwd",
	"rm", "seq", "sh", "sleep", "stat", "tail", "tee", "test", "touch", "true", "tty",
	"umount", "uname", "wc", "wget", "yes",
}

var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// BusyboxArchive builds an OCI image layout tar holding one image, ref,
// whose single layer has the static busybox at /bin/busybox with a symlink
// per applet in /bin, /etc/passwd, /etc/group and the usual empty
// directories. The archive is deterministic for a given busybox binary.
func BusyboxArchive(busybox, ref string) ([]byte, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	applets := fallbackApplets
	if out, err := exec.Command(busybox, "--list").Output(); err == nil {
		applets = strings.Fields(string(out))
	}
	layer, err := busyboxLayer(bin, applets)
	if err != nil {
		return nil, err
	}
	layerDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    digest.FromBytes(layer),
		Size:      int64(len(layer)),
	}
	created := epoch
	config := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"sh"},
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDesc.Digest}},
		History: []ocispec.History{{
			Created:   &created,
			CreatedBy: "integration/harness: static busybox from " + busybox,
		}},
	}
	configBlob, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	configDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageConfig,
		Digest:    digest.FromBytes(configBlob),
		Size:      int64(len(configBlob)),
	}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	}
	manifestBlob, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	tag := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		tag = ref[i+1:]
	}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    digest.FromBytes(manifestBlob),
			Size:      int64(len(manifestBlob)),
			Platform:  &ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
			Annotations: map[string]string{
				images.AnnotationImageName: ref,
				ocispec.AnnotationRefName:  tag,
			},
		}},
	}
	indexBlob, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	layoutBlob, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	files := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layoutBlob},
		{"blobs/sha256/" + layerDesc.Digest.Encoded(), layer},
		{"blobs/sha256/" + configDesc.Digest.Encoded(), configBlob},
		{"blobs/sha256/" + digest.FromBytes(manifestBlob).Encoded(), manifestBlob},
		{ocispec.ImageIndexFile, indexBlob},
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, 0o644, f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch,
	}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func busyboxLayer(bin []byte, applets []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []struct {
		name string
		mode int64
	}{
		{"bin/", 0o755}, {"dev/", 0o755}, {"etc/", 0o755}, {"proc/", 0o555},
		{"root/", 0o700}, {"run/", 0o755}, {"sbin/", 0o755}, {"sys/", 0o555},
		{"tmp/", 0o1777}, {"usr/", 0o755}, {"usr/bin/", 0o755}, {"usr/sbin/", 0o755},
		{"var/", 0o755}, {"var/tmp/", 0o1777},
	}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := writeFile(tw, "bin/busybox", 0o755, bin); err != nil {
		return nil, err
	}
	seen := map[string]bool{"busybox": true}
	sorted := append([]string{}, applets...)
	sort.Strings(sorted)
	for _, a := range sorted {
		if a == "" || strings.Contains(a, "/") || seen[a] {
			continue
		}
		seen[a] = true
		if err := tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: epoch,
		}); err != nil {
			return nil, err
		}
	}
	etc := []struct {
		name, data string
	}{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n"},
		{"etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
	}
	for _, f := range etc {
		if err := writeFile(tw, f.name, 0o644, []byte(f.data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ImportBusybox builds the busybox image from BusyboxBinary, imports it as
// BusyboxRef and unpacks it for DefaultSnapshotter.
func ImportBusybox(ctx context.Context, c *client.Client, logf Logf) (client.Image, error) {
	archive, err := BusyboxArchive(BusyboxBinary, BusyboxRef)
	if err != nil {
		return nil, err
	}
	imgs, err := c.Import(ctx, bytes.NewReader(archive))
	if err != nil {
		return nil, fmt.Errorf("import busybox image: %w", err)
	}
	var found *images.Image
	for i := range imgs {
		if imgs[i].Name == BusyboxRef {
			found = &imgs[i]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("import busybox image: %s not among imported images %v", BusyboxRef, imgs)
	}
	img := client.NewImage(c, *found)
	if err := img.Unpack(ctx, DefaultSnapshotter); err != nil {
		return nil, fmt.Errorf("unpack %s for %s: %w", BusyboxRef, DefaultSnapshotter, err)
	}
	logf.printf("imported and unpacked %s (%s)", BusyboxRef, found.Target.Digest)
	return img, nil
}
