package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Manifest media types regsweep understands.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIArtifact        = "application/vnd.oci.artifact.manifest.v1+json"
	MediaTypeSchema1            = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeSchema1Signed      = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// MaxManifestSize is the largest manifest regsweep reads, as the registry's
// own limit for manifests it accepts.
const MaxManifestSize = 4 << 20

// ErrUnknownMediaType is wrapped by ParseManifest for content it cannot
// prove references nothing more than it found.
var ErrUnknownMediaType = errors.New("unknown manifest media type")

// Refs is what one manifest references.
type Refs struct {
	MediaType string
	// Manifests are the children of an index or manifest list.
	Manifests []Digest
	// Blobs are the config, layers or artifact blobs, with foreign layers
	// (those with urls) left out: they may be absent from the store.
	Blobs []Digest
	// Foreign are the layers with urls, kept when present, fine when absent.
	Foreign []Digest
	// Subject is the manifest this one is a referrer of (signature, SBOM,
	// attestation), or the zero Digest.
	Subject Digest
}

// descriptor is the part of an OCI or Docker descriptor the graph needs.
type descriptor struct {
	MediaType string   `json:"mediaType"`
	Digest    string   `json:"digest"`
	URLs      []string `json:"urls"`
}

// anyManifest holds the fields of every manifest kind, so one decode tells
// both the kind (when mediaType is absent, as OCI allows) and the references.
type anyManifest struct {
	SchemaVersion *int         `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        *descriptor  `json:"config"`
	Layers        []descriptor `json:"layers"`
	Manifests     []descriptor `json:"manifests"`
	Blobs         []descriptor `json:"blobs"`
	Subject       *descriptor  `json:"subject"`
	FSLayers      []struct {
		Sum string `json:"blobSum"`
	} `json:"fsLayers"`
}

// ParseManifest decodes a manifest of any kind distribution stores and
// returns what it references. It fails, rather than guess, on content that
// is not JSON, a media type it does not know, a kind it cannot recognise
// from the structure, or a malformed digest.
func ParseManifest(b []byte) (Refs, error) {
	var m anyManifest
	if !decodeFast(b, &m) {
		m = anyManifest{}
		if err := json.Unmarshal(b, &m); err != nil {
			return Refs{}, fmt.Errorf("manifest is not valid JSON: %w", err)
		}
	}
	mt := m.MediaType
	if mt == "" {
		mt = sniff(&m)
	}
	r := Refs{MediaType: mt}
	var err error
	add := func(list *[]Digest, d descriptor, what string) {
		if err != nil {
			return
		}
		dg, e := ParseDigest(d.Digest)
		if e != nil {
			err = fmt.Errorf("%s: %w", what, e)
			return
		}
		*list = append(*list, dg)
	}
	switch mt {
	case MediaTypeDockerManifest, MediaTypeOCIManifest:
		if m.SchemaVersion == nil || *m.SchemaVersion != 2 {
			return Refs{}, fmt.Errorf("%s without schemaVersion 2", mt)
		}
		if m.Config == nil {
			return Refs{}, fmt.Errorf("%s without config", mt)
		}
		add(&r.Blobs, *m.Config, "config")
		for _, l := range m.Layers {
			if len(l.URLs) > 0 {
				add(&r.Foreign, l, "foreign layer")
			} else {
				add(&r.Blobs, l, "layer")
			}
		}
	case MediaTypeDockerManifestList, MediaTypeOCIIndex:
		if m.SchemaVersion == nil || *m.SchemaVersion != 2 {
			return Refs{}, fmt.Errorf("%s without schemaVersion 2", mt)
		}
		for _, c := range m.Manifests {
			add(&r.Manifests, c, "child manifest")
		}
	case MediaTypeOCIArtifact:
		for _, l := range m.Blobs {
			add(&r.Blobs, l, "artifact blob")
		}
	case MediaTypeSchema1, MediaTypeSchema1Signed:
		for _, l := range m.FSLayers {
			add(&r.Blobs, descriptor{Digest: l.Sum}, "fsLayer")
		}
	case "":
		return Refs{}, fmt.Errorf("%w: no mediaType and no structure of a known kind", ErrUnknownMediaType)
	default:
		return Refs{}, fmt.Errorf("%w %q", ErrUnknownMediaType, truncate(mt, 100))
	}
	if m.Subject != nil && mt != MediaTypeSchema1 && mt != MediaTypeSchema1Signed && mt != MediaTypeDockerManifest && mt != MediaTypeDockerManifestList {
		var s []Digest
		add(&s, *m.Subject, "subject")
		if len(s) == 1 {
			r.Subject = s[0]
		}
	}
	if err != nil {
		return Refs{}, err
	}
	return r, nil
}

// sniff tells the kind of a manifest without mediaType from its structure,
// as the OCI spec allows and the registry does.
func sniff(m *anyManifest) string {
	v := 0
	if m.SchemaVersion != nil {
		v = *m.SchemaVersion
	}
	switch {
	case v == 1 && m.FSLayers != nil:
		return MediaTypeSchema1
	case v == 2 && m.Manifests != nil && m.Config == nil && m.Layers == nil:
		return MediaTypeOCIIndex
	case v == 2 && m.Config != nil && m.Manifests == nil:
		return MediaTypeOCIManifest
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
