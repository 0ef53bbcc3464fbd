package storagetest_test

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/storage/storagetest"
)

// TestS3Registry writes every kind of manifest through distribution's s3-aws driver into a
// bucket of the tests' S3 server and reads it back, as TestPushEveryKind does on disk.
func TestS3Registry(t *testing.T) {
	ctx := context.Background()
	bucket := storagetest.NewBucket(t)
	r := storagetest.NewS3(t, bucket, "/some/root")
	s2 := r.PushImage("lib/app", storagetest.ImageOpts{Layers: 2})
	oci := r.PushImage("lib/app", storagetest.ImageOpts{OCI: true, ForeignLayer: true})
	index := r.PushIndex("lib/app", true, oci)
	sig := r.PushReferrer("lib/app", s2, "")
	other := r.CopyImage(s2, "team/other")
	r.Tag("lib/app", "v1", s2)
	r.Tag("lib/app", "multi", index)
	r.Tag("team/other", "latest", other)
	up := r.StartUpload("lib/app", 64)

	s := r.State()
	if diff := cmp.Diff(s, storagetest.SnapshotS3(t, bucket, "some/root")); diff != "" {
		t.Errorf("State and SnapshotS3 disagree (-State +SnapshotS3):\n%s", diff)
	}
	for _, img := range []storagetest.Image{s2, oci, sig, other} {
		wantStored(t, s, img)
	}
	if !s.Revisions["lib/app@"+index.Digest.String()] || s.Tags["lib/app:multi"] != index.Digest {
		t.Errorf("index %s not stored or tagged: %+v", index.Digest, s)
	}
	if !s.Uploads["lib/app/"+up] {
		t.Errorf("upload %s not found: %v", up, s.Uploads)
	}
	if err := r.ServesAll(ctx); err != nil {
		t.Error(err)
	}
	if err := r.UpstreamGC(ctx, true, true); err != nil {
		t.Error(err)
	}
	if empty := storagetest.SnapshotS3(t, bucket, "other/root"); len(empty.Blobs)+len(empty.Tags) != 0 {
		t.Errorf("snapshot of a root with nothing in it: %+v", empty)
	}
}

// TestS3TestServerStartsAndStops: the tests' own server answers S3
// requests on loopback, and Stop ends it and removes its data.
func TestS3TestServerStartsAndStops(t *testing.T) {
	t.Parallel()
	s, err := storagetest.StartS3TestServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	resp, err := http.Get(s.Endpoint + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned GET /: %s, want 403 from an S3 server", resp.Status)
	}
	dir := s.DataDir()
	s.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data folder %s after Stop: %v", dir, err)
	}
	if _, err := http.Get(s.Endpoint + "/"); err == nil {
		t.Errorf("%s still answers after Stop", s.Endpoint)
	}
}
