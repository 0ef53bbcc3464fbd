package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// gcCtx is gc with the context of the run, for runs a test interrupts.
func gcCtx(t *testing.T, ctx context.Context, args ...string) (int, string, *report.Report) {
	t.Helper()
	rep := filepath.Join(t.TempDir(), "report.json")
	var out, errOut bytes.Buffer
	args = append([]string{"gc", "--quiet", "--min-age", "0", "--report", rep}, args...)
	code := runT(ctx, args, &out, &errOut)
	t.Logf("regsweep %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String() + errOut.String(), readReport(t, rep)
}

// readReport reads the JSON report at path; a missing one is empty.
func readReport(t *testing.T, path string) *report.Report {
	t.Helper()
	var r report.Report
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("report is not JSON: %v", err)
		}
	}
	return &r
}

// faultyStores maps locations (Location.String) to the Faulty stores the
// commands of a test open there instead of the real one.
var faultyStores sync.Map

// runT is run for tests: the stores it opens where a test registered a
// Faulty store (withFaulty) go through that.
func runT(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, env{stdout: stdout, stderr: stderr, wrapStore: faultyWrap})
}

func faultyWrap(loc storage.Location, s storage.Store) storage.Store {
	v, ok := faultyStores.Load(loc.String())
	if !ok {
		return s
	}
	fy := v.(*storagetest.Faulty)
	fy.Store = s
	return fy
}

// withFaulty makes the commands that open the folder or bucket at where go
// through fy, until the returned func (also called at the end of the test).
func withFaulty(t *testing.T, where string, fy *storagetest.Faulty) (release func()) {
	t.Helper()
	if _, loaded := faultyStores.LoadOrStore(where, fy); loaded {
		t.Fatalf("%s already has a faulty store", where)
	}
	release = func() { faultyStores.CompareAndDelete(where, fy) }
	t.Cleanup(release)
	return release
}

// faultCase is a registry to break: a template to copy for every run, the
// clean run's final state, and how many deletes that run made.
type faultCase struct {
	template string
	clean    storagetest.State
	deletes  int
	reads    []storagetest.Call
	cleanRep *report.Report
}

// newFaultCase writes the gc fixture and runs a clean, counted
// --delete-untagged gc on a copy of it.
func newFaultCase(t *testing.T, args ...string) *faultCase {
	t.Helper()
	fc := &faultCase{template: newFixture(t).reg.Root}
	root := fc.copy(t)
	fy := storagetest.NewFaulty(nil)
	fy.Counted = storagetest.UnderV2
	fy.Record = true
	release := withFaulty(t, root, fy)
	code, _, rep := gc(t, append(append([]string{"--delete-untagged"}, args...), root)...)
	release()
	if code != 0 {
		t.Fatalf("clean run: exit %d", code)
	}
	fc.cleanRep = rep
	fc.clean = storagetest.Snapshot(t, root)
	fc.deletes = fy.Count(storagetest.OpDelete)
	for _, c := range fy.Calls() {
		if slices.Contains(storagetest.ReadOps, c.Op) {
			fc.reads = append(fc.reads, c)
		}
	}
	if fc.deletes < 10 || len(fc.clean.Tags) == 0 {
		t.Fatalf("clean run made %d deletes and keeps %d tags: the fixture is too small to test anything", fc.deletes, len(fc.clean.Tags))
	}
	t.Logf("clean run: %d deletes, %d reads, %d tags kept", fc.deletes, len(fc.reads), len(fc.clean.Tags))
	return fc
}

// copy returns a fresh copy of the template.
func (fc *faultCase) copy(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "registry")
	storagetest.CopyTree(t, fc.template, root)
	return root
}

// assertKeptServe checks with distribution's code that every tag the clean
// run keeps is still served whole from root.
func (fc *faultCase) assertKeptServe(t *testing.T, root string) {
	t.Helper()
	reg := storagetest.New(t, root)
	tags := make([]string, 0, len(fc.clean.Tags))
	for rt := range fc.clean.Tags {
		tags = append(tags, rt)
	}
	slices.Sort(tags)
	for _, rt := range tags {
		i := strings.LastIndexByte(rt, ':')
		if err := reg.Serves(context.Background(), rt[:i], rt[i+1:]); err != nil {
			t.Errorf("a tag the clean run keeps no longer serves: %v", err)
		}
	}
}

// assertConverges runs gc again, cleanly, and checks that it leaves exactly
// what the clean run left.
func (fc *faultCase) assertConverges(t *testing.T, root string, args ...string) {
	t.Helper()
	code, _, _ := gc(t, append(append([]string{"--delete-untagged"}, args...), root)...)
	if code != 0 {
		t.Errorf("rerun: exit %d, want 0", code)
	}
	if diff := cmp.Diff(fc.clean, storagetest.Snapshot(t, root)); diff != "" {
		t.Errorf("the rerun does not reach the clean run's final state (-clean +rerun):\n%s", diff)
	}
	// The trash a stopped run left is freed by the rerun.
	noTrash(t, root, "after the rerun")
}

// TestGCStoppedAfterEveryDelete stops the storage after N deletes, for
// every N a clean run makes: the run ends as interrupted, its lock stays
// (as after a crash), every tag the clean run keeps still serves, and a
// rerun with --break-lock ends in exactly the clean run's state.
func TestGCStoppedAfterEveryDelete(t *testing.T) {
	for _, jobs := range []string{"1", "8"} {
		t.Run("jobs="+jobs, func(t *testing.T) {
			fc := newFaultCase(t, "--jobs", jobs)
			for n := 0; n < fc.deletes; n++ {
				t.Run(fmt.Sprint(n), func(t *testing.T) {
					t.Parallel()
					root := fc.copy(t)
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					fy := storagetest.NewFaulty(nil, storagetest.Fault{Op: storagetest.OpDelete, N: n + 1, Stop: true})
					fy.Counted = storagetest.UnderV2
					fy.OnStop = cancel
					release := withFaulty(t, root, fy)
					code, _, rep := gcCtx(t, ctx, "--delete-untagged", "--jobs", jobs, root)
					release()
					if !fy.Stopped() {
						t.Fatalf("the store never stopped: %d deletes", fy.Count(storagetest.OpDelete))
					}
					// The deletes after the stop failed: the report, which a
					// real crash would not write, must not claim a complete run.
					if code != exitInterrupted || !rep.Interrupted && len(rep.Failed) == 0 {
						t.Errorf("exit %d, report interrupted=%v with %d failed: want exit %d, interrupted or failed deletes", code, rep.Interrupted, len(rep.Failed), exitInterrupted)
					}
					if got := rep.Tags + rep.Manifests + rep.TagIndexEntries + rep.LayerLinks + rep.Blobs; got > n {
						t.Errorf("report counts %d deletions, the store made %d", got, n)
					}
					if _, err := os.Stat(filepath.Join(root, storage.LockKey)); err != nil {
						t.Errorf("a run whose storage died left no lock: %v", err)
					}
					fc.assertKeptServe(t, root)
					fc.assertConverges(t, root, "--break-lock")
				})
			}
		})
	}
}

// TestGCDeleteFailsForEveryKey fails the delete of the Nth key, for every
// key a clean run deletes, the others succeeding: the run exits incomplete
// naming the key, skips the blobs if the failure came before them, loses
// nothing kept, releases its lock, and a rerun ends in the clean run's state.
func TestGCDeleteFailsForEveryKey(t *testing.T) {
	fc := newFaultCase(t, "--jobs", "1")
	for n := 1; n <= fc.deletes; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			root := fc.copy(t)
			fy := storagetest.NewFaulty(nil, storagetest.Fault{Op: storagetest.OpDelete, N: n})
			fy.Counted = storagetest.UnderV2
			release := withFaulty(t, root, fy)
			code, out, rep := gc(t, "--delete-untagged", "--jobs", "1", root)
			release()
			fired := fy.Fired()
			if len(fired) != 1 {
				t.Fatalf("injected %d faults, want 1", len(fired))
			}
			key := fired[0]
			if code != exitIncomplete {
				t.Errorf("exit %d, want %d", code, exitIncomplete)
			}
			if len(rep.Failed) != 1 || rep.Failed[0].Key != key || !strings.Contains(rep.Failed[0].Err, "injected fault") {
				t.Errorf("report failed = %+v, want %s with the injected error", rep.Failed, key)
			}
			if !strings.Contains(out, "1 delete failed") {
				t.Errorf("output does not count the failed delete:\n%s", out)
			}
			if k, err := storage.ParseKey(key); err == nil && k.Kind != storage.KeyBlobData {
				// A reference that failed to go may still need its blobs.
				if rep.Blobs != 0 || rep.BlobsSkipped != fc.cleanRep.Blobs {
					t.Errorf("%s failed, then %d blobs deleted and %d skipped: want 0 and %d", key, rep.Blobs, rep.BlobsSkipped, fc.cleanRep.Blobs)
				}
			}
			if _, err := os.Stat(filepath.Join(root, storage.LockKey)); err == nil {
				t.Error("an incomplete run left its lock")
			}
			fc.assertKeptServe(t, root)
			fc.assertConverges(t, root)
		})
	}
}

// TestGCReadFailsAnywhere fails one read (listing, stat or file read) of
// a clean run, for every kind of path the run reads, first in the walk and
// last in the recheck before the sweep: whatever the run makes of it,
// nothing a clean run keeps is lost, and a rerun ends in the clean run's
// state.
func TestGCReadFailsAnywhere(t *testing.T) {
	fc := newFaultCase(t, "--jobs", "1")
	first, last := map[string]storagetest.Call{}, map[string]storagetest.Call{}
	var classes []string
	for _, c := range fc.reads {
		class := c.Op.String() + " " + pathClass(c.Key)
		if _, ok := first[class]; !ok {
			first[class] = c
			classes = append(classes, class)
		}
		last[class] = c
	}
	if len(classes) < 15 {
		t.Fatalf("only %d kinds of read: %v", len(classes), classes)
	}
	for _, class := range classes {
		calls := []storagetest.Call{first[class]}
		if last[class] != first[class] {
			calls = append(calls, last[class])
		}
		for _, c := range calls {
			// The key's own count: a copy's inodes differ from the clean
			// run's, and the walk reads in inode order.
			nth := 0
			for _, o := range fc.reads {
				if o.Op == c.Op && o.Key == c.Key && o.N <= c.N {
					nth++
				}
			}
			t.Run(fmt.Sprintf("%s#%d", c.Op, c.N), func(t *testing.T) {
				t.Parallel()
				t.Logf("failing %s %s (its read #%d)", c.Op, c.Key, nth)
				root := fc.copy(t)
				fy := storagetest.NewFaulty(nil, storagetest.Fault{Op: c.Op, Key: c.Key, N: nth})
				fy.Counted = storagetest.UnderV2
				release := withFaulty(t, root, fy)
				code, _, _ := gc(t, "--delete-untagged", "--jobs", "1", root)
				release()
				if fired := fy.Fired(); len(fired) != 1 || fired[0] != c.Key {
					t.Fatalf("fault hit %v, want %s read %d times: the run does not read the same keys", fired, c.Key, nth)
				}
				switch code {
				case exitOK, exitError, exitIncomplete:
				default:
					t.Errorf("exit %d", code)
				}
				fc.assertKeptServe(t, root)
				fc.assertConverges(t, root)
			})
		}
	}
}

// pathClass names the kind of a store path: digests, prefix folders,
// repository and tag names replaced by placeholders.
func pathClass(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		switch {
		case len(p) >= 32:
			parts[i] = "<hex>"
		case i > 0 && parts[i-1] == "tags":
			parts[i] = "<tag>"
		case len(p) == 2 && i > 0 && strings.HasPrefix(parts[i-1], "sha"):
			parts[i] = "<xx>"
		}
	}
	s := strings.Join(parts, "/")
	const repos = "repositories/"
	if i := strings.Index(s, repos); i >= 0 {
		rest := s[i+len(repos):]
		if j := strings.Index(rest, "/_"); j >= 0 {
			rest = "<repo>" + rest[j:]
		} else {
			rest = "<dir>"
		}
		s = s[:i+len(repos)] + rest
	}
	return s
}

// TestGCFaultsOnS3 is TestGCStoppedAfterEveryDelete and
// TestGCDeleteFailsForEveryKey on the test S3 server, where deletes go in
// DeleteObjects batches, for a few N (each run needs a bucket of its own).
// The runs are not parallel: distribution's S3 driver (aws-sdk-go v1)
// races with itself when opened while another is in use.
func TestGCFaultsOnS3(t *testing.T) {
	f := newFixtureOn(t, onS3)
	src := bucketOf(f.where)
	endpoint := f.where[:len(f.where)-1]
	type run struct {
		stop   bool
		n      int
		bucket string
		where  []string
	}
	var runs []*run
	for _, stop := range []bool{true, false} {
		for _, n := range []int{1, 0, -1} { // the first, middle and last delete
			runs = append(runs, &run{stop: stop, n: n})
		}
	}
	clean := &run{}
	for _, r := range append(runs, clean) {
		r.bucket = storagetest.NewBucket(t)
		storagetest.CopyBucket(t, src, r.bucket)
		r.where = append(slices.Clone(endpoint), "s3://"+r.bucket+"/registry")
	}
	// Copies are new: a --min-age 0 run keeps what is less than a second
	// old (see newFixtureOn).
	time.Sleep(time.Second)

	fy := storagetest.NewFaulty(nil)
	fy.Counted = storagetest.UnderV2
	release := withFaulty(t, clean.where[len(clean.where)-1], fy)
	if code, _, _ := gc(t, append([]string{"--delete-untagged"}, clean.where...)...); code != 0 {
		t.Fatalf("clean run: exit %d", code)
	}
	release()
	want := storagetest.SnapshotS3(t, clean.bucket, "registry")
	deletes := fy.Count(storagetest.OpDelete)
	if deletes < 10 {
		t.Fatalf("the clean run made %d deletes", deletes)
	}
	for _, r := range runs {
		switch r.n {
		case 0:
			r.n = deletes / 2
		case -1:
			r.n = deletes
		}
		t.Run(fmt.Sprintf("stop=%v/%d", r.stop, r.n), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fy := storagetest.NewFaulty(nil, storagetest.Fault{Op: storagetest.OpDelete, N: r.n, Stop: r.stop})
			fy.Counted = storagetest.UnderV2
			fy.OnStop = cancel
			release := withFaulty(t, r.where[len(r.where)-1], fy)
			code, _, rep := gcCtx(t, ctx, append([]string{"--delete-untagged"}, r.where...)...)
			release()
			switch {
			case r.stop && code != exitInterrupted:
				t.Errorf("exit %d after the storage stopped, want %d", code, exitInterrupted)
			case !r.stop && (code != exitIncomplete || len(rep.Failed) != 1):
				t.Errorf("exit %d with %d failed deletes, want %d and 1", code, len(rep.Failed), exitIncomplete)
			}
			reg := storagetest.NewS3(t, r.bucket, "registry")
			for rt := range want.Tags {
				i := strings.LastIndexByte(rt, ':')
				if err := reg.Serves(context.Background(), rt[:i], rt[i+1:]); err != nil {
					t.Errorf("a tag the clean run keeps no longer serves: %v", err)
				}
			}
			args := []string{"--delete-untagged"}
			if r.stop {
				args = append(args, "--break-lock")
			}
			if code, _, _ := gc(t, append(args, r.where...)...); code != 0 {
				t.Errorf("rerun: exit %d", code)
			}
			if diff := cmp.Diff(want, storagetest.SnapshotS3(t, r.bucket, "registry")); diff != "" {
				t.Errorf("the rerun does not reach the clean run's final state (-clean +rerun):\n%s", diff)
			}
		})
	}
}

// bucketOf returns the bucket of gc arguments that end with s3://BUCKET/ROOT.
func bucketOf(where []string) string {
	b, _, _ := strings.Cut(strings.TrimPrefix(where[len(where)-1], "s3://"), "/")
	return b
}
