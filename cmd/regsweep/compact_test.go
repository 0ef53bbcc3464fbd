package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regsweep/regsweep/storage/storagetest"
)

func TestGCCompaction(t *testing.T) {
	root := t.TempDir()
	r := storagetest.New(t, root)
	v2 := func(p ...string) string { return filepath.Join(append([]string{root, "docker/registry/v2"}, p...)...) }

	keep := r.PushImage("keep/app", storagetest.ImageOpts{Layers: 2})
	old := r.PushImage("keep/app", storagetest.ImageOpts{})
	r.Tag("keep/app", "latest", old)
	r.Tag("keep/app", "latest", keep) // history: old, keep
	half := r.PushImage("keep/app", storagetest.ImageOpts{})
	r.Tag("keep/app", "half", half)
	stale := r.StartUpload("keep/app", 100)
	young := r.StartUpload("keep/app", 100)
	noStart := r.StartUpload("keep/app", 100)

	gone := r.PushImage("gone/app", storagetest.ImageOpts{})
	r.Tag("gone/app", "v1", gone)
	r.Untag("gone/app", "v1")
	child := r.PushImage("gone/app/child", storagetest.ImageOpts{})
	r.Tag("gone/app/child", "v1", child)
	r.CopyImage(keep, "links/only") // manifest and links...
	r.AgeAll(time.Now().Add(-10 * 24 * time.Hour))

	// links/only keeps only its layer links: drop the revision by hand.
	if err := os.RemoveAll(v2("repositories/links/only/_manifests")); err != nil {
		t.Fatal(err)
	}
	// An orphan history entry: old's revision gone from keep/app.
	if err := os.RemoveAll(v2("repositories/keep/app/_manifests/revisions/sha256", old.Digest.Encoded())); err != nil {
		t.Fatal(err)
	}
	// An interrupted tag delete: half has history but no current link.
	if err := os.RemoveAll(v2("repositories/keep/app/_manifests/tags/half/current")); err != nil {
		t.Fatal(err)
	}
	// Uploads: one started 10 days ago (stale), one just now, one whose
	// startedat is gone (counts as young).
	now := time.Now().UTC().Format(time.RFC3339)
	if err := os.WriteFile(v2("repositories/keep/app/_uploads", young, "startedat"), []byte(now), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(v2("repositories/keep/app/_uploads", noStart, "startedat")); err != nil {
		t.Fatal(err)
	}

	if got := r.Catalog(); !slices.Equal(got, []string{"gone/app", "gone/app/child", "keep/app"}) {
		t.Fatalf("catalog before: %v", got)
	}
	code, out, rep := gc(t, "--delete-untagged", root)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	r.Reopen()
	if got := r.Catalog(); !slices.Equal(got, []string{"gone/app/child", "keep/app"}) {
		t.Errorf("catalog after: %v, want gone/app/child and keep/app", got)
	}
	if got := r.TagList("keep/app"); !slices.Equal(got, []string{"latest"}) {
		t.Errorf("tags of keep/app: %v", got)
	}
	st := r.State()
	if st.Uploads["keep/app/"+stale] || !st.Uploads["keep/app/"+young] || !st.Uploads["keep/app/"+noStart] {
		t.Errorf("uploads after: %v (stale %s must go, young %s and %s stay)", st.Uploads, stale, young, noStart)
	}
	if st.TagIndex["keep/app:latest@"+old.Digest.String()] {
		t.Error("the history entry of a manifest the repository no longer holds survived")
	}
	if !st.TagIndex["keep/app:latest@"+keep.Digest.String()] {
		t.Error("the history entry of the current manifest was deleted")
	}
	for k := range st.LayerLinks {
		if filepath.Dir(k) == "links" {
			t.Errorf("layer link of a removed repository survived: %s", k)
		}
	}
	if _, err := os.Stat(v2("repositories/links/only")); !os.IsNotExist(err) {
		t.Errorf("links/only still on disk: %v", err)
	}
	if rep.Uploads != 1 || rep.UploadBytes < 100 || rep.Counts.Repositories != 2 || rep.TagIndexEntries < 1 || rep.Tags != 1 {
		t.Errorf("report: %+v", rep.Counts)
	}
	for _, tag := range [][2]string{{"keep/app", "latest"}, {"gone/app/child", "v1"}} {
		if err := r.Serves(t.Context(), tag[0], tag[1]); err != nil {
			t.Error(err)
		}
	}

	// --compact none leaves all of that alone.
	root2 := t.TempDir()
	r2 := storagetest.New(t, root2)
	img := r2.PushImage("a", storagetest.ImageOpts{})
	r2.Tag("a", "v", img)
	r2.Untag("a", "v")
	id := r2.StartUpload("a", 10)
	r2.AgeAll(time.Now().Add(-10 * 24 * time.Hour))
	if code, _, rep := gc(t, "--delete-untagged", "--compact", "none", root2); code != 0 || rep.Counts.Repositories != 0 || rep.Uploads != 0 {
		t.Errorf("--compact none: exit %d, %+v", code, rep.Counts)
	}
	if !r2.State().Uploads["a/"+id] || len(r2.Catalog()) != 1 {
		t.Error("--compact none removed an upload or a repository")
	}
}

func TestGCAbortsStaleMultipartUploadsOnS3(t *testing.T) {
	f := newFixtureOn(t, onS3)
	bucket := strings.TrimPrefix(f.where[len(f.where)-1], "s3://")
	bucket, root, _ := strings.Cut(bucket, "/")
	c := storagetest.S3Client(t)
	key := root + "/docker/registry/v2/repositories/team/app/_uploads/abandoned/data"
	up, err := c.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(t.Context(), &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part")}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		out, err := c.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Uploads)
	}
	// Younger than --upload-max-age: kept.
	if code, _, rep := gc(t, append([]string{"--dry-run"}, f.where...)...); code != 0 || rep.Multipart != 0 {
		t.Fatalf("a young multipart upload: exit %d, %d aborted", code, rep.Multipart)
	}
	if code, _, rep := gc(t, append([]string{"--dry-run", "--upload-max-age", "0s"}, f.where...)...); code != 0 || rep.Multipart != 1 || count() != 1 {
		t.Fatalf("dry run: exit %d, %d would be aborted, %d left", code, rep.Multipart, count())
	}
	if code, _, rep := gc(t, append([]string{"--upload-max-age", "0s"}, f.where...)...); code != 0 || rep.Multipart != 1 {
		t.Fatalf("gc: exit %d, %d aborted", code, rep.Multipart)
	}
	if n := count(); n != 0 {
		t.Errorf("%d multipart uploads left", n)
	}
}
