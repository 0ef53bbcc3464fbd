package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's layout: one layer holding the binary and an empty /tmp (the
// default folder of `regsweep restore`'s temporary file, and what an
// emptyDir is mounted on under a read-only root), nothing else: no shell, no
// libc, no /etc (the user is numeric; S3's TLS roots are compiled into the
// binary, see cmd/regsweep/roots.go).
const (
	binaryPath = "usr/local/bin/regsweep"
	// user is distroless' "nonroot" (65532:65532), which Kubernetes'
	// runAsNonRoot accepts because it is numeric.
	user = "65532:65532"
)

// entries are the layer's entries, in order.
var entries = []struct {
	name string
	mode int64
	dir  bool
}{
	{"tmp/", 0o1777, true},
	{"usr/", 0o755, true},
	{"usr/local/", 0o755, true},
	{"usr/local/bin/", 0o755, true},
	{binaryPath, 0o755, false},
}

// Label keys (OCI image spec, annotations.md).
const (
	labelSource   = "org.opencontainers.image.source"
	labelRevision = "org.opencontainers.image.revision"
	labelVersion  = "org.opencontainers.image.version"
	labelCreated  = "org.opencontainers.image.created"
	labelTitle    = "org.opencontainers.image.title"
	labelDesc     = "org.opencontainers.image.description"
)

// newImage is the OCI image of the regsweep binary at bin, built for p, with
// m's labels (m's empty fields are taken from the binary). The same binary and
// m give the same image digest: every time in it is the commit's time (the
// Unix epoch when unknown), and the layer's files are owned by root.
func newImage(bin string, p v1.Platform, m meta) (v1.Image, error) {
	m, err := inspect(bin, p, m)
	if err != nil {
		return nil, err
	}
	created := time.Unix(0, 0).UTC()
	if m.Time != "" {
		if created, err = time.Parse(time.RFC3339, m.Time); err != nil {
			return nil, fmt.Errorf("%s: vcs.time %q: %w", bin, m.Time, err)
		}
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	tarBytes, err := layerTar(body, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}

	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "regsweep-image: /" + binaryPath + " (go build " + fmt.Sprint(buildFlags) + ", CGO_ENABLED=0), /tmp",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.OS, p.Architecture
	cf.Created = v1.Time{Time: created}
	version := m.Version
	if m.Modified {
		version += "+modified"
	}
	cf.Config = v1.Config{
		User:       user,
		Entrypoint: []string{"/" + binaryPath},
		Cmd:        []string{"--help"},
		Env:        []string{"PATH=/usr/local/bin"},
		WorkingDir: "/",
		Labels: map[string]string{
			labelTitle:    "regsweep",
			labelDesc:     "Offline garbage collection for the storage of a CNCF Distribution registry",
			labelSource:   m.Source,
			labelRevision: m.Revision,
			labelVersion:  version,
			labelCreated:  created.Format(time.RFC3339),
		},
	}
	if m.Revision == "" {
		delete(cf.Config.Labels, labelRevision)
	}
	return mutate.ConfigFile(img, cf)
}

// layerTar is the uncompressed layer: entries, the binary's content body, every
// time at t.
func layerTar(body []byte, t time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: t, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if !e.dir {
			if _, err := tw.Write(body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
