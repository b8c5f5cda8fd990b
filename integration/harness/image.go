package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
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
	return ImageArchive(ImageSpec{
		Ref:     ref,
		Entries: busyboxEntries(bin, applets),
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"sh"},
		},
		CreatedBy: "integration/harness: static busybox from " + busybox,
	})
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

// busyboxEntries is the busybox layer: directories, the binary, a symlink
// per applet and a minimal /etc.
func busyboxEntries(bin []byte, applets []string) []LayerEntry {
	var entries []LayerEntry
	for _, d := range []struct {
		name string
		mode int64
	}{
		{"bin/", 0o755}, {"dev/", 0o755}, {"etc/", 0o755}, {"proc/", 0o555},
		{"root/", 0o700}, {"run/", 0o755}, {"sbin/", 0o755}, {"sys/", 0o555},
		{"tmp/", 0o1777}, {"usr/", 0o755}, {"usr/bin/", 0o755}, {"usr/sbin/", 0o755},
		{"var/", 0o755}, {"var/tmp/", 0o1777},
	} {
		entries = append(entries, LayerEntry{Name: d.name, Mode: d.mode})
	}
	entries = append(entries, LayerEntry{Name: "bin/busybox", Mode: 0o755, Data: bin})
	seen := map[string]bool{"busybox": true}
	for _, a := range applets {
		if a == "" || strings.Contains(a, "/") || seen[a] {
			continue
		}
		seen[a] = true
		entries = append(entries, LayerEntry{Name: "bin/" + a, Mode: 0o777, Link: "busybox"})
	}
	for _, f := range []struct{ name, data string }{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"etc/group", "root:x:0:\nnogroup:x:65534:\n"},
		{"etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"},
	} {
		entries = append(entries, LayerEntry{Name: f.name, Mode: 0o644, Data: []byte(f.data)})
	}
	return entries
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
