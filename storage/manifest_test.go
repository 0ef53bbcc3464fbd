package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestParseManifest(t *testing.T) {
	a := "sha256:" + strings.Repeat("aa", 32)
	b := "sha256:" + strings.Repeat("bb", 32)
	c := "sha256:" + strings.Repeat("cc", 32)
	for _, tc := range []struct {
		name              string
		json              string
		blobs, kids, frgn int
		subject           string
		err               error
	}{
		{"docker image", `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","config":{"digest":"` + a + `"},"layers":[{"digest":"` + b + `"},{"digest":"` + c + `","urls":["https://x"]}]}`, 2, 0, 1, "", nil},
		{"oci image with subject", `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":{"digest":"` + a + `"},"layers":[],"subject":{"digest":"` + c + `"}}`, 1, 0, 0, c, nil},
		{"oci image without mediaType", `{"schemaVersion":2,"config":{"digest":"` + a + `"},"layers":[{"digest":"` + b + `"}]}`, 2, 0, 0, "", nil},
		{"oci index without mediaType", `{"schemaVersion":2,"manifests":[{"digest":"` + a + `"},{"digest":"` + b + `"}]}`, 0, 2, 0, "", nil},
		{"manifest list", `{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifestList + `","manifests":[{"digest":"` + a + `"}]}`, 0, 1, 0, "", nil},
		{"artifact", `{"mediaType":"` + MediaTypeOCIArtifact + `","blobs":[{"digest":"` + a + `"}],"subject":{"digest":"` + b + `"}}`, 1, 0, 0, b, nil},
		{"schema1", `{"schemaVersion":1,"fsLayers":[{"blobSum":"` + a + `"},{"blobSum":"` + b + `"}]}`, 2, 0, 0, "", nil},
		{"unknown media type", `{"schemaVersion":2,"mediaType":"application/x-foo","config":{"digest":"` + a + `"}}`, 0, 0, 0, "", ErrUnknownMediaType},
		{"unrecognisable", `{"hello":"world"}`, 0, 0, 0, "", ErrUnknownMediaType},
	} {
		r, err := ParseManifest([]byte(tc.json))
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: error %v, want %v", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(r.Blobs) != tc.blobs || len(r.Manifests) != tc.kids || len(r.Foreign) != tc.frgn || r.Subject.String() != tc.subject {
			t.Errorf("%s: got %+v", tc.name, r)
		}
	}
	for _, bad := range []string{``, `not json`, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":{"digest":"sha256:short"}}`, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `"}`} {
		if _, err := ParseManifest([]byte(bad)); err == nil {
			t.Errorf("ParseManifest(%q): no error", bad)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"sha256:` + strings.Repeat("aa", 32) + `"},"layers":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseManifest(b)
		if err != nil {
			return
		}
		for _, d := range append(append(r.Blobs, r.Manifests...), r.Foreign...) {
			if d.IsZero() {
				t.Fatalf("zero digest in %+v", r)
			}
		}
	})
}
