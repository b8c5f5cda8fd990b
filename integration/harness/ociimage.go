package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// LayerEntry is one entry of an image layer built by ImageArchive: a
// directory (Name ends in "/"), a symlink (Link set) or a regular file.
type LayerEntry struct {
	Name string
	Mode int64
	Data []byte
	Link string
}

// ImageSpec describes a single-layer image for ImageArchive.
type ImageSpec struct {
	// Ref is the image name, e.g. "localhost/runsc-shim/pause:test".
	Ref string
	// Entries of the only layer, written in name order.
	Entries []LayerEntry
	// Config is the image's runtime configuration (Entrypoint, Cmd, Env...).
	Config ocispec.ImageConfig
	// CreatedBy goes into the image history.
	CreatedBy string
}

// ImageArchive builds a deterministic OCI image layout tar holding one
// single-layer image, for client.Import. It is the generic form of
// BusyboxArchive.
func ImageArchive(is ImageSpec) ([]byte, error) {
	layer, err := layerTar(is.Entries)
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
		Config:   is.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDesc.Digest}},
		History:  []ocispec.History{{Created: &created, CreatedBy: is.CreatedBy}},
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
	manifestBlob, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		return nil, err
	}
	tag := is.Ref
	if i := strings.LastIndex(is.Ref, ":"); i > strings.LastIndex(is.Ref, "/") {
		tag = is.Ref[i+1:]
	}
	indexBlob, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    digest.FromBytes(manifestBlob),
			Size:      int64(len(manifestBlob)),
			Platform:  &ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
			Annotations: map[string]string{
				images.AnnotationImageName: is.Ref,
				ocispec.AnnotationRefName:  tag,
			},
		}},
	})
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
	for _, f := range []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layoutBlob},
		{"blobs/sha256/" + layerDesc.Digest.Encoded(), layer},
		{"blobs/sha256/" + configDesc.Digest.Encoded(), configBlob},
		{"blobs/sha256/" + digest.FromBytes(manifestBlob).Encoded(), manifestBlob},
		{ocispec.ImageIndexFile, indexBlob},
	} {
		if err := writeFile(tw, f.name, 0o644, f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func layerTar(entries []LayerEntry) ([]byte, error) {
	sorted := append([]LayerEntry{}, entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range sorted {
		var err error
		switch {
		case strings.HasSuffix(e.Name, "/"):
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: e.Name, Mode: e.Mode, ModTime: epoch})
		case e.Link != "":
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: e.Name, Linkname: e.Link, Mode: 0o777, ModTime: epoch})
		default:
			err = writeFile(tw, e.Name, e.Mode, e.Data)
		}
		if err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ImportArchive imports an image layout archive into the namespace of ctx
// (the client's default if ctx has none), unpacks ref for
// DefaultSnapshotter and sets labels on the image record.
func ImportArchive(ctx context.Context, c *client.Client, archive []byte, ref string, labels map[string]string, logf Logf) (client.Image, error) {
	imgs, err := c.Import(ctx, bytes.NewReader(archive))
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", ref, err)
	}
	var found *images.Image
	for i := range imgs {
		if imgs[i].Name == ref {
			found = &imgs[i]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("import %s: not among imported images %v", ref, imgs)
	}
	if len(labels) > 0 {
		rec := *found
		var paths []string
		rec.Labels = map[string]string{}
		for k, v := range found.Labels {
			rec.Labels[k] = v
		}
		for k, v := range labels {
			rec.Labels[k] = v
			paths = append(paths, "labels."+k)
		}
		updated, err := c.ImageService().Update(ctx, rec, paths...)
		if err != nil {
			return nil, fmt.Errorf("label image %s: %w", ref, err)
		}
		found = &updated
	}
	img := client.NewImage(c, *found)
	if err := img.Unpack(ctx, DefaultSnapshotter); err != nil {
		return nil, fmt.Errorf("unpack %s for %s: %w", ref, DefaultSnapshotter, err)
	}
	logf.printf("imported and unpacked %s (%s)", ref, found.Target.Digest)
	return img, nil
}
