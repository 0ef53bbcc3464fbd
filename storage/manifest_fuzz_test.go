package storage_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/storage"
)

// distributionRefs reads a manifest as distribution v3's manifest store does
// when it serves one (registry/storage/manifeststore.go, Get), and returns
// what it references, or ok=false when the registry would not serve it.
func distributionRefs(b []byte) (refs []v1.Descriptor, ok bool) {
	var versioned struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
	}
	if json.Unmarshal(b, &versioned) != nil || versioned.SchemaVersion != 2 {
		return nil, false
	}
	var m distribution.Manifest
	var err error
	switch versioned.MediaType {
	case schema2.MediaTypeManifest:
		x := &schema2.DeserializedManifest{}
		err, m = x.UnmarshalJSON(b), x
	case v1.MediaTypeImageManifest:
		x := &ocischema.DeserializedManifest{}
		err, m = x.UnmarshalJSON(b), x
	case manifestlist.MediaTypeManifestList:
		x := &manifestlist.DeserializedManifestList{}
		err, m = x.UnmarshalJSON(b), x
	case v1.MediaTypeImageIndex:
		x := &ocischema.DeserializedImageIndex{}
		err, m = x.UnmarshalJSON(b), x
	case "":
		// An index if it has manifests, else an image manifest.
		x := &ocischema.DeserializedImageIndex{}
		if x.UnmarshalJSON(b) == nil && x.Manifests != nil {
			m = x
			break
		}
		y := &ocischema.DeserializedManifest{}
		err, m = y.UnmarshalJSON(b), y
	default:
		return nil, false
	}
	if err != nil {
		return nil, false
	}
	return m.References(), true
}

// FuzzParseManifestCoversDistribution checks ParseManifest against the
// registry's own reading: whenever both accept a manifest, every blob or
// child the registry would serve through it is among what ParseManifest
// returns, so marking from ParseManifest never lets the sweep delete what a
// kept manifest needs. (Where ParseManifest refuses, the run sweeps no blob.)
func FuzzParseManifestCoversDistribution(f *testing.F) {
	hx := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"` + hx("1") + `"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":1,"digest":"` + hx("2") + `"},{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":1,"digest":"` + hx("3") + `","urls":["https://example.com/l"]}]}`))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":1,"digest":"` + hx("1") + `"},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":1,"digest":"` + hx("2") + `"}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"` + hx("4") + `"}}`))
	f.Add([]byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":1,"digest":"` + hx("1") + `"},"layers":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":1,"digest":"` + hx("5") + `","platform":{"architecture":"amd64","os":"linux"}}]}`))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"` + hx("5") + `"}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"` + hx("5") + `"}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[],"config":{"digest":"` + hx("1") + `"},"layers":[{"digest":"` + hx("2") + `"}]}`))
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"digest":"` + hx("2") + `"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ours, err := storage.ParseManifest(b)
		if err != nil {
			return
		}
		theirs, ok := distributionRefs(b)
		if !ok {
			return
		}
		have := map[string]bool{}
		for _, d := range append(append(append([]storage.Digest{}, ours.Blobs...), ours.Manifests...), ours.Foreign...) {
			have[d.String()] = true
		}
		for _, ref := range theirs {
			if ref.Digest.Validate() != nil {
				continue // the registry cannot serve it either
			}
			if !have[ref.Digest.String()] {
				t.Fatalf("the registry reads %s (%s) as referencing %s, ParseManifest does not (%+v)", b, ours.MediaType, ref.Digest, ours)
			}
		}
	})
}
