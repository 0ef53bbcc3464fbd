package walker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/walker"
)

// apiDeletes writes, through distribution's storage code, a registry whose
// manifests were deleted the way DELETE /v2/<name>/manifests/<digest> does:
// an untagged image, a tagged one (the API untags it, emptying its
// repository), and a child of a tagged index.
func apiDeletes(r *storagetest.Registry) (deleted []storagetest.Image) {
	r.Seed(14)
	r.Tag("app", "latest", r.PushImage("app", storagetest.ImageOpts{OCI: true}))
	junk := r.PushImage("app", storagetest.ImageOpts{OCI: true})
	r.DeleteManifest("app", junk)
	amd, arm := r.PushImage("app", storagetest.ImageOpts{OCI: true}), r.PushImage("app", storagetest.ImageOpts{OCI: true})
	r.Tag("app", "multi", r.PushIndex("app", true, amd, arm))
	r.DeleteManifest("app", arm)
	solo := r.PushImage("solo", storagetest.ImageOpts{})
	r.Tag("solo", "1.0", solo)
	r.DeleteManifest("solo", solo)
	return []storagetest.Image{junk, arm, solo}
}

// outcome is what a walk and a plan say about a registry, in the terms both
// strategies share.
type outcome struct {
	Revisions, Problems, Broken, Empty []string
	Blobs                              []string
}

func outcomeOf(t *testing.T, store storage.Store) (outcome, *walker.Inventory, *mark.Plan) {
	t.Helper()
	inv, err := walker.Walk(context.Background(), store, walker.Options{Jobs: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var o outcome
	for _, r := range inv.Repos {
		for _, l := range r.Revisions {
			o.Revisions = append(o.Revisions, r.Name+"@"+inv.Digests.Digest(l.ID).String())
		}
	}
	for _, p := range inv.Problems {
		o.Problems = append(o.Problems, p.Path+": "+p.Err.Error())
	}
	// An hour later, everything is old enough.
	p, err := mark.ComputeAged(inv, mark.Options{DeleteUntagged: true, StartedAt: time.Now().Add(time.Hour), Compact: mark.CompactAll}, walker.Ages(t.Context(), store, inv, 4))
	if err != nil {
		t.Fatal(err)
	}
	if p.Err != nil {
		t.Fatal(p.Err)
	}
	for _, b := range p.Broken {
		o.Broken = append(o.Broken, b.Repo+":"+b.Tag+" "+string(b.Problem)+" "+b.Missing)
	}
	for _, b := range p.Blobs {
		o.Blobs = append(o.Blobs, p.Digest(b.ID).String())
	}
	for _, i := range p.EmptyRepos {
		o.Empty = append(o.Empty, p.Repo(i))
	}
	slices.Sort(o.Revisions)
	slices.Sort(o.Blobs)
	return o, inv, p
}

// TestManifestsDeletedThroughTheAPI: both walk strategies, the tree walk of a
// filesystem and the flat listing of S3, see a manifest deleted through the
// registry's API as absent, report nothing wrong, and lead to the same plan:
// its blobs go, a repository it was the last of goes, and an index that lists
// it is broken. Only the filesystem has the empty folder to remove.
func TestManifestsDeletedThroughTheAPI(t *testing.T) {
	root := t.TempDir()
	deleted := apiDeletes(storagetest.New(t, root))
	fs, err := storage.OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	onFS, inv, plan := outcomeOf(t, fs)

	if len(onFS.Problems) != 0 {
		t.Errorf("problems %v: want none", onFS.Problems)
	}
	var folders []string
	for _, f := range plan.RevisionFolders {
		folders = append(folders, plan.Repo(f.Repo)+"@"+plan.Digest(f.ID).String())
	}
	var want []string
	for _, img := range deleted {
		want = append(want, img.Repo+"@"+img.Digest.String())
		if !slices.Contains(onFS.Blobs, img.Digest.String()) {
			t.Errorf("the blob of %s@%s, deleted through the API, is not planned", img.Repo, img.Digest)
		}
		for _, b := range img.Blobs {
			if !slices.Contains(onFS.Blobs, b.String()) {
				t.Errorf("blob %s of %s@%s, deleted through the API, is not planned", b, img.Repo, img.Digest)
			}
		}
	}
	slices.Sort(folders)
	slices.Sort(want)
	if !slices.Equal(folders, want) {
		t.Errorf("revision folders to remove %v, want %v", folders, want)
	}
	if !slices.Equal(onFS.Empty, []string{"solo"}) || len(onFS.Broken) != 1 {
		t.Errorf("empty repositories %v, broken %v: want solo, and app:multi", onFS.Empty, onFS.Broken)
	}
	if r := inv.Repo("app"); r == nil || len(r.Deleted) != 2 {
		t.Errorf("app's deleted revisions: %+v", r)
	}

	// The same registry on S3, written by the registry's own S3 driver.
	bucket := storagetest.NewBucket(t)
	apiDeletes(storagetest.NewS3(t, bucket, "registry"))
	endpoint, access, secret, region := storagetest.S3Server(t)
	s3, err := storage.OpenS3(t.Context(), storage.S3Options{Bucket: bucket, RootDirectory: "registry", Region: region, Endpoint: endpoint, ForcePathStyle: true, AccessKey: access, SecretKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	onS3, _, plan3 := outcomeOf(t, s3)
	if diff := cmp.Diff(onFS, onS3); diff != "" {
		t.Errorf("the flat walk of S3 differs from the tree walk of a filesystem (-fs +s3):\n%s", diff)
	}
	if len(plan3.RevisionFolders) != 0 {
		t.Errorf("revision folders on S3: %v", plan3.RevisionFolders)
	}
}
