package walker_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/walker"
)

// TestRecheckListsAgainOnlyWhatChanged walks a registry written by the
// distribution code and aged an hour, changes repositories the ways a
// registry does while a run goes on, and checks that the recheck takes the
// one it did not touch from the first walk and lists the others again,
// with the change in them.
func TestRecheckListsAgainOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	reg := storagetest.New(t, root)
	repos := []string{"same", "pushed", "retagged", "repushed", "linked", "uploading", "untagged"}
	first, second := map[string]storagetest.Image{}, map[string]storagetest.Image{}
	for _, repo := range repos {
		first[repo] = reg.PushImage(repo, storagetest.ImageOpts{})
		second[repo] = reg.PushImage(repo, storagetest.ImageOpts{})
		// v1's history holds both images, and it points at the first.
		reg.Tag(repo, "v1", second[repo])
		reg.Tag(repo, "v1", first[repo])
		reg.Tag(repo, "v2", second[repo])
	}
	reg.AgeAll(time.Now().Add(-time.Hour))
	fs := openFS(t, root)
	inv, err := walker.Walk(ctx, fs, walker.Options{Jobs: 4, StartedAt: time.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}

	pushed := reg.PushImage("pushed", storagetest.ImageOpts{})
	reg.Tag("pushed", "v3", pushed)
	reg.Tag("retagged", "v1", second["retagged"]) // rewrites current/link and a history link: no folder changes
	rev := filepath.Join(root, "docker/registry/v2/repositories/repushed/_manifests/revisions/sha256", first["repushed"].Digest.Encoded(), "link")
	b, err := os.ReadFile(rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rev, b, 0o644); err != nil { // a manifest put again, by digest
		t.Fatal(err)
	}
	linked := reg.PushBlob("linked", 10)
	reg.StartUpload("uploading", 10)
	reg.Untag("untagged", "v2")

	firstRepos := map[string]*walker.Repo{}
	for _, r := range inv.Repos {
		firstRepos[r.Name] = r
	}
	again, err := walker.Recheck(ctx, fs, inv, walker.Options{Jobs: 4, StartedAt: time.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Repos != nil || again.Digests != inv.Digests {
		t.Errorf("the first walk keeps %d repositories after the recheck consumed it, or its digest table was not shared", len(inv.Repos))
	}
	for _, repo := range repos {
		if reused := again.Repo(repo) == firstRepos[repo]; reused != (repo == "same") {
			t.Errorf("%s: taken from the first walk: %v", repo, reused)
		}
	}
	id := func(d interface{ String() string }) walker.ID {
		sd, err := storage.ParseDigest(d.String())
		if err != nil {
			t.Fatal(err)
		}
		return again.Digests.Lookup(sd)
	}
	tags := func(repo string) map[string]walker.ID {
		m := map[string]walker.ID{}
		for _, tag := range again.Repo(repo).Tags {
			m[tag.Name] = tag.Current
		}
		return m
	}
	if got := tags("pushed")["v3"]; got == 0 || got != id(pushed.Digest) {
		t.Errorf("pushed: v3 is %v, want the image pushed during the run", got)
	}
	if got := tags("retagged")["v1"]; got != id(second["retagged"].Digest) {
		t.Errorf("retagged: v1 is %v, want the image it was re-pointed at", got)
	}
	if _, ok := tags("untagged")["v2"]; ok {
		t.Error("untagged: v2 still listed")
	}
	if !slices.ContainsFunc(again.Repo("linked").Layers, func(l walker.Link) bool { return l.ID == id(linked) }) {
		t.Error("linked: the blob pushed during the run has no layer link")
	}
	if n := len(again.Repo("uploading").Uploads); n != 1 {
		t.Errorf("uploading: %d uploads, want 1", n)
	}
	for _, l := range again.Repo("repushed").Revisions {
		if l.ID == id(first["repushed"].Digest) && !l.ModTime.After(time.Now().Add(-time.Minute)) {
			t.Errorf("repushed: revision time %v, want the new one", l.ModTime.Time())
		}
	}

	// Times within the margin before the first walk prove nothing: a fresh
	// registry is listed again whole.
	root = t.TempDir()
	reg = storagetest.New(t, root)
	reg.Tag("fresh", "v1", reg.PushImage("fresh", storagetest.ImageOpts{}))
	fs = openFS(t, root)
	if inv, err = walker.Walk(ctx, fs, walker.Options{Jobs: 4, StartedAt: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	fresh := inv.Repo("fresh")
	if again, err = walker.Recheck(ctx, fs, inv, walker.Options{Jobs: 4, StartedAt: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	if again.Repo("fresh") == fresh {
		t.Error("fresh: a repository written just before the walk was taken from it")
	}
}
