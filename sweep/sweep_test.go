package sweep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// recorder is a Store that records the order of deletes and fails the keys
// it is told to.
type recorder struct {
	storage.Store
	mu      sync.Mutex
	deleted []string
	fail    string
	batches []int
	flat    bool
}

func (r *recorder) String() string    { return "recorder" }
func (r *recorder) BatchSize() int    { return 1000 }
func (r *recorder) FlatListing() bool { return r.flat }
func (r *recorder) Delete(_ context.Context, keys []string, done func(string, error)) {
	r.mu.Lock()
	r.batches = append(r.batches, len(keys))
	r.mu.Unlock()
	for _, k := range keys {
		var err error
		if r.fail != "" && strings.Contains(k, r.fail) {
			err = errors.New("injected")
		} else {
			r.mu.Lock()
			r.deleted = append(r.deleted, k)
			r.mu.Unlock()
		}
		done(k, err)
	}
}

func digest(t *testing.T, b byte) storage.Digest {
	d, err := storage.DigestFromHex("sha256", strings.Repeat(string("0123456789abcdef"[b%16]), 63)+"1")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testPlan(t *testing.T) *mark.Plan {
	p := &mark.Plan{Repos: []string{"app"}}
	blobs := map[storage.Digest]walker.Blob{}
	for i := range 5 {
		blobs[digest(t, byte(i))] = walker.Blob{Size: 10}
	}
	p.Digests = walker.NewDigests(blobs)
	for i := range 5 {
		id := p.Digests.Lookup(digest(t, byte(i)))
		name := "t" + string(rune('a'+i))
		p.Tags = append(p.Tags, mark.Tag{Repo: 0, Name: name, HasCurrent: true})
		p.History = append(p.History, mark.HistoryEntry{Repo: 0, Tag: name, ID: id, Of: mark.HistoryOfTag})
		p.Revisions = append(p.Revisions, mark.Revision{Repo: 0, ID: id})
		p.LayerLinks = append(p.LayerLinks, mark.LayerLink{Repo: 0, ID: id})
		p.Blobs = append(p.Blobs, mark.Blob{ID: id, Repo: 0})
	}
	for _, r := range p.Revisions {
		p.History = append(p.History, mark.HistoryEntry{Repo: 0, Tag: "latest", ID: r.ID, Of: mark.HistoryOfRevision})
	}
	return p
}

// phase ranks a key by the order the sweep must respect.
func phase(key string) int {
	switch {
	case strings.Contains(key, "/current/"):
		return 0
	case strings.Contains(key, "/_manifests/tags/"):
		return 1
	case strings.Contains(key, "/revisions/"):
		return 3
	case strings.Contains(key, "/_layers/"):
		return 4
	case strings.Contains(key, "/blobs/"):
		return 6
	}
	return -1
}

func TestExecuteDeletesReferencesBeforeWhatTheyReference(t *testing.T) {
	for _, jobs := range []int{1, 8} {
		r := &recorder{}
		res, err := Execute(context.Background(), r, testPlan(t), Options{Jobs: jobs}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.deleted) != 5*6 {
			t.Fatalf("%d keys deleted, want 30", len(r.deleted))
		}
		ranks := make([]int, len(r.deleted))
		for i, k := range r.deleted {
			ranks[i] = phase(k)
		}
		// History entries of deleted revisions go in the revisions' phase,
		// before the revision links themselves.
		if !slices.IsSorted(ranks) {
			t.Errorf("jobs %d: deletes out of phase order: %v", jobs, r.deleted)
		}
		want := Counts{Tags: 5, Manifests: 5, TagIndexEntries: 5, LayerLinks: 5, Blobs: 5, Bytes: 50}
		if res.Total != want || *res.Repos["app"] != want {
			t.Errorf("jobs %d: total %+v, per repository %+v, want %+v", jobs, res.Total, *res.Repos["app"], want)
		}
	}
}

func TestExecuteSkipsBlobsAfterAFailure(t *testing.T) {
	r := &recorder{fail: "/revisions/"}
	res, err := Execute(context.Background(), r, testPlan(t), Options{Jobs: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range r.deleted {
		if strings.Contains(k, "/blobs/") {
			t.Fatalf("a blob was deleted after a revision delete failed: %s", k)
		}
	}
	if len(res.Failed) != 5 || res.BlobsSkipped != 5 || !res.Incomplete() {
		t.Errorf("failed %d, skipped %d, incomplete %v", len(res.Failed), res.BlobsSkipped, res.Incomplete())
	}
}

// TestExecuteKeepsTheClosureOfATagItCouldNotDelete: a tag whose current
// link stays is still served, so nothing of its repository that the tag may
// reach goes in the later phases; other repositories are swept as planned.
func TestExecuteKeepsTheClosureOfATagItCouldNotDelete(t *testing.T) {
	p := testPlan(t)
	p.Repos = []string{"app", "other"}
	for i := range p.Revisions {
		if i%2 == 1 { // the odd items are other's
			p.Tags[i].Repo, p.History[i].Repo, p.History[len(p.Tags)+i].Repo = 1, 1, 1
			p.Revisions[i].Repo, p.LayerLinks[i].Repo = 1, 1
		}
	}
	r := &recorder{fail: "app/_manifests/tags/ta/current"}
	res, err := Execute(context.Background(), r, p, Options{Jobs: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var others int
	for _, k := range r.deleted {
		switch {
		case strings.Contains(k, "/blobs/"):
			t.Errorf("a blob was deleted after a tag delete failed: %s", k)
		case strings.Contains(k, "/app/") && !strings.Contains(k, "/_manifests/tags/"):
			t.Errorf("deleted %s, though a tag of app could not be deleted", k)
		case strings.Contains(k, "/other/_manifests/revisions/"), strings.Contains(k, "/other/_layers/"):
			others++
		}
	}
	// app: 3 revisions, 3 layer links, and every history entry (3 of the
	// deleted tags, 3 of the deleted revisions) kept.
	if others != 4 || res.Skipped != 12 || len(res.Failed) != 1 || !res.Incomplete() {
		t.Errorf("other's revisions and layer links deleted: %d (want 4); skipped %d (want 12); failed %v", others, res.Skipped, res.Failed)
	}
}

func TestExecuteDryRunDeletesNothing(t *testing.T) {
	r := &recorder{}
	res, err := Execute(context.Background(), r, testPlan(t), Options{DryRun: true, Jobs: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.deleted) != 0 || res.Total.Blobs != 5 || !res.DryRun {
		t.Errorf("dry run deleted %v, counted %+v", r.deleted, res.Total)
	}
}

func TestExecuteUsesAPlanOnce(t *testing.T) {
	p := testPlan(t)
	if _, err := Execute(context.Background(), &recorder{}, p, Options{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Execute(context.Background(), &recorder{}, p, Options{}, nil); !errors.Is(err, ErrPlanUsed) {
		t.Errorf("second sweep of a plan: %v", err)
	}
}

func TestExecuteBatchesByBackend(t *testing.T) {
	// A request-batching store gets one full batch per phase; a filesystem
	// spreads each phase over the jobs.
	flat := &recorder{flat: true}
	if _, err := Execute(context.Background(), flat, testPlan(t), Options{Jobs: 8}, nil); err != nil {
		t.Fatal(err)
	}
	if len(flat.batches) != 5 {
		t.Errorf("S3-like store: %d batches %v, want one per phase (5)", len(flat.batches), flat.batches)
	}
	fs := &recorder{}
	if _, err := Execute(context.Background(), fs, testPlan(t), Options{Jobs: 8}, nil); err != nil {
		t.Fatal(err)
	}
	if len(fs.batches) != 25 {
		t.Errorf("filesystem-like store: %d batches, want 25 (5 keys a phase, 10 history entries in pairs, over 8 jobs)", len(fs.batches))
	}
}

func TestExecuteStopsStartingBatchesWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &recorder{}
	res, err := Execute(ctx, r, testPlan(t), Options{Jobs: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.deleted) != 0 || !res.Interrupted {
		t.Errorf("cancelled sweep deleted %d keys, interrupted %v", len(r.deleted), res.Interrupted)
	}
}

// fullPlan has one item of every kind a phase deletes, in two repositories,
// with the cases that count on a later key: a tag without a current link,
// an upload of several keys, a blob nothing linked.
func fullPlan(t *testing.T) *mark.Plan {
	a, b, c := digest(t, 1), digest(t, 2), digest(t, 3)
	p := &mark.Plan{Repos: []string{"app", "web"}}
	p.Digests = walker.NewDigests(map[storage.Digest]walker.Blob{a: {Size: 7}, b: {Size: 30}})
	ia, ib, ic := p.Digests.Lookup(a), p.Digests.Lookup(b), p.Digests.Intern(c)
	p.Tags = []mark.Tag{
		{Repo: 0, Name: "old", HasCurrent: true, Why: mark.Reason{Kind: mark.NoRuleKeeps, Details: &mark.Details{Rules: []int{1}}}},
		{Repo: 1, Name: "gone", Why: mark.Reason{Kind: mark.NoCurrentLink}},
	}
	p.History = []mark.HistoryEntry{
		{Repo: 0, Tag: "old", ID: ia, Of: mark.HistoryOfTag}, {Repo: 0, Tag: "old", ID: ib, Of: mark.HistoryOfTag},
		{Repo: 1, Tag: "gone", ID: ib, Of: mark.HistoryOfTag}, {Repo: 1, Tag: "gone", ID: ic, Of: mark.HistoryOfTag},
		{Repo: 1, Tag: "x", ID: ic, Of: mark.HistoryOfRevision}, {Repo: 1, Tag: "y", ID: ic, Of: mark.HistoryOfRevision},
		{Repo: 0, Tag: "z", ID: ic, Of: mark.HistoryOfAbsent},
	}
	p.Revisions = []mark.Revision{{Repo: 1, ID: ic}}
	p.LayerLinks = []mark.LayerLink{{Repo: 0, ID: ia}}
	p.Uploads = []mark.Upload{{Repo: 1, ID: "u1", Files: []string{"data", "startedat"}, Size: 99}}
	p.Blobs = []mark.Blob{{ID: ia, Repo: 0}, {ID: ib, Repo: mark.NoRepo}}
	return p
}

func TestEntriesListEveryKeyInPhaseOrder(t *testing.T) {
	a, b, c := digest(t, 1), digest(t, 2), digest(t, 3)
	policy, history := &mark.Reason{Kind: mark.NoRuleKeeps, Details: &mark.Details{Rules: []int{1}}}, &mark.Reason{Kind: mark.NoCurrentLink}
	want := []Entry{
		{"tag", storage.TagCurrentPath("app", "old"), "app", 0, TagDeleted, policy, ""},
		{"tag", storage.TagIndexLinkPath("app", "old", a), "app", 0, TagDeleted, policy, ""},
		{"tag", storage.TagIndexLinkPath("app", "old", b), "app", 0, TagDeleted, policy, ""},
		{"tag", storage.TagIndexLinkPath("web", "gone", b), "web", 0, TagDeleted, history, ""},
		{"tag", storage.TagIndexLinkPath("web", "gone", c), "web", 0, TagDeleted, history, ""},
		{"history", storage.TagIndexLinkPath("web", "x", c), "web", 0, HistoryOfDeleted, nil, ""},
		{"history", storage.TagIndexLinkPath("web", "y", c), "web", 0, HistoryOfDeleted, nil, ""},
		{"history", storage.TagIndexLinkPath("app", "z", c), "app", 0, HistoryOfAbsent, nil, ""},
		{"manifest", storage.RevisionLinkPath("web", c), "web", 0, Untagged, nil, ""},
		{"layer link", storage.LayerLinkPath("app", a), "app", 0, LinkUnneeded, nil, ""},
		{"upload", storage.UploadDir("web", "u1") + "/data", "web", 0, StaleUpload, nil, "u1"},
		{"upload", storage.UploadStartedAtPath("web", "u1"), "web", 0, StaleUpload, nil, "u1"},
		{"blob", storage.BlobDataPath(a), "app", 7, Unreferenced, nil, ""},
		{"blob", storage.BlobDataPath(b), "", 30, Unreferenced, nil, ""},
	}
	if got := Entries(fullPlan(t)); !slices.EqualFunc(got, want, func(g, w Entry) bool {
		return g.Kind == w.Kind && g.Key == w.Key && g.Repo == w.Repo && g.Size == w.Size && g.Why == w.Why && g.Upload == w.Upload &&
			(g.Tag == nil) == (w.Tag == nil) && (g.Tag == nil || g.Tag.Kind == w.Tag.Kind)
	}) {
		t.Errorf("entries:\n got %v\nwant %v", got, want)
	}
	if got := Entries(&mark.Plan{}); got != nil {
		t.Errorf("entries of an empty plan: %v, want nil", got)
	}
}

func TestExecuteCountsEachItemOnce(t *testing.T) {
	// A tag counts on its current link, or else on its first history entry;
	// an upload on its first key, with its size; a blob nothing linked only
	// in the total.
	wantApp := Counts{Tags: 1, TagIndexEntries: 1, LayerLinks: 1, Blobs: 1, Bytes: 7}
	wantWeb := Counts{Tags: 1, Manifests: 1, TagIndexEntries: 2, Uploads: 1, UploadBytes: 99}
	wantTotal := Counts{Tags: 2, Manifests: 1, TagIndexEntries: 3, LayerLinks: 1, Blobs: 2, Bytes: 37, Uploads: 1, UploadBytes: 99}
	for _, dry := range []bool{false, true} {
		r := &recorder{}
		res, err := Execute(context.Background(), r, fullPlan(t), Options{DryRun: dry, Jobs: 3}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Total != wantTotal || *res.Repos["app"] != wantApp || *res.Repos["web"] != wantWeb {
			t.Errorf("dry %v: total %+v, app %+v, web %+v", dry, res.Total, *res.Repos["app"], *res.Repos["web"])
		}
		if n := len(r.deleted); !dry && n != 14 || dry && n != 0 {
			t.Errorf("dry %v: %d keys deleted", dry, n)
		}
	}
	// A tag whose current link fails to go does not count.
	r := &recorder{fail: "/old/current/"}
	res, err := Execute(context.Background(), r, fullPlan(t), Options{Jobs: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total.Tags != 1 || res.Repos["app"].Tags != 0 || len(res.Failed) != 1 || res.BlobsSkipped != 2 {
		t.Errorf("after a failed current link: %+v, failed %v, blobs skipped %d", res.Total, res.Failed, res.BlobsSkipped)
	}
}

func TestPhaseOpsFromIsASuffix(t *testing.T) {
	p := fullPlan(t)
	p.Tags = append(p.Tags, mark.Tag{Repo: 1, Name: "bare"}, mark.Tag{Repo: 1, Name: "cur", HasCurrent: true})
	for ph := range numPhases {
		all := slices.Collect(phaseOps(p, ph))
		for from := 0; from <= len(all)+1; from++ {
			got := slices.Collect(phaseOpsFrom(p, ph, from))
			want := all[min(from, len(all)):]
			if !slices.Equal(got, want) {
				t.Errorf("phase %d from %d: %v, want %v", ph, from, got, want)
			}
		}
	}
}

// firstKeys is a store with batches of 10 that holds its first jobs
// batches until all of them have started, recording their first keys.
type firstKeys struct {
	recorder
	jobs    int
	started sync.WaitGroup
	mu      sync.Mutex
	first   []string
}

func (f *firstKeys) BatchSize() int { return 10 }
func (f *firstKeys) Delete(ctx context.Context, keys []string, done func(string, error)) {
	f.mu.Lock()
	wait := len(f.first) < f.jobs
	if wait {
		f.first = append(f.first, keys[0])
		f.started.Done()
	}
	f.mu.Unlock()
	if wait {
		f.started.Wait()
	}
	f.recorder.Delete(ctx, keys, done)
}

func TestExecuteSpreadsJobsOverThePhase(t *testing.T) {
	// 1000 blobs in batches of 10 over 4 jobs: each job deletes its own
	// quarter of the sorted phase, so the batches running at once start 250
	// keys apart (not 10: they would share folders); every key goes once,
	// and a request-batching store still gets full batches.
	blobs := map[storage.Digest]walker.Blob{}
	for i := range 1000 {
		d, err := storage.DigestFromHex("sha256", fmt.Sprintf("%064x", i+1))
		if err != nil {
			t.Fatal(err)
		}
		blobs[d] = walker.Blob{Size: 1}
	}
	p := &mark.Plan{Digests: walker.NewDigests(blobs)}
	var keys []string
	for id := range p.Digests.StoredBlobs() {
		p.Blobs = append(p.Blobs, mark.Blob{ID: id, Repo: mark.NoRepo})
		keys = append(keys, storage.BlobDataPath(p.Digest(id)))
	}
	fs := &firstKeys{jobs: 4}
	fs.started.Add(4)
	if _, err := Execute(context.Background(), fs, p, Options{Jobs: 4}, nil); err != nil {
		t.Fatal(err)
	}
	slices.Sort(fs.first)
	if want := []string{keys[0], keys[250], keys[500], keys[750]}; !slices.Equal(fs.first, want) {
		t.Errorf("first keys of the batches at once:\n%v\nwant\n%v", fs.first, want)
	}
	if len(fs.batches) != 100 || !slices.Equal(slices.Sorted(slices.Values(fs.deleted)), keys) {
		t.Errorf("filesystem: %d batches, %d keys deleted, want 100 and each key once", len(fs.batches), len(fs.deleted))
	}
	flat := &recorder{flat: true}
	p = &mark.Plan{Digests: p.Digests, Blobs: append(p.Blobs, p.Blobs...)} // 2000 ops: two full batches of 1000
	if _, err := Execute(context.Background(), flat, p, Options{Jobs: 64}, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(flat.batches, []int{1000, 1000}) {
		t.Errorf("S3-like store: batches %v, want two of 1000", flat.batches)
	}
}

func TestExecuteRefusesKeysOutsideTheirPhase(t *testing.T) {
	a, b := digest(t, 1), digest(t, 2)
	hx := a.Hex()
	// file is key as a file of upload u1 of web names it.
	file := func(key string) string {
		rel, err := filepath.Rel(storage.UploadDir("web", "u1"), key)
		if err != nil {
			t.Fatal(err)
		}
		return rel
	}
	// A refusal before the blob phase skips the blobs; empty repositories
	// and multipart uploads come after them.
	for _, tc := range []struct {
		name string
		edit func(p *mark.Plan)
	}{
		{"upload file naming a blob", func(p *mark.Plan) { p.Uploads[0].Files = []string{file(storage.BlobDataPath(a))} }},
		{"upload file of another upload", func(p *mark.Plan) { p.Uploads[0].Files = []string{file(storage.UploadStartedAtPath("web", "u2"))} }},
		{"upload file of another repository", func(p *mark.Plan) { p.Uploads[0].Files = []string{file(storage.UploadStartedAtPath("app", "u1"))} }},
		{"upload file climbing out", func(p *mark.Plan) {
			p.Uploads[0].Files = []string{"../../../../blobs/sha256/" + hx[:2] + "/" + hx + "/data"}
		}},
		{"upload file naming a tag", func(p *mark.Plan) { p.Uploads[0].Files = []string{file(storage.TagCurrentPath("web", "x"))} }},
		{"upload id climbing out", func(p *mark.Plan) {
			p.Uploads[0].ID = ".."
			p.Uploads[0].Files = []string{"_layers/sha256/" + hx + "/link"}
		}},
		{"upload of a repository not walked", func(p *mark.Plan) { p.Uploads[0].Repo = 7 }},
		{"tag name with a slash", func(p *mark.Plan) { p.Tags[0].Name = "v1/current/link/../../../v2" }},
		{"tag name climbing out", func(p *mark.Plan) { p.Tags[0].Name = ".." }},
		{"tag name outside the grammar", func(p *mark.Plan) { p.Tags[0].Name = "-v1" }},
		{"tag of a repository not walked", func(p *mark.Plan) { p.Tags[0].Repo = 7 }},
		{"history entry with a path for a tag", func(p *mark.Plan) {
			p.History[4].Tag = "x/index/sha256/" + hx + "/link/../../../../../../revisions"
		}},
		{"history entry climbing out", func(p *mark.Plan) { p.History[6].Tag = "../../revisions" }},
		{"history entry of a repository not walked", func(p *mark.Plan) { p.History[6].Repo = mark.NoRepo }},
		{"repository outside the grammar", func(p *mark.Plan) { p.Repos[0] = "App" }},
		{"repository climbing out", func(p *mark.Plan) { p.Repos[0] = "web/../app" }},
		{"empty repository not walked", func(p *mark.Plan) { p.EmptyRepos = []mark.RepoIndex{7} }},
		{"multipart upload of a blob key", func(p *mark.Plan) {
			p.Multipart = []storage.MultipartUpload{{Key: storage.BlobDataPath(b), ID: "m"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, dry := range []bool{false, true} {
				p := fullPlan(t)
				tc.edit(p)
				r := &recorder{}
				res, err := Execute(context.Background(), r, p, Options{DryRun: dry, Jobs: 2}, nil)
				if err != nil {
					t.Fatal(err)
				}
				refused := 0
				for _, f := range res.Failed {
					if strings.HasPrefix(f.Err, "refused: ") {
						refused++
					}
				}
				if refused == 0 {
					t.Errorf("dry %v: nothing refused; failed %v", dry, res.Failed)
				}
				late := len(p.EmptyRepos)+len(p.Multipart) > 0
				for _, k := range r.deleted {
					if _, err := storage.ParseKey(k); err != nil || strings.Contains(k, "..") || !late && strings.Contains(k, "/blobs/") {
						t.Errorf("dry %v: deleted %s", dry, k)
					}
				}
				if !late && res.BlobsSkipped != len(p.Blobs) {
					t.Errorf("dry %v: a refusal before the blob phase left %d of %d blobs unskipped", dry, len(p.Blobs)-res.BlobsSkipped, len(p.Blobs))
				}
			}
		})
	}
}

// TestExecuteDeletesStartedAtLast: an upload's startedat goes after every
// other file of every upload (jobs delete parts of a phase at once, so an
// order within the phase would not hold), and stays when another file of
// its upload failed: an upload a stopped or failed run left half deleted
// keeps the start time that makes it stale, and the next run deletes it
// (without one it counts as young, and would stay forever).
func TestExecuteDeletesStartedAtLast(t *testing.T) {
	plan := func() *mark.Plan {
		p := fullPlan(t)
		p.Uploads = nil
		for _, id := range []string{"u1", "u2", "u3", "u4"} {
			p.Uploads = append(p.Uploads, mark.Upload{Repo: 1, ID: id, Files: []string{"data", "hashstates/sha256/0", "hashstates/sha256/1", "startedat"}, Size: 9})
		}
		return p
	}
	r := &recorder{}
	if _, err := Execute(context.Background(), r, plan(), Options{Jobs: 4}, nil); err != nil {
		t.Fatal(err)
	}
	lastOther, firstStart := -1, len(r.deleted)
	for i, k := range r.deleted {
		switch {
		case strings.HasSuffix(k, "/startedat"):
			firstStart = min(firstStart, i)
		case strings.Contains(k, "/_uploads/"):
			lastOther = i
		}
	}
	if lastOther < 0 || lastOther > firstStart {
		t.Errorf("a startedat went before another upload file:\n%s", strings.Join(r.deleted, "\n"))
	}
	r = &recorder{fail: "u2/hashstates/sha256/1"}
	res, err := Execute(context.Background(), r, plan(), Options{Jobs: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"u1", "u2", "u3", "u4"} {
		gone := slices.Contains(r.deleted, storage.UploadStartedAtPath("web", id))
		if gone == (id == "u2") {
			t.Errorf("upload %s: startedat deleted %v after a failure in u2", id, gone)
		}
	}
	if res.Skipped != 1 || len(res.Failed) != 1 {
		t.Errorf("skipped %d, failed %v: want the startedat of u2 skipped and one failure", res.Skipped, res.Failed)
	}
}

// TestExecuteRemovesEmptyUploadFolders: a planned upload without files (a
// folder a stopped run emptied) has its folder removed when it holds no
// file; one holding a file stays, and so does the folder of an upload
// whose ID would leave its repository.
func TestExecuteRemovesEmptyUploadFolders(t *testing.T) {
	dir := t.TempDir()
	mk := func(rel string) string {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := mk(storage.UploadDir("web", "u1") + "/hashstates/sha256")
	full := mk(storage.UploadDir("web", "u2"))
	if err := os.WriteFile(filepath.Join(full, "data"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mk(storage.ManifestsDir("web"))
	s, err := storage.OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := &mark.Plan{Repos: []string{"web"}, Digests: walker.NewDigests(nil)}
	p.Uploads = []mark.Upload{{Repo: 0, ID: "u1"}, {Repo: 0, ID: "u2"}, {Repo: 0, ID: ".."}}
	res, err := Execute(context.Background(), s, p, Options{Jobs: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(empty))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the empty upload folder stays: %v", err)
	}
	if _, err := os.Stat(filepath.Join(full, "data")); err != nil {
		t.Errorf("a file of an upload folder went: %v", err)
	}
	if len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Err, "refused") {
		t.Errorf("failures %v: want the upload \"..\" refused", res.Failed)
	}
}
