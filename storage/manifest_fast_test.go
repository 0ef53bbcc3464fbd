package storage

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sampleManifests returns the manifests of the shipped sample registry
// (written by distribution through real clients): every blob that parses
// as JSON with a schemaVersion.
func sampleManifests(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	root := filepath.Join("..", "testdata", "sample", BlobsDir())
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() != BlobDataName {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var v struct{ SchemaVersion *int }
		if json.Unmarshal(b, &v) == nil && v.SchemaVersion != nil {
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fastCases are manifests with the traps decodeFast must decline or read
// as json.Unmarshal does; want says whether the fast path takes it.
var fastCases = []struct {
	doc  string
	want bool
}{
	{`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:1"},"layers":[{"digest":"sha256:2","urls":["u"]},{"digest":"sha256:3","annotations":{"a":"}\"]{","b":[1,2e5,{"c":null}]}}]}`, true},
	{` { "SCHEMAVERSION" : 2 , "Layers" : [ ] , "Manifests" : [ ] , "URLS": 1, "fslayers": [{"BlobSum": "x"}] } `, true},
	{`{"layers":[],"blobs":[{}],"subject":{"urls":[]}}`, true},
	{`{"schemaVersion":-0}`, true},
	{`{}`, true},
	{`{"layers":[{"digest":"a"}],"layers":[{"urls":["u"]}]}`, false}, // merged by json.Unmarshal
	{`{"config":{"digest":"a"},"CONFIG":{"urls":["u"]}}`, false},
	{`{"config":{"digest":"a","Digest":"b"}}`, false},
	{`{"config":null}`, false},
	{`{"layers":[null]}`, false},
	{`{"mediaType":null}`, false},
	{`{"schemaVersion":2.0}`, false},
	{`{"schemaVersion":"2"}`, false},
	{`{"schemaVersion":1e0}`, false},
	{`{"schemaVersion":99999999999999999999}`, false},
	{`{"mediaType":"a\u0062"}`, false},
	{`{"l\u0061yers":[{"digest":"a"}]}`, false},
	{`{"ſubject":{"digest":"a"}}`, false}, // U+017F folds to s for json.Unmarshal
	{`{"mediaType":"é"}`, false},
	{"{\"mediaType\":\"\xff\"}", false}, // invalid UTF-8: json.Unmarshal makes it U+FFFD
	{`[]`, false},
	{`null`, false},
	{`{"layers":{}}`, false},
	{`{"config":[]}`, false},
	{`{"config":{"urls":"u"}}`, false},
	// Not JSON: declined, for json.Unmarshal to say why.
	{`{"a":01}`, false},
	{"{\"a\":\"\x01\"}", false},
	{`{"a":[1,]}`, false},
	{`{"a":tru}`, false},
	{`{"a":"\q"}`, false},
	{`{"a":"\u12"}`, false},
	{`{"a":-}`, false},
	{`{"a":1.}`, false},
	{`{"a":1e}`, false},
	{`{} x`, false},
	{`{"a":1}}`, false},
	{`{"mediaType":"x"`, false},
	{`{"a" 1}`, false},
	{`{"a":{"b":1,}}`, false},
	{`{"a":[` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `]}`, false}, // deeper than maxFastDepth
	{``, false},
}

// TestDecodeFastTakesRealManifests checks that the fast path reads every
// manifest of the sample registry (so that it is what a walk uses) exactly
// as json.Unmarshal does, and takes or declines each trap as listed.
func TestDecodeFastTakesRealManifests(t *testing.T) {
	ms := sampleManifests(t)
	if len(ms) < 5 {
		t.Fatalf("%d manifests in the sample registry, want some", len(ms))
	}
	for _, b := range ms {
		checkDecodeFast(t, b, true)
	}
	for _, c := range fastCases {
		checkDecodeFast(t, []byte(c.doc), c.want)
	}
}

func checkDecodeFast(t *testing.T, b []byte, want bool) {
	t.Helper()
	var fast, ref anyManifest
	got := decodeFast(b, &fast)
	if got != want {
		t.Errorf("decodeFast(%s) = %v, want %v", b, got, want)
	}
	if !got {
		return
	}
	if !json.Valid(b) {
		t.Errorf("decodeFast took %s, which json.Valid refuses", b)
	} else if err := json.Unmarshal(b, &ref); err != nil {
		t.Errorf("decodeFast took %s, which json.Unmarshal refuses: %v", b, err)
	} else if !reflect.DeepEqual(fast, ref) {
		t.Errorf("decodeFast(%s) = %+v, json.Unmarshal %+v", b, fast, ref)
	}
}

// FuzzDecodeFast holds decodeFast to json.Valid and json.Unmarshal:
// whatever it takes is valid JSON, read into the same anyManifest, nil and
// empty slices told apart (sniff tells kinds by them).
func FuzzDecodeFast(f *testing.F) {
	for _, b := range sampleManifests(f) {
		f.Add(b)
	}
	for _, c := range fastCases {
		f.Add([]byte(c.doc))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, ref anyManifest
		if !decodeFast(b, &fast) {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("decodeFast took %q, which json.Valid refuses", b)
		}
		if err := json.Unmarshal(b, &ref); err != nil {
			t.Fatalf("decodeFast took %q, which json.Unmarshal refuses: %v", b, err)
		}
		if !reflect.DeepEqual(fast, ref) {
			t.Fatalf("decodeFast(%q) = %+v, json.Unmarshal %+v", b, fast, ref)
		}
	})
}

// BenchmarkParseManifest parses the sample registry's manifests.
func BenchmarkParseManifest(b *testing.B) {
	ms := sampleManifests(b)
	size := 0
	for _, m := range ms {
		size += len(m)
	}
	b.SetBytes(int64(size))
	for b.Loop() {
		for _, m := range ms {
			if _, err := ParseManifest(m); err != nil && !strings.Contains(err.Error(), "media type") {
				b.Fatal(err)
			}
		}
	}
}
