package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

// gcInBackground starts gc in a goroutine; the returned func waits for it.
func gcInBackground(t *testing.T, args ...string) (wait func() (int, *report.Report)) {
	t.Helper()
	type result struct{ code int }
	done := make(chan result, 1)
	rep := filepath.Join(t.TempDir(), "report.json")
	args = append([]string{"gc", "--quiet", "--report", rep}, args...)
	var out strings.Builder
	go func() {
		code := runT(context.Background(), args, &out, &out)
		done <- result{code: code}
	}()
	return func() (int, *report.Report) {
		r := <-done
		t.Logf("regsweep %s: exit %d\n%s", strings.Join(args, " "), r.code, out.String())
		return r.code, readReport(t, rep)
	}
}

// waitForLock waits until a run holds the lock at the root of the folder
// registry root: it has set up its signal handler and taken its start time.
func waitForLock(t *testing.T, root string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The lock is taken once its content is written: a file just
		// created (O_EXCL, then written) is not yet a lock anyone can
		// read, and a run stopped in between cannot tell it is its own.
		if b, err := os.ReadFile(filepath.Join(root, storage.LockKey)); err == nil && json.Valid(b) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("gc never took its lock")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// pusher pushes images into a registry through its own distribution
// namespace (storagetest.Registry is not safe for concurrent use, and a
// registry process has its own), and remembers the tags it pushed.
type pusher struct {
	reg    *storagetest.Registry
	shared []digest.Digest // blobs of kept images, for SharedLayers
	keep   map[string]bool // "repo:tag" that keep the shared blobs
	repos  []string
	tags   []string // "repo:tag"
	n      int
}

// push pushes and tags one image (or index) of a kind that varies with n.
func (p *pusher) push(round int) {
	p.n++
	repo := p.repos[p.n%len(p.repos)]
	tag := fmt.Sprintf("pushed-%d-%d", round, p.n)
	var img storagetest.Image
	switch p.n % 4 {
	case 0: // new layers only
		img = p.reg.PushImage(repo, storagetest.ImageOpts{Layers: 2})
	case 1: // old layers of kept images and a new one
		img = p.reg.PushImage(repo, storagetest.ImageOpts{OCI: true, Layers: 1, SharedLayers: []digest.Digest{p.shared[p.n%len(p.shared)], p.shared[(p.n*7)%len(p.shared)]}})
	case 2: // an index over two new children, and a signature of it
		a := p.reg.PushImage(repo, storagetest.ImageOpts{OCI: true})
		b := p.reg.PushImage(repo, storagetest.ImageOpts{OCI: true, SharedLayers: p.shared[p.n%len(p.shared) : p.n%len(p.shared)+1]})
		img = p.reg.PushIndex(repo, true, a, b)
		p.reg.PushReferrer(repo, img, storagetest.ArtifactSignature)
	case 3: // into a repository the run never saw
		repo = fmt.Sprintf("pushed/round-%d", round)
		img = p.reg.PushImage(repo, storagetest.ImageOpts{Layers: 1, SharedLayers: p.shared[p.n%len(p.shared) : p.n%len(p.shared)+1]})
	}
	p.reg.Tag(repo, tag, img)
	p.tags = append(p.tags, repo+":"+tag)
	if p.n%5 == 0 {
		// Untagged, and new: garbage for a later round, safe in this one.
		p.reg.PushImage(repo, storagetest.ImageOpts{Layers: 1})
	}
}

// assertServes checks that every tag in tags serves whole.
func assertServes(t *testing.T, reg *storagetest.Registry, tags []string, when string) {
	t.Helper()
	reg.Reopen()
	var failed []string
	for _, rt := range tags {
		i := strings.LastIndexByte(rt, ':')
		if err := reg.Serves(context.Background(), rt[:i], rt[i+1:]); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		t.Fatalf("%s: %d of %d tags do not serve:\n%s", when, len(failed), len(tags), strings.Join(failed, "\n"))
	}
}

// TestGCConcurrentPushes pushes images through distribution's storage code
// into a registry while gc --delete-untagged --min-age 0 runs on it, round
// after round: images with new layers, with layers of kept images, indexes
// with a signature, images in repositories the run never listed, and new
// untagged images (garbage for the next round). Before each round, some of
// the registry's tags are removed, so every run has work. Every image pushed,
// and every tag the registry still has, must serve whole after each run.
func TestGCConcurrentPushes(t *testing.T) {
	t.Run("filesystem", func(t *testing.T) {
		// A registry of about 3,000 blobs: a run takes long enough for
		// pushes to land in its walk, its recheck and its sweep.
		root := filepath.Join(t.TempDir(), "registry")
		g := gen.Build(gen.Options{Blobs: 3000, Seed: 5})
		if _, err := g.Write(context.Background(), root, 8); err != nil {
			t.Fatal(err)
		}
		p := &pusher{reg: storagetest.New(t, root), keep: map[string]bool{}}
		// Layers to share: those of the first tag of each repository, a
		// tag no round removes (a layer only a removed tag used would be
		// old garbage: see TestGCPushReusingGarbageDuringSweep).
		for _, r := range g.Repos {
			if r.Empty || r.UploadsOnly || len(r.Tags) == 0 {
				continue
			}
			p.repos = append(p.repos, r.Name)
			tag := r.Tags[0]
			p.keep[r.Name+":"+tag.Name] = true
			for _, b := range g.Manifest(tag.Current()).Blobs {
				if !strings.HasPrefix(b, "sha512") {
					p.shared = append(p.shared, digest.Digest(b))
				}
			}
		}
		if len(p.shared) < 10 {
			t.Fatalf("only %d layers to share", len(p.shared))
		}
		locked := func() bool {
			_, err := os.Stat(filepath.Join(root, storage.LockKey))
			return err == nil
		}
		pushRounds(t, p, storagetest.New(t, root), 5, locked, root)
	})
	t.Run("s3", func(t *testing.T) {
		f := newFixtureOn(t, onS3)
		bucket := bucketOf(f.where)
		p := &pusher{reg: storagetest.NewS3(t, bucket, "registry"), shared: append([]digest.Digest{f.sharedWithKept}, f.indexChildren[0].Blobs...)}
		p.keep = map[string]bool{"library/base:latest": true, "team/multi:v2": true}
		p.repos = []string{"team/app", "library/base", "team/multi"}
		client := storagetest.S3Client(t)
		locked := func() bool {
			_, err := client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("registry/" + storage.LockKey)})
			return err == nil
		}
		pushRounds(t, p, storagetest.NewS3(t, bucket, "registry"), 2, locked, f.where...)
	})
}

// pushRounds runs gc rounds times on the registry at where, pushing with p
// from the moment the run holds its lock (locked) until it ends; checker
// reads the registry for distribution.
func pushRounds(t *testing.T, p *pusher, checker *storagetest.Registry, rounds int, locked func() bool, where ...string) {
	t.Helper()
	var before []string
	for rt := range checker.State().Tags {
		before = append(before, rt)
	}
	slices.Sort(before)
	for round := range rounds {
		if round > 0 {
			// Untag a few of the registry's images: garbage for this run.
			var removable []string
			for _, rt := range before {
				if !p.keep[rt] {
					removable = append(removable, rt)
				}
			}
			for k := range min(8, len(removable)/2) {
				rt := removable[(round*37+k*11)%len(removable)]
				if !slices.Contains(before, rt) {
					continue
				}
				i := strings.LastIndexByte(rt, ':')
				p.reg.Untag(rt[:i], rt[i+1:])
				before = slices.DeleteFunc(before, func(s string) bool { return s == rt })
			}
		}
		wait := gcInBackground(t, append([]string{"--delete-untagged", "--min-age", "0"}, where...)...)
		deadline := time.Now().Add(10 * time.Second)
		for !locked() {
			if time.Now().After(deadline) {
				t.Fatal("gc never took its lock")
			}
			time.Sleep(200 * time.Microsecond)
		}
		pushed := 0
		for {
			p.push(round)
			pushed++
			if pushed >= 3 && !locked() {
				break // the run is over
			}
		}
		code, rep := wait()
		t.Logf("round %d: %d pushes during the run; deleted %+v; %d deletions dropped by the recheck", round, pushed, rep.Counts, rep.Kept.ChangedDuringRun)
		if code != exitOK {
			t.Errorf("round %d: exit %d", round, code)
		}
		if rep.Blobs == 0 {
			t.Errorf("round %d deleted no blob: nothing was tested", round)
		}
		assertServes(t, checker, p.tags, fmt.Sprintf("round %d, pushed images", round))
	}
	assertServes(t, checker, before, "the registry's tags")
}

// step is something a test does while gc waits, before the first storage
// call at matches.
type step struct {
	at  func(storagetest.Call) bool
	act func()
}

// gcWithSteps runs gc --delete-untagged --jobs 1 on f's registry in the
// background and performs the steps, in order, each while the run waits at
// its call. The steps run on the test goroutine.
func gcWithSteps(t *testing.T, f *fixture, steps ...step) (int, *report.Report) {
	t.Helper()
	fy := storagetest.NewFaulty(nil)
	fy.Counted = storagetest.UnderV2
	acts := make(chan func())
	acked := make(chan struct{})
	var mu sync.Mutex
	next := 0
	fy.Before = func(c storagetest.Call) {
		mu.Lock()
		defer mu.Unlock() // holds every other call of the run until the step is done
		if next < len(steps) && steps[next].at(c) {
			acts <- steps[next].act
			<-acked
			next++
		}
	}
	release := withFaulty(t, f.reg.Root, fy)
	defer release()
	wait := gcInBackground(t, append([]string{"--delete-untagged", "--min-age", "0", "--jobs", "1"}, f.where...)...)
	done := make(chan struct{})
	var code int
	var rep *report.Report
	go func() {
		code, rep = wait()
		close(done)
	}()
	for ran := 0; ; ran++ {
		select {
		case act := <-acts:
			act()
			acked <- struct{}{}
			continue
		case <-done:
		}
		if ran != len(steps) {
			t.Fatalf("the run ended after %d of %d steps", ran, len(steps))
		}
		break
	}
	return code, rep
}

// nthCall matches the nth call (1-based) of kind op on key.
func nthCall(op storagetest.Op, key string, n int) func(storagetest.Call) bool {
	seen := 0
	return func(c storagetest.Call) bool {
		if c.Op == op && c.Key == key {
			seen++
		}
		return seen == n && c.Op == op && c.Key == key
	}
}

func firstDelete(c storagetest.Call) bool { return c.Op == storagetest.OpDelete }

// TestGCPushDuringRun pushes at chosen instants of a --delete-untagged
// --min-age 0 run, with the run waiting, and checks that what was pushed
// serves whole afterwards.
func TestGCPushDuringRun(t *testing.T) {
	// The recheck starts by listing the repositories a second time (a step
	// counts calls: one each).
	// An old untagged manifest tagged again, and an image reusing a layer
	// only an untagged manifest had: the recheck must see both and drop
	// them from the plan. On a registry last written an hour ago, the
	// recheck takes the repositories whose folders and links kept their
	// times from the first walk, and must still see the two that changed.
	for _, aged := range []bool{false, true} {
		name := "before-the-recheck"
		if aged {
			name += "-on-an-aged-registry"
		}
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			if aged {
				f.reg.AgeAll(time.Now().Add(-time.Hour))
			}
			old := f.untagged[0]
			var reuse storagetest.Image
			code, rep := gcWithSteps(t, f, step{nthCall(storagetest.OpReadDir, storage.RepositoriesDir(), 2), func() {
				f.reg.Tag(old.Repo, "revived", old)
				reuse = f.reg.PushImage("team/app", storagetest.ImageOpts{SharedLayers: f.exclusiveOfGone[:1]})
				f.reg.Tag("team/app", "reuse", reuse)
			}})
			if code != exitOK {
				t.Errorf("exit %d", code)
			}
			assertServes(t, f.reg, append(f.keptTags, old.Repo+":revived", "team/app:reuse"), "after gc")
			if rep.Kept.ChangedDuringRun == 0 {
				t.Error("the report counts nothing changed during the run")
			}
		})
	}

	t.Run("during-the-sweep", func(t *testing.T) {
		// New images, some with layers of kept images, an index and a
		// signature, pushed after the recheck: new content is never
		// deleted, and old content that is kept stays kept.
		f := newFixture(t)
		var tags []string
		code, _ := gcWithSteps(t, f, step{firstDelete, func() {
			a := f.reg.PushImage("team/app", storagetest.ImageOpts{OCI: true, SharedLayers: []digest.Digest{f.sharedWithKept}})
			b := f.reg.PushImage("team/app", storagetest.ImageOpts{OCI: true, Layers: 2})
			idx := f.reg.PushIndex("team/app", true, a, b)
			f.reg.PushReferrer("team/app", idx, "")
			f.reg.Tag("team/app", "during", idx)
			f.reg.Tag("newrepo", "v1", f.reg.PushImage("newrepo", storagetest.ImageOpts{SharedLayers: []digest.Digest{f.sharedWithKept}}))
			tags = []string{"team/app:during", "newrepo:v1"}
		}})
		if code != exitOK {
			t.Errorf("exit %d", code)
		}
		assertServes(t, f.reg, append(f.keptTags, tags...), "after gc")
	})

	t.Run("layer-stamped-before-the-start", func(t *testing.T) {
		// A layer uploaded just after the run started, whose file time the
		// coarse kernel clock (or S3's whole seconds) puts a little before
		// the start, and whose manifest comes after the recheck: with
		// --min-age 0 the layer is still newer than the run.
		f := newFixture(t)
		var layer digest.Digest
		code, _ := gcWithSteps(t, f,
			step{func(storagetest.Call) bool { return true }, func() {
				layer = f.reg.PushBlob("team/app", 200)
				started := lockStartedAt(t, f.reg.Root)
				backdate(t, f.reg.Root, layer, "team/app", started.Add(-2*time.Millisecond))
			}},
			step{firstDelete, func() {
				f.reg.Tag("team/app", "late", f.reg.PushImage("team/app", storagetest.ImageOpts{SharedLayers: []digest.Digest{layer}}))
			}})
		if code != exitOK {
			t.Errorf("exit %d", code)
		}
		assertServes(t, f.reg, append(f.keptTags, "team/app:late"), "after gc")
	})
}

// TestGCPushReusingGarbageDuringSweep shows what the recheck cannot cover:
// content the run planned to delete (an old untagged manifest, an old layer
// only it used) made reachable again by a push that lands after the recheck.
// Neither the grace period (the content is old) nor the recheck (already
// done) protects it: only a registry in read-only mode does. The test runs
// only with REGSWEEP_KNOWN_GAPS=1, and then fails, to show the loss.
func TestGCPushReusingGarbageDuringSweep(t *testing.T) {
	if os.Getenv("REGSWEEP_KNOWN_GAPS") == "" {
		t.Skip("known gap (README, Safety): a push after the recheck that reuses what the run deletes; set REGSWEEP_KNOWN_GAPS=1 to see it")
	}
	f := newFixture(t)
	old := f.untagged[0]
	code, _ := gcWithSteps(t, f, step{firstDelete, func() {
		f.reg.Tag(old.Repo, "revived", old)
		f.reg.Tag("team/app", "reuse", f.reg.PushImage("team/app", storagetest.ImageOpts{SharedLayers: f.exclusiveOfGone[:1]}))
	}})
	if code != exitOK {
		t.Errorf("exit %d", code)
	}
	assertServes(t, f.reg, []string{old.Repo + ":revived", "team/app:reuse"}, "after gc")
}

// lockStartedAt reads the start time of the run holding the lock of the
// folder registry root.
func lockStartedAt(t *testing.T, root string) time.Time {
	t.Helper()
	s, err := storage.OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := storage.ReadLock(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return info.StartedAt
}

// backdate sets the modification time of blob d's data and of repo's layer
// link to it, as a coarse clock would have stamped them.
func backdate(t *testing.T, root string, d digest.Digest, repo string, at time.Time) {
	t.Helper()
	sd, err := storage.ParseDigest(d.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{storage.BlobDataPath(sd), storage.LayerLinkPath(repo, sd)} {
		if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(key)), at, at); err != nil {
			t.Fatal(err)
		}
	}
}
