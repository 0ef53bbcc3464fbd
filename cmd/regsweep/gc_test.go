package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// gc runs the gc command in-process and returns its exit status, output and
// JSON report.
func gc(t *testing.T, args ...string) (int, string, *report.Report) {
	t.Helper()
	rep := filepath.Join(t.TempDir(), "report.json")
	var out, errOut bytes.Buffer
	args = append([]string{"gc", "--quiet", "--min-age", "0", "--report", rep}, args...)
	code := runT(context.Background(), args, &out, &errOut)
	t.Logf("regsweep %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	var r report.Report
	if b, err := os.ReadFile(rep); err == nil {
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("report is not JSON: %v", err)
		}
	}
	return code, out.String() + errOut.String(), &r
}

func TestGCRefusesAFolderThatIsNoRegistry(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := gc(t, dir)
	if code == 0 || !strings.Contains(out, "not a registry rootdirectory") {
		t.Fatalf("exit %d, output %q: want a refusal", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Fatal("a refused run touched the folder")
	}
	if code, _, _ := gc(t); code != exitUsage {
		t.Fatalf("gc without ROOT: exit %d, want %d", code, exitUsage)
	}
}

// fixture is a registry with one of each case of the issue.
type fixture struct {
	reg *storagetest.Registry
	// where are the gc arguments that name the registry's storage.
	where []string
	// kept and gone are the tags' images that must be served, and the
	// untagged images whose revisions --delete-untagged removes.
	keptTags         []string // "repo:tag"
	untagged         []storagetest.Image
	orphan           digest.Digest
	exclusiveOfGone  []digest.Digest
	sharedWithKept   digest.Digest
	referrers        []storagetest.Image
	indexChildren    []storagetest.Image
	crossRepoUntaged storagetest.Image
}

// backend names where a fixture lives: a folder, or a bucket on the test
// S3 server (skipped when none is configured).
type backend string

const (
	onFS backend = "filesystem"
	onS3 backend = "s3"
)

var backends = []backend{onFS, onS3}

func newFixture(t *testing.T) *fixture { return newFixtureOn(t, onFS) }

// newRegistry opens an empty registry on b and the gc arguments naming it.
func newRegistry(t *testing.T, b backend) (*storagetest.Registry, []string) {
	if b == onFS {
		root := t.TempDir()
		return storagetest.New(t, root), []string{root}
	}
	endpoint, access, secret, region := storagetest.S3Server(t)
	bucket := storagetest.NewBucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	r := storagetest.NewS3(t, bucket, "registry")
	return r, []string{"--s3-endpoint", endpoint, "--s3-region", region, "--s3-force-path-style", "s3://" + bucket + "/registry"}
}

func newFixtureOn(t *testing.T, b backend) *fixture {
	r, where := newRegistry(t, b)
	f := &fixture{reg: r, where: where}
	tag := func(repo, tag string, img storagetest.Image) {
		r.Tag(repo, tag, img)
		f.keptTags = append(f.keptTags, repo+":"+tag)
	}

	base := r.PushImage("library/base", storagetest.ImageOpts{Layers: 2})
	tag("library/base", "latest", base)
	f.sharedWithKept = base.Blobs[1]

	// Nested repositories; an image re-tagged leaves an untagged revision.
	old := r.PushImage("team/app", storagetest.ImageOpts{OCI: true, Layers: 2, SharedLayers: base.Blobs[1:2]})
	r.Tag("team/app", "latest", old)
	cur := r.PushImage("team/app", storagetest.ImageOpts{Layers: 1, ForeignLayer: true})
	tag("team/app", "latest", cur)
	f.untagged = append(f.untagged, old)
	f.exclusiveOfGone = append(f.exclusiveOfGone, old.Blobs[0], old.Blobs[2], old.Blobs[3])

	debug := r.PushImage("team/app/debug", storagetest.ImageOpts{OCI: true})
	tag("team/app/debug", "v1", debug)

	// An index over untagged children, and a signature of an SBOM of it.
	amd := r.PushImage("team/multi", storagetest.ImageOpts{OCI: true})
	arm := r.PushImage("team/multi", storagetest.ImageOpts{OCI: true})
	idx := r.PushIndex("team/multi", true, amd, arm)
	tag("team/multi", "v2", idx)
	f.indexChildren = []storagetest.Image{amd, arm}
	sbom := r.PushReferrer("team/multi", idx, storagetest.ArtifactSBOM)
	sig := r.PushReferrer("team/multi", sbom, storagetest.ArtifactSignature)
	f.referrers = []storagetest.Image{sbom, sig}

	// A Docker manifest list over untagged schema2 children.
	l1 := r.PushImage("team/list", storagetest.ImageOpts{})
	l2 := r.PushImage("team/list", storagetest.ImageOpts{})
	tag("team/list", "stable", r.PushIndex("team/list", false, l1, l2))
	f.indexChildren = append(f.indexChildren, l1, l2)

	// Untagged here, tagged in mirror: the revision goes, the blobs stay.
	shared := r.PushImage("team/app", storagetest.ImageOpts{})
	f.crossRepoUntaged = shared
	tag("mirror", "stable", r.CopyImage(shared, "mirror"))

	// A signature of an untagged image goes with it.
	lone := r.PushImage("team/app", storagetest.ImageOpts{OCI: true})
	loneSig := r.PushReferrer("team/app", lone, storagetest.ArtifactSignature)
	f.untagged = append(f.untagged, lone, loneSig)

	// An orphan blob, and a repository whose only tag was removed.
	f.orphan = r.PushBlob("team/app", 300)
	gone := r.PushImage("empty", storagetest.ImageOpts{})
	r.Tag("empty", "old", gone)
	r.Untag("empty", "old")
	f.untagged = append(f.untagged, gone)

	if b == onFS {
		r.AgeAll(time.Now().Add(-48 * time.Hour))
	} else {
		// S3 sets LastModified, to the second, and gc's cutoff allows a
		// second of slack for it: wait so that even --min-age 0 sees the
		// fixture as older than the run.
		time.Sleep(1100 * time.Millisecond)
	}
	return f
}

func (f *fixture) assertServes(t *testing.T) {
	t.Helper()
	f.reg.Reopen()
	for _, rt := range f.keptTags {
		repo, tag, _ := strings.Cut(rt, ":")
		if err := f.reg.Serves(context.Background(), repo, tag); err != nil {
			t.Errorf("after gc: %v", err)
		}
	}
}

func TestGCKeepsUntaggedByDefault(t *testing.T) {
	forBackends(t, testGCKeepsUntaggedByDefault)
}

func testGCKeepsUntaggedByDefault(t *testing.T, b backend) {
	f := newFixtureOn(t, b)
	before := f.reg.State()
	code, _, rep := gc(t, f.where...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	f.assertServes(t)
	after := f.reg.State()
	if len(after.Revisions) != len(before.Revisions) {
		t.Errorf("revisions %d -> %d: without --delete-untagged every manifest stays", len(before.Revisions), len(after.Revisions))
	}
	if after.Blobs[f.orphan] || after.LayerLinks["team/app@"+f.orphan.String()] {
		t.Error("the orphan blob or its layer link survived")
	}
	if rep.Blobs != 1 || rep.LayerLinks != 1 || rep.Manifests != 0 || rep.Tags != 0 {
		t.Errorf("report counts %+v, want 1 blob and 1 layer link", rep.Counts)
	}
	if rep.Bytes != 300 {
		t.Errorf("bytes_reclaimed %d, want 300", rep.Bytes)
	}
	for _, d := range append(f.exclusiveOfGone, f.sharedWithKept) {
		if !after.Blobs[d] {
			t.Errorf("blob %s of a kept manifest was deleted", d)
		}
	}
}

func TestGCDeleteUntagged(t *testing.T) {
	forBackends(t, testGCDeleteUntagged)
}

func testGCDeleteUntagged(t *testing.T, b backend) {
	f := newFixtureOn(t, b)
	code, _, rep := gc(t, append([]string{"--delete-untagged"}, f.where...)...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	f.assertServes(t)
	after := f.reg.State()
	for _, img := range f.untagged {
		if after.Revisions[img.Repo+"@"+img.Digest.String()] || after.Blobs[img.Digest] {
			t.Errorf("untagged %s@%s survived", img.Repo, img.Digest)
		}
	}
	for _, d := range f.exclusiveOfGone {
		if after.Blobs[d] {
			t.Errorf("blob %s only an untagged manifest used survived", d)
		}
	}
	if !after.Blobs[f.sharedWithKept] {
		t.Error("a layer shared with a kept image was deleted")
	}
	for _, img := range append(f.referrers, f.indexChildren...) {
		if !after.Revisions[img.Repo+"@"+img.Digest.String()] {
			t.Errorf("%s@%s (child or referrer of a kept manifest) was deleted", img.Repo, img.Digest)
		}
		for _, b := range img.Blobs {
			if !after.Blobs[b] {
				t.Errorf("blob %s of %s@%s was deleted", b, img.Repo, img.Digest)
			}
		}
	}
	x := f.crossRepoUntaged
	if after.Revisions["team/app@"+x.Digest.String()] {
		t.Error("the revision untagged in team/app survived")
	}
	if !after.Revisions["mirror@"+x.Digest.String()] || !after.Blobs[x.Digest] {
		t.Error("the manifest tagged in mirror lost its revision or blob")
	}
	if after.TagIndex["team/app:latest@"+f.untagged[0].Digest.String()] {
		t.Error("the tag history entry of a deleted manifest survived")
	}
	if rep.Manifests != len(f.untagged)+1 {
		t.Errorf("manifests_deleted %d, want %d", rep.Manifests, len(f.untagged)+1)
	}
	var app *report.Repository
	for i := range rep.Repositories {
		if rep.Repositories[i].Name == "team/app" {
			app = &rep.Repositories[i]
		}
	}
	if app == nil || app.Manifests != 4 {
		t.Errorf("team/app in report: %+v, want 4 manifests deleted", app)
	}
}

func TestGCDryRunReportsExactlyWhatARunDeletes(t *testing.T) {
	forBackends(t, testGCDryRun)
}

func testGCDryRun(t *testing.T, b backend) {
	f := newFixtureOn(t, b)
	before := f.reg.State()
	code, out, dry := gc(t, append([]string{"--dry-run", "--delete-untagged"}, f.where...)...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if after := f.reg.State(); len(after.Blobs) != len(before.Blobs) || len(after.Revisions) != len(before.Revisions) || len(after.LayerLinks) != len(before.LayerLinks) {
		t.Fatal("a dry run deleted something")
	}
	if !strings.Contains(out, "would delete") || !dry.DryRun {
		t.Errorf("dry run output does not say so")
	}
	_, _, real := gc(t, append([]string{"--delete-untagged"}, f.where...)...)
	if dry.Counts != real.Counts {
		t.Errorf("dry run %+v, real run %+v", dry.Counts, real.Counts)
	}
	after := f.reg.State()
	if got := len(before.Blobs) - len(after.Blobs); got != dry.Blobs {
		t.Errorf("%d blobs went, dry run said %d", got, dry.Blobs)
	}
	// A second run finds nothing more.
	_, _, again := gc(t, append([]string{"--delete-untagged"}, f.where...)...)
	if again.Counts != (report.Report{}).Counts {
		t.Errorf("second run deleted %+v", again.Counts)
	}
}

func TestGCMinAgeKeepsRecentObjects(t *testing.T) {
	f := newFixture(t)
	fresh := f.reg.PushBlob("team/app", 100) // pushed now, unreferenced
	recent := f.reg.PushImage("team/app", storagetest.ImageOpts{})
	args := []string{"gc", "--quiet", "--delete-untagged", "--min-age", "1h", f.reg.Root}
	var out bytes.Buffer
	if code := runT(context.Background(), args, &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	after := f.reg.State()
	if !after.Blobs[fresh] || !after.LayerLinks["team/app@"+fresh.String()] {
		t.Error("a blob pushed a moment ago was deleted")
	}
	if !after.Revisions["team/app@"+recent.Digest.String()] || !after.Blobs[recent.Blobs[1]] {
		t.Error("an untagged image pushed a moment ago was deleted")
	}
	if after.Blobs[f.orphan] {
		t.Error("an old orphan blob survived")
	}
	if !strings.Contains(out.String(), "too recent") {
		t.Errorf("the report does not count what was too recent:\n%s", out.String())
	}
}

// forBackends runs test on a filesystem registry and on one in a bucket of
// the test S3 server.
func forBackends(t *testing.T, test func(*testing.T, backend)) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) { test(t, b) })
	}
}
