package mark

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// TestAuditFollowsThePlan: what the audit lists as stale or empty, and
// whether it says gc removes it, is what Compute plans with the same
// options, on every compaction setting; an image whose layer is stored
// under an alias is neither broken nor missing, for the audit as for the
// plan, and one whose alias names a blob the store lacks is broken for
// both.
func TestAuditFollowsThePlan(t *testing.T) {
	v := newInv()
	app := v.repo("app")
	img := v.image(app, 1)
	v.tag(app, "v1", img, old)
	// A layer pushed under a sha512 digest, stored under its sha256 one;
	// and one whose stored blob is gone.
	alias, _ := storage.DigestFromHex("sha512", repeat("ab", 64))
	gone, _ := storage.DigestFromHex("sha512", repeat("cd", 64))
	stored, lost := v.blob(), v.blob()
	delete(v.Blobs, lost)
	aliased := v.manifest(app, storage.Refs{MediaType: storage.MediaTypeOCIManifest, Blobs: []storage.Digest{v.blob(), alias}})
	v.tag(app, "aliased", aliased, old)
	app.Layers = append(app.Layers, link{Digest: alias, ModTime: walker.TimeOf(old), Target: stored})
	broken := v.manifest(app, storage.Refs{MediaType: storage.MediaTypeOCIManifest, Blobs: []storage.Digest{v.blob(), gone}})
	v.tag(app, "lost", broken, old)
	app.Layers = append(app.Layers, link{Digest: gone, ModTime: walker.TimeOf(old), Target: lost})
	// An empty repository holding an old layer link; one holding only an
	// upload; a foreign name with an upload.
	empty := v.repo("empty")
	empty.Layers = append(empty.Layers, link{Digest: v.blob(), ModTime: walker.TimeOf(old)})
	v.repo("incoming")
	v.repo("Foreign")
	in := v.build()
	upload := func(id string, at time.Time) walker.Upload {
		return walker.Upload{ID: id, StartedAt: at, Keys: []string{id + "/data"}, Size: 10}
	}
	in.Repo("app").Uploads = []walker.Upload{upload("stale", old), upload("young", now), upload("undated", time.Time{})}
	in.Repo("incoming").Uploads = []walker.Upload{upload("stale", old)}
	in.Repo("Foreign").Uploads = []walker.Upload{upload("stale", old)}
	in.Multipart = []storage.MultipartUpload{
		{Key: storage.V2 + "/repositories/app/_uploads/stale/data", ID: "m1", Initiated: old},
		{Key: storage.V2 + "/repositories/app/_uploads/young/data", ID: "m2", Initiated: now},
	}

	for _, c := range []Compact{{}, CompactAll, {Uploads: true, UploadMaxAge: CompactAll.UploadMaxAge}, {Repos: true, UploadMaxAge: CompactAll.UploadMaxAge}} {
		opts := Options{StartedAt: now, Compact: c}
		if c == (Compact{}) {
			opts.Compact.UploadMaxAge = CompactAll.UploadMaxAge
		}
		plan := Compute(in, opts)
		a := NewAudit(in, plan, nil)

		var stale, removed []string
		for _, u := range a.StaleUploads {
			stale = append(stale, u.Repo+"/"+u.ID)
			if u.RemovedByGC {
				removed = append(removed, u.Repo+"/"+u.ID)
			}
		}
		var planned []string
		for _, u := range plan.Uploads {
			planned = append(planned, plan.Repo(u.Repo)+"/"+u.ID)
		}
		if want := []string{"Foreign/stale", "app/stale", "incoming/stale"}; !slices.Equal(stale, want) {
			t.Errorf("%+v: stale uploads %v, want %v", c, stale, want)
		}
		if !slices.Equal(removed, planned) {
			t.Errorf("%+v: the audit says gc removes the uploads %v, the plan deletes %v", c, removed, planned)
		}
		if len(a.StaleMultipart) != 1 || a.StaleMultipart[0].ID != "m1" || a.StaleMultipart[0].RemovedByGC != (len(plan.Multipart) == 1) {
			t.Errorf("%+v: stale multipart uploads %+v, plan aborts %+v", c, a.StaleMultipart, plan.Multipart)
		}

		var emptyRepos, removedRepos []string
		for _, e := range a.EmptyRepositories {
			emptyRepos = append(emptyRepos, e.Name)
			if e.RemovedByGC {
				removedRepos = append(removedRepos, e.Name)
			}
		}
		if want := []string{"empty", "incoming"}; !slices.Equal(emptyRepos, want) {
			t.Errorf("%+v: empty repositories %v, want %v", c, emptyRepos, want)
		}
		var planRemoved []string
		for _, i := range plan.EmptyRepos {
			planRemoved = append(planRemoved, plan.Repo(i))
		}
		if !slices.Equal(removedRepos, planRemoved) {
			t.Errorf("%+v: the audit says gc removes %v, the plan removes %v", c, removedRepos, planRemoved)
		}

		var brokenTags, planBroken []string
		for _, b := range a.Broken {
			brokenTags = append(brokenTags, b.Repo+":"+b.Tag)
		}
		for _, b := range plan.Broken {
			planBroken = append(planBroken, b.Repo+":"+b.Tag)
		}
		if want := []string{"app:lost"}; !slices.Equal(brokenTags, want) || !slices.Equal(planBroken, want) {
			t.Errorf("%+v: broken: audit %v, plan %v, want %v", c, brokenTags, planBroken, want)
		}
		if len(a.MissingBlobs) != 1 || a.MissingBlobs[0].Digest != gone.String() {
			t.Errorf("%+v: missing blobs %+v, want %s only", c, a.MissingBlobs, gone)
		}
	}
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }
