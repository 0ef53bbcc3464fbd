package sweep

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/storage"
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
	for i := range 5 {
		d := digest(t, byte(i))
		p.Tags = append(p.Tags, mark.Tag{Repo: "app", Name: "t" + string(rune('a'+i)), HasCurrent: true, Index: []storage.Digest{d}})
		p.Revisions = append(p.Revisions, mark.Revision{Repo: "app", Digest: d, TagIndex: []string{"latest"}})
		p.LayerLinks = append(p.LayerLinks, mark.LayerLink{Repo: "app", Digest: d})
		p.Blobs = append(p.Blobs, mark.Blob{Digest: d, Size: 10, Repo: "app"})
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
	if len(flat.batches) != 6 {
		t.Errorf("S3-like store: %d batches %v, want one per phase (6)", len(flat.batches), flat.batches)
	}
	fs := &recorder{}
	if _, err := Execute(context.Background(), fs, testPlan(t), Options{Jobs: 8}, nil); err != nil {
		t.Fatal(err)
	}
	if len(fs.batches) != 30 {
		t.Errorf("filesystem-like store: %d batches, want 30 (5 keys a phase over 8 jobs)", len(fs.batches))
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
