package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// runAuditCmd runs the audit command in-process and returns its exit
// status, stdout and stderr.
func runAuditCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"audit", "--quiet"}, args...)
	code := runT(context.Background(), args, &out, &errOut)
	t.Logf("regsweep %s: exit %d\n%s", strings.Join(args, " "), code, errOut.String())
	return code, out.String(), errOut.String()
}

// auditJSON runs the audit with --json and decodes its report.
func auditJSON(t *testing.T, args ...string) (int, *report.Audit) {
	t.Helper()
	code, out, _ := runAuditCmd(t, append([]string{"--json"}, args...)...)
	var a report.Audit
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("audit --json output is not JSON: %v\n%s", err, out)
	}
	return code, &a
}

// treeState records every file and folder under root: mode, size,
// modification time and content hash, to prove a run wrote nothing.
func treeState(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		s := fmt.Sprintf("%s %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out[p] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func blobFile(root string, d digest.Digest) string {
	return filepath.Join(root, "docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}

func flipByte(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Bit rot leaves the modification time alone.
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// damage is the gc fixture, plus one image broken each way and an aged
// upload, with the paths the audit must name.
type damage struct {
	*fixture
	goneBlob, rotBlob   string // blob data paths
	badLink, staleUp    string
	goneTag, rotTag     string
	linkTag, goneDigest string
}

func newDamage(t *testing.T) *damage {
	f := newFixture(t)
	r, root := f.reg, f.reg.Root
	gone := r.PushImage("dr/gone", storagetest.ImageOpts{Layers: 2})
	r.Tag("dr/gone", "v1", gone)
	rot := r.PushImage("dr/rot", storagetest.ImageOpts{Layers: 2, LayerSize: 4096})
	r.Tag("dr/rot", "v1", rot)
	link := r.PushImage("dr/link", storagetest.ImageOpts{})
	r.Tag("dr/link", "v1", link)
	up := r.StartUpload("dr/rot", 100)
	r.AgeAll(time.Now().Add(-10 * 24 * time.Hour)) // the upload is stale

	v2 := "docker/registry/v2/"
	d := &damage{
		fixture:    f,
		goneBlob:   v2 + "blobs/sha256/" + gone.Blobs[2].Encoded()[:2] + "/" + gone.Blobs[2].Encoded() + "/data",
		rotBlob:    v2 + "blobs/sha256/" + rot.Blobs[1].Encoded()[:2] + "/" + rot.Blobs[1].Encoded() + "/data",
		badLink:    v2 + "repositories/dr/link/_layers/sha256/" + link.Blobs[1].Encoded() + "/link",
		staleUp:    v2 + "repositories/dr/rot/_uploads/" + up,
		goneTag:    "dr/gone:v1",
		rotTag:     "dr/rot:v1",
		linkTag:    "dr/link:v1",
		goneDigest: gone.Blobs[2].String(),
	}
	// Blob data deleted (its folder stays), a byte flipped, a link cut short.
	if err := os.Remove(blobFile(root, gone.Blobs[2])); err != nil {
		t.Fatal(err)
	}
	flipByte(t, blobFile(root, rot.Blobs[1]))
	p := filepath.Join(root, d.badLink)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(link.Blobs[1].String()[:20]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	return d
}

func brokenTags(a *report.Audit) map[string]string {
	out := map[string]string{}
	for _, b := range a.Broken {
		out[b.Repo+":"+b.Tag] = b.Reason
	}
	return out
}

func TestAuditReportsEveryDamage(t *testing.T) {
	d := newDamage(t)
	root := d.reg.Root
	before, beforeState := treeState(t, root), storagetest.Snapshot(t, root)

	// Without --verify-digests: the flipped byte goes unseen, the rest not.
	code, a := auditJSON(t, root)
	if code != exitFindings || a.Healthy {
		t.Fatalf("exit %d, healthy %v: want %d", code, a.Healthy, exitFindings)
	}
	broken := brokenTags(a)
	if !strings.Contains(broken[d.goneTag], d.goneDigest) || !strings.Contains(broken[d.linkTag], "corrupt") || len(broken) != 2 {
		t.Errorf("broken images %v: want %s (missing blob) and %s (corrupt layer link) only", broken, d.goneTag, d.linkTag)
	}
	if len(a.MissingBlobs) != 1 || a.MissingBlobs[0].Path != d.goneBlob || a.MissingBlobs[0].ReferencedBy[0] != d.goneTag {
		t.Errorf("missing blobs %+v, want %s referenced by %s", a.MissingBlobs, d.goneBlob, d.goneTag)
	}
	if len(a.CorruptLinks) != 1 || a.CorruptLinks[0].Path != d.badLink {
		t.Errorf("corrupt links %+v, want %s", a.CorruptLinks, d.badLink)
	}
	if len(a.StaleUploads) != 1 || a.StaleUploads[0].Path != d.staleUp || a.StaleUploads[0].Size < 100 {
		t.Errorf("stale uploads %+v, want %s", a.StaleUploads, d.staleUp)
	}
	if a.Digests != nil {
		t.Error("digests verified without --verify-digests")
	}
	if len(a.OrphanLayerLinks) != 1 || !strings.Contains(a.OrphanLayerLinks[0].Path, "dr/gone/_layers/sha256/"+strings.TrimPrefix(d.goneDigest, "sha256:")) {
		t.Errorf("orphan layer links %+v: want the link to the deleted blob", a.OrphanLayerLinks)
	}
	// The fixture's own leftovers: the empty repository's untagged image
	// and the orphan pushed blob are garbage, not damage.
	if len(a.EmptyRepositories) != 0 || a.GC.Blobs != 1 {
		t.Errorf("empty repositories %+v, gc would delete %d blobs (want 1)", a.EmptyRepositories, a.GC.Blobs)
	}

	// With it, the flipped byte too, with the tag it breaks.
	code, a = auditJSON(t, "--verify-digests", "--jobs", "3", root)
	if code != exitFindings || a.Digests == nil {
		t.Fatalf("exit %d, digests %v", code, a.Digests)
	}
	m := a.Digests.Mismatches
	if len(m) != 1 || m[0].Path != d.rotBlob || m[0].ContentDigest == "" || len(m[0].UsedBy) != 1 || m[0].UsedBy[0] != d.rotTag {
		t.Errorf("mismatches %+v, want %s used by %s", m, d.rotBlob, d.rotTag)
	}
	if len(a.Digests.Unreadable) != 0 || a.Digests.Blobs != a.Scanned.Blobs || a.Scanned.Bytes == nil || a.Digests.Bytes != *a.Scanned.Bytes {
		t.Errorf("digests %+v: want every blob of %+v read, none unreadable", a.Digests, a.Scanned)
	}

	// Text and Markdown name every path too.
	for _, format := range [][]string{nil, {"--markdown"}} {
		code, out, errOut := runAuditCmd(t, append(format, "--verify-digests", root)...)
		if code != exitFindings || !strings.Contains(errOut, "2 broken images, 1 digest mismatch") {
			t.Errorf("%v: exit %d, stderr %q", format, code, errOut)
		}
		for _, p := range []string{d.goneBlob, d.rotBlob, d.badLink, d.staleUp, d.goneTag, d.rotTag} {
			if !strings.Contains(out, p) {
				t.Errorf("%v output does not name %s:\n%s", format, p, out)
			}
		}
	}

	if after := treeState(t, root); !reflect.DeepEqual(before, after) {
		for p, s := range after {
			if before[p] != s {
				t.Errorf("%s changed: %q -> %q", p, before[p], s)
			}
		}
		t.Errorf("the audit changed the registry (%d -> %d entries)", len(before), len(after))
	}
	if !reflect.DeepEqual(beforeState, storagetest.Snapshot(t, root)) {
		t.Error("the registry's state changed")
	}
}

func TestAuditExitStatus(t *testing.T) {
	f := newFixture(t)
	root := f.reg.Root
	code, out, _ := runAuditCmd(t, "--verify-digests", root)
	if code != exitOK || !strings.Contains(out, "result: healthy") {
		t.Fatalf("a sound registry: exit %d\n%s", code, out)
	}
	// Bit rot alone: invisible without --verify-digests, status 4 with it.
	flipByte(t, blobFile(root, f.sharedWithKept))
	if code, _, _ := runAuditCmd(t, root); code != exitOK {
		t.Errorf("bit rot without --verify-digests: exit %d, want 0", code)
	}
	if code, _, errOut := runAuditCmd(t, "--verify-digests", root); code != exitFindings || !strings.Contains(errOut, "1 digest mismatch") {
		t.Errorf("bit rot with --verify-digests: exit %d (%s), want %d", code, errOut, exitFindings)
	}
	for _, args := range [][]string{{"--json", "--markdown", root}, {}, {"--min-age", "-1h", root}, {"--jobs", "-1", root}} {
		if code, _, _ := runAuditCmd(t, args...); code != exitUsage {
			t.Errorf("audit %v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, errOut := runAuditCmd(t, t.TempDir()); code != exitError || !strings.Contains(errOut, "not a registry") {
		t.Errorf("a folder that is no registry: exit %d, %s", code, errOut)
	}
}

func TestAuditEstimateIsWhatGCDeletes(t *testing.T) {
	for _, args := range [][]string{{}, {"--delete-untagged"}} {
		f := newFixture(t)
		code, a := auditJSON(t, append([]string{"--min-age", "0"}, append(args, f.reg.Root)...)...)
		if code != exitOK {
			t.Fatalf("audit %v: exit %d", args, code)
		}
		before := len(f.reg.State().Blobs)
		code, _, rep := gc(t, append(args, f.reg.Root)...)
		if code != exitOK {
			t.Fatalf("gc %v: exit %d", args, code)
		}
		if a.GC.Counts != rep.Counts {
			t.Errorf("%v: audit estimated %+v, gc deleted %+v", args, a.GC.Counts, rep.Counts)
		}
		var gcBytes int64
		for _, r := range a.Repositories {
			gcBytes += r.GCBytes
		}
		if gone := before - len(f.reg.State().Blobs); gone != a.GC.Blobs || gcBytes > a.GC.Bytes {
			t.Errorf("%v: %d blobs deleted, audit said %d; per-repository bytes %d of %d", args, gone, a.GC.Blobs, gcBytes, a.GC.Bytes)
		}
	}
}

func TestAuditOnS3(t *testing.T) {
	r, where := newRegistry(t, onS3)
	ok := r.PushImage("ok", storagetest.ImageOpts{Layers: 2})
	r.Tag("ok", "v1", ok)
	gone := r.PushImage("dr/gone", storagetest.ImageOpts{})
	r.Tag("dr/gone", "v1", gone)
	rot := r.PushImage("dr/rot", storagetest.ImageOpts{})
	r.Tag("dr/rot", "v1", rot)
	link := r.PushImage("dr/link", storagetest.ImageOpts{})
	r.Tag("dr/link", "v1", link)

	c := storagetest.S3Client(t)
	bucket := strings.TrimPrefix(where[len(where)-1], "s3://")
	bucket, prefix, _ := strings.Cut(bucket, "/")
	key := func(p string) *string { return aws.String(prefix + "/docker/registry/v2/" + p) }
	blobKey := func(d digest.Digest) string {
		return "blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"
	}
	ctx := context.Background()
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: key(blobKey(gone.Blobs[1]))}); err != nil {
		t.Fatal(err)
	}
	obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: key(blobKey(rot.Blobs[1]))})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	b[3] ^= 1
	badLink := "repositories/dr/link/_layers/sha256/" + link.Blobs[1].Encoded() + "/link"
	for k, v := range map[string][]byte{blobKey(rot.Blobs[1]): b, badLink: []byte("sha256:garbage")} {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: key(k), Body: bytes.NewReader(v)}); err != nil {
			t.Fatal(err)
		}
	}
	before := r.State()

	code, a := auditJSON(t, append([]string{"--verify-digests", "--min-age", "0"}, where...)...)
	if code != exitFindings {
		t.Fatalf("exit %d", code)
	}
	broken := brokenTags(a)
	if len(broken) != 2 || broken["dr/gone:v1"] == "" || !strings.Contains(broken["dr/link:v1"], "corrupt") {
		t.Errorf("broken %v", broken)
	}
	if len(a.CorruptLinks) != 1 || a.CorruptLinks[0].Path != "docker/registry/v2/"+badLink {
		t.Errorf("corrupt links %+v", a.CorruptLinks)
	}
	if m := a.Digests.Mismatches; len(m) != 1 || m[0].Path != "docker/registry/v2/"+blobKey(rot.Blobs[1]) {
		t.Errorf("mismatches %+v", m)
	}
	if len(a.MissingBlobs) != 1 || a.MissingBlobs[0].Path != "docker/registry/v2/"+blobKey(gone.Blobs[1]) {
		t.Errorf("missing %+v", a.MissingBlobs)
	}
	if !reflect.DeepEqual(before, r.State()) {
		t.Error("the audit changed the bucket")
	}
}
