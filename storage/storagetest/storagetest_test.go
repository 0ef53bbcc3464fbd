package storagetest_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/storage/storagetest"
)

const (
	docker     = "application/vnd.docker.distribution.manifest.v2+json"
	dockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

func v2(root string, elem ...string) string {
	return filepath.Join(append([]string{root, "docker", "registry", "v2"}, elem...)...)
}

func blobFile(root string, d digest.Digest) string {
	return v2(root, "blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}

// wantStored fails unless img's manifest, blobs and links are all on disk.
func wantStored(t *testing.T, s storagetest.State, img storagetest.Image) {
	t.Helper()
	if !s.Blobs[img.Digest] || !s.Revisions[img.Repo+"@"+img.Digest.String()] {
		t.Errorf("manifest %s@%s: blob %v, revision link %v", img.Repo, img.Digest, s.Blobs[img.Digest], s.Revisions[img.Repo+"@"+img.Digest.String()])
	}
	for _, b := range img.Blobs {
		if !s.Blobs[b] || !s.LayerLinks[img.Repo+"@"+b.String()] {
			t.Errorf("blob %s of %s@%s: data %v, layer link %v", b, img.Repo, img.Digest, s.Blobs[b], s.LayerLinks[img.Repo+"@"+b.String()])
		}
	}
}

func TestPushEveryKind(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	r := storagetest.New(t, root)

	s2 := r.PushImage("lib/app", storagetest.ImageOpts{Layers: 2})
	oci := r.PushImage("lib/app", storagetest.ImageOpts{OCI: true, Layers: 3, LayerSize: 100})
	other := r.PushImage("other", storagetest.ImageOpts{OCI: true, SharedLayers: s2.Blobs[1:], Layers: 1})
	foreignS2 := r.PushImage("lib/app", storagetest.ImageOpts{ForeignLayer: true})
	foreignOCI := r.PushImage("lib/app", storagetest.ImageOpts{OCI: true, ForeignLayer: true})
	list := r.PushIndex("lib/app", false, s2, foreignS2)
	index := r.PushIndex("lib/app", true, oci, foreignOCI)
	sig := r.PushReferrer("lib/app", s2, "")
	sbom := r.PushReferrer("lib/app", sig, storagetest.ArtifactSBOM)
	indexSig := r.PushReferrer("lib/app", index, storagetest.ArtifactSignature)

	for _, c := range []struct {
		img       storagetest.Image
		mediaType string
		blobs     int
	}{
		{s2, docker, 3}, {oci, v1.MediaTypeImageManifest, 4}, {other, v1.MediaTypeImageManifest, 4},
		{foreignS2, docker, 2}, {foreignOCI, v1.MediaTypeImageManifest, 2},
		{list, dockerList, 0}, {index, v1.MediaTypeImageIndex, 0},
		{sig, v1.MediaTypeImageManifest, 2}, {sbom, v1.MediaTypeImageManifest, 2}, {indexSig, v1.MediaTypeImageManifest, 2},
	} {
		if c.img.MediaType != c.mediaType || len(c.img.Blobs) != c.blobs {
			t.Errorf("%s: media type %s with %d blobs, want %s with %d", c.img.Digest, c.img.MediaType, len(c.img.Blobs), c.mediaType, c.blobs)
		}
	}
	if len(foreignS2.Foreign) != 1 || len(foreignOCI.Foreign) != 1 {
		t.Errorf("foreign layers: %v, %v", foreignS2.Foreign, foreignOCI.Foreign)
	}
	if !cmp.Equal(index.Children, []digest.Digest{oci.Digest, foreignOCI.Digest}) || sbom.Subject != sig.Digest {
		t.Errorf("index children %v, sbom subject %s", index.Children, sbom.Subject)
	}

	tags := map[string]storagetest.Image{
		"s2": s2, "oci": oci, "fs2": foreignS2, "foci": foreignOCI, "list": list, "index": index, "sig": sig, "sbom": sbom, "isig": indexSig,
	}
	for tag, img := range tags {
		r.Tag("lib/app", tag, img)
	}
	r.Tag("other", "latest", other)

	s := storagetest.Snapshot(t, root)
	for tag, img := range tags {
		wantStored(t, s, img)
		if err := r.Serves(ctx, "lib/app", tag); err != nil {
			t.Errorf("Serves(lib/app:%s): %v", tag, err)
		}
		if s.Tags["lib/app:"+tag] != img.Digest || !s.TagIndex["lib/app:"+tag+"@"+img.Digest.String()] {
			t.Errorf("tag lib/app:%s: current %s, in index %v; want %s", tag, s.Tags["lib/app:"+tag], s.TagIndex["lib/app:"+tag+"@"+img.Digest.String()], img.Digest)
		}
	}
	wantStored(t, s, other)
	if err := r.Serves(ctx, "other", "latest"); err != nil {
		t.Error(err)
	}
	for _, d := range append(foreignS2.Foreign, foreignOCI.Foreign...) {
		if s.Blobs[d] {
			t.Errorf("foreign layer %s was stored", d)
		}
	}

	// The referrer's payload keeps what distribution's own struct drops.
	p, err := os.ReadFile(blobFile(root, sbom.Digest))
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(p, &m); err != nil {
		t.Fatal(err)
	}
	if m.Subject == nil || m.Subject.Digest != sig.Digest || m.ArtifactType != storagetest.ArtifactSBOM || m.Config.MediaType != v1.MediaTypeEmptyJSON {
		t.Errorf("referrer payload: subject %v, artifactType %q, config %v", m.Subject, m.ArtifactType, m.Config)
	}
}

func TestServesNamesWhatIsMissing(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	r := storagetest.New(t, root)
	img := r.PushImage("app", storagetest.ImageOpts{Layers: 2})
	r.Tag("app", "v1", img)
	child := r.PushImage("app", storagetest.ImageOpts{OCI: true})
	r.Tag("app", "multi", r.PushIndex("app", true, child))
	if err := r.Serves(ctx, "app", "v1"); err != nil {
		t.Fatal(err)
	}

	if err := r.Serves(ctx, "app", "nope"); err == nil || !strings.Contains(err.Error(), "app:nope") {
		t.Errorf("Serves(app:nope) = %v, want an unknown tag", err)
	}

	layer := img.Blobs[2]
	if err := os.Remove(blobFile(root, layer)); err != nil {
		t.Fatal(err)
	}
	err := r.Serves(ctx, "app", "v1")
	if err == nil || !strings.Contains(err.Error(), layer.String()) {
		t.Errorf("Serves after deleting layer %s = %v, want an error naming it", layer, err)
	}

	config := img.Blobs[0]
	if err := os.Remove(v2(root, "repositories", "app", "_layers", "sha256", config.Encoded(), "link")); err != nil {
		t.Fatal(err)
	}
	err = r.Serves(ctx, "app", "v1")
	if err == nil || !strings.Contains(err.Error(), config.String()) || !strings.Contains(err.Error(), layer.String()) {
		t.Errorf("Serves after unlinking config %s = %v, want an error naming it and %s", config, err, layer)
	}
	t.Logf("Serves(app:v1): %v", err)

	if err := os.RemoveAll(v2(root, "repositories", "app", "_manifests", "revisions", "sha256", child.Digest.Encoded())); err != nil {
		t.Fatal(err)
	}
	err = r.Serves(ctx, "app", "multi")
	if err == nil || !strings.Contains(err.Error(), child.Digest.String()) {
		t.Errorf("Serves after unlinking index child %s = %v, want an error naming it", child.Digest, err)
	}
}

func TestTagHistoryAndTimes(t *testing.T) {
	root := t.TempDir()
	r := storagetest.New(t, root)
	a := r.PushImage("app", storagetest.ImageOpts{})
	b := r.PushImage("app", storagetest.ImageOpts{})
	r.Tag("app", "latest", a)
	r.Tag("app", "latest", b)
	r.Tag("app", "old", a)

	s := storagetest.Snapshot(t, root)
	want := map[string]bool{"app:latest@" + a.Digest.String(): true, "app:latest@" + b.Digest.String(): true, "app:old@" + a.Digest.String(): true}
	if !cmp.Equal(s.TagIndex, want) || s.Tags["app:latest"] != b.Digest {
		t.Errorf("tag index %v, latest %s; want %v, %s", s.TagIndex, s.Tags["app:latest"], want, b.Digest)
	}

	at := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	r.SetTagTime("app", "latest", at)
	fi, err := os.Stat(v2(root, "repositories", "app", "_manifests", "tags", "latest", "current", "link"))
	if err != nil || !fi.ModTime().Equal(at) {
		t.Errorf("tag time %v (%v), want %v", fi.ModTime(), err, at)
	}

	r.Untag("app", "latest")
	s = storagetest.Snapshot(t, root)
	if _, ok := s.Tags["app:latest"]; ok || len(s.TagIndex) != 1 {
		t.Errorf("after Untag: tags %v, index %v", s.Tags, s.TagIndex)
	}
	if !s.Revisions["app@"+b.Digest.String()] {
		t.Errorf("Untag removed the revision of %s", b.Digest)
	}
}

func TestUploadsBlobsAgeAndCopy(t *testing.T) {
	root := t.TempDir()
	r := storagetest.New(t, root)
	id := r.StartUpload("up", 300)
	orphan := r.PushBlob("blobs/only", 200)

	at := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	r.AgeAll(at)
	s := storagetest.Snapshot(t, root)
	if !s.Uploads["up/"+id] || !s.Blobs[orphan] || !s.LayerLinks["blobs/only@"+orphan.String()] {
		t.Errorf("snapshot %+v lacks upload up/%s or blob %s", s, id, orphan)
	}
	started, err := os.ReadFile(v2(root, "repositories", "up", "_uploads", id, "startedat"))
	if err != nil || string(started) != at.UTC().Format(time.RFC3339) {
		t.Errorf("startedat %q (%v), want %v", started, err, at)
	}

	dst := filepath.Join(t.TempDir(), "copy")
	storagetest.CopyTree(t, root, dst)
	if got := storagetest.Snapshot(t, dst); !cmp.Equal(got, s) {
		t.Errorf("copy differs: %s", cmp.Diff(s, got))
	}
	n := 0
	err = filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err == nil && !fi.ModTime().Equal(at) {
			t.Errorf("%s: mtime %v, want %v", p, fi.ModTime(), at)
		}
		n++
		return err
	})
	if err != nil || n < 10 {
		t.Errorf("walked %d entries of the copy: %v", n, err)
	}
}

func TestUpstreamGC(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	r := storagetest.New(t, root)
	kept := r.PushImage("app", storagetest.ImageOpts{Layers: 2})
	r.Tag("app", "v1", kept)
	gone := r.PushImage("app", storagetest.ImageOpts{OCI: true, Layers: 2})
	orphan := r.PushBlob("app", 100)

	before := storagetest.Snapshot(t, root)
	if err := r.UpstreamGC(ctx, true, true); err != nil {
		t.Fatal(err)
	}
	if after := storagetest.Snapshot(t, root); !cmp.Equal(before, after) {
		t.Fatalf("dry run changed the registry: %s", cmp.Diff(before, after))
	}

	if err := r.UpstreamGC(ctx, false, true); err != nil {
		t.Fatal(err)
	}
	s := storagetest.Snapshot(t, root)
	wantStored(t, s, kept)
	if err := r.Serves(ctx, "app", "v1"); err != nil {
		t.Error(err)
	}
	for _, d := range append([]digest.Digest{gone.Digest, orphan}, gone.Blobs...) {
		if s.Blobs[d] || s.LayerLinks["app@"+d.String()] {
			t.Errorf("blob %s survived upstream gc: data %v, link %v", d, s.Blobs[d], s.LayerLinks["app@"+d.String()])
		}
	}
	if s.Revisions["app@"+gone.Digest.String()] {
		t.Errorf("untagged manifest %s survived upstream gc", gone.Digest)
	}
}

// TestUpstreamGCByDigestOnly pins the upstream behaviour documented on UpstreamGC: with
// removeUntagged, a repository without _manifests/tags keeps its revision links but loses
// the blobs behind them.
func TestUpstreamGCByDigestOnly(t *testing.T) {
	root := t.TempDir()
	r := storagetest.New(t, root)
	img := r.PushImage("bydigest", storagetest.ImageOpts{})
	if err := r.UpstreamGC(context.Background(), false, true); err != nil {
		t.Fatal(err)
	}
	s := storagetest.Snapshot(t, root)
	if !s.Revisions["bydigest@"+img.Digest.String()] || s.Blobs[img.Digest] || s.Blobs[img.Blobs[0]] {
		t.Errorf("upstream gc changed: revision %v, manifest blob %v, config blob %v",
			s.Revisions["bydigest@"+img.Digest.String()], s.Blobs[img.Digest], s.Blobs[img.Blobs[0]])
	}
}

func TestRawManifestIsRefused(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	r := storagetest.New(t, root)
	layer := r.PushBlob("old", 100)
	schema1 := []byte(`{"schemaVersion":1,"name":"old","tag":"v1","architecture":"amd64","fsLayers":[{"blobSum":"` + layer.String() + `"}],"history":[{"v1Compatibility":"{}"}]}`)
	d := r.PutRawManifest("old", schema1)
	r.Tag("old", "v1", storagetest.Image{Digest: d})
	artifact := []byte(`{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","artifactType":"application/example","blobs":[]}`)
	r.Tag("old", "artifact", storagetest.Image{Digest: r.PutRawManifest("old", artifact)})

	s := storagetest.Snapshot(t, root)
	if !s.Blobs[d] || !s.Revisions["old@"+d.String()] || s.Tags["old:v1"] != d {
		t.Errorf("raw manifest %s not stored: %+v", d, s)
	}
	for _, tag := range []string{"v1", "artifact"} {
		if err := r.Serves(ctx, "old", tag); err == nil {
			t.Errorf("distribution v3 served old:%s", tag)
		} else {
			t.Logf("old:%s: %v", tag, err)
		}
	}
	if err := r.UpstreamGC(ctx, true, false); err == nil {
		t.Error("upstream gc accepted a schema1 manifest")
	}
}

func TestRandom(t *testing.T) {
	ctx := context.Background()
	seed := time.Now().UnixNano()
	root := t.TempDir()
	start := time.Now()
	r := storagetest.Random(t, root, seed)
	t.Logf("Random took %v", time.Since(start))

	if err := r.ServesAll(ctx, storagetest.DanglingTag); err != nil {
		t.Fatal(err)
	}
	if err := r.Serves(ctx, "a/b", "dangling"); err == nil {
		t.Errorf("%s serves, though a child of its index was deleted through the API", storagetest.DanglingTag)
	}
	s := storagetest.Snapshot(t, root)
	for _, tag := range []string{"library/base:latest", "a/b:latest", "a/b/c:multi", "team/app:v1", "mirror:stable", "mirror:multi", "team/app:foreign"} {
		if _, ok := s.Tags[tag]; !ok {
			t.Errorf("no tag %s", tag)
		}
	}
	repos := map[string]bool{}
	for k := range s.Revisions {
		repos[k[:strings.IndexByte(k, '@')]] = true
	}
	for k := range s.LayerLinks {
		repos[k[:strings.IndexByte(k, '@')]] = true
	}
	for k := range s.Uploads {
		repos[k[:strings.LastIndexByte(k, '/')]] = true
	}
	for _, repo := range []string{"a/b", "a/b/c", "empty", "bydigest", "uploads/only", "links/only"} {
		if !repos[repo] {
			t.Errorf("no repository %s", repo)
		}
	}
	if d := s.Tags["mirror:stable"]; !s.Revisions["team/app@"+d.String()] {
		t.Errorf("mirror:stable %s is not also untagged in team/app", d)
	}
	cutoff := time.Now().Add(-47 * time.Hour)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err == nil && fi.ModTime().After(cutoff) {
			t.Errorf("%s: modified %v, not aged", p, fi.ModTime())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The same seed writes the same content, upload ids aside.
	again := storagetest.Snapshot(t, storagetest.Random(t, t.TempDir(), seed).Root)
	s.Uploads, again.Uploads = nil, nil
	if !cmp.Equal(s, again) {
		t.Errorf("seed %d is not reproducible: %s", seed, cmp.Diff(s, again))
	}

	// Upstream's gc keeps every tag serving.
	gcRoot := filepath.Join(t.TempDir(), "gc")
	storagetest.CopyTree(t, root, gcRoot)
	gc := storagetest.New(t, gcRoot)
	if err := gc.UpstreamGC(ctx, false, true); err != nil {
		t.Fatal(err)
	}
	if err := gc.ServesAll(ctx, storagetest.DanglingTag); err != nil {
		t.Error(err)
	}
}
