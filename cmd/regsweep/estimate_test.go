package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

// runAt runs one command line in-process as of now (env.now) and returns
// its exit status, stdout and stderr.
func runAt(t *testing.T, now time.Time, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runEnv(context.Background(), args, env{stdout: &out, stderr: &errOut, wrapStore: faultyWrap, now: func() time.Time { return now }})
	if code != exitOK && code != exitFindings {
		t.Fatalf("regsweep %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	}
	return code, out.String(), errOut.String()
}

// estimateAndDryRun runs audit --json and gc --dry-run with the same
// options, as of the same instant, and returns both reports.
func estimateAndDryRun(t *testing.T, now time.Time, opts, where []string) (*report.Audit, *report.Report) {
	t.Helper()
	_, out, _ := runAt(t, now, append(append([]string{"audit", "--quiet", "--json"}, opts...), where...)...)
	var a report.Audit
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("audit --json: %v\n%s", err, out)
	}
	repPath := filepath.Join(t.TempDir(), "report.json")
	runAt(t, now, append(append([]string{"gc", "--quiet", "--dry-run", "--report", repPath}, opts...), where...)...)
	b, err := os.ReadFile(repPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("gc --report: %v", err)
	}
	return &a, &rep
}

// assertEstimateIsDryRun fails t where the audit's account of a gc differs
// from the gc's own dry run: the counts per kind, what is kept and why, the
// warnings, doubts and errors, the bytes per repository, the broken
// manifests the gc keeps, and the stale uploads and empty repositories the
// audit says the gc removes.
func assertEstimateIsDryRun(t *testing.T, a *report.Audit, rep *report.Report) {
	t.Helper()
	if a.GC.Counts != rep.Counts {
		t.Errorf("counts: audit estimates %+v, gc --dry-run %+v", a.GC.Counts, rep.Counts)
	}
	if a.GC.Kept != rep.Kept {
		t.Errorf("kept: audit %+v, gc %+v", a.GC.Kept, rep.Kept)
	}
	for _, l := range []struct {
		what       string
		audit, dry []string
	}{{"warnings", a.GC.Warnings, rep.Warnings}, {"doubts", a.GC.Doubts, rep.Doubts}, {"errors", a.GC.Errors, rep.Errors}} {
		if len(l.audit)+len(l.dry) > 0 && !reflect.DeepEqual(l.audit, l.dry) {
			t.Errorf("%s: audit %q, gc %q", l.what, l.audit, l.dry)
		}
	}
	gcBytes := map[string]int64{}
	for _, r := range rep.Repositories {
		if r.Bytes != 0 {
			gcBytes[r.Name] = r.Bytes
		}
	}
	auditBytes := map[string]int64{}
	for _, r := range a.Repositories {
		if r.GCBytes != 0 {
			auditBytes[r.Name] = r.GCBytes
		}
	}
	if !reflect.DeepEqual(auditBytes, gcBytes) {
		t.Errorf("bytes per repository: audit %v, gc %v", auditBytes, gcBytes)
	}
	var untagged []string
	for _, b := range a.Broken {
		if b.Tag == "" {
			untagged = append(untagged, b.Repo+"@"+b.Digest)
		}
	}
	var gcUntagged []string
	for _, b := range rep.Broken {
		if b.Tag == "" {
			gcUntagged = append(gcUntagged, b.Repo+"@"+b.Digest)
		}
	}
	if strings.Join(untagged, " ") != strings.Join(gcUntagged, " ") {
		t.Errorf("broken untagged manifests: audit %v, gc %v", untagged, gcUntagged)
	}
	// A kept tag gc calls broken is broken for the audit too (which also
	// checks links gc does not need).
	brokenTags := map[string]bool{}
	for _, b := range a.Broken {
		brokenTags[b.Repo+":"+b.Tag] = true
	}
	for _, b := range rep.Broken {
		if b.Tag != "" && !brokenTags[b.Repo+":"+b.Tag] {
			t.Errorf("gc says %s:%s is broken (%s), the audit does not", b.Repo, b.Tag, b.Reason)
		}
	}
	removed := 0
	for _, e := range a.EmptyRepositories {
		if e.RemovedByGC {
			removed++
		}
	}
	// An emptied repository is removed too: one the gc empties is in
	// neither list of the audit, which sees the registry as it is.
	if removed > rep.Counts.Repositories {
		t.Errorf("empty repositories: the audit says gc removes %d, gc removes %d", removed, rep.Counts.Repositories)
	}
	// Uploads and multipart uploads: what the audit lists as removed by
	// gc is what gc deletes and aborts.
	uploads, uploadBytes, multipart := 0, int64(0), 0
	for _, u := range a.StaleUploads {
		if u.RemovedByGC {
			uploads++
			uploadBytes += u.Size
		}
	}
	for _, u := range a.StaleMultipartUploads {
		if u.RemovedByGC {
			multipart++
		}
	}
	if uploads != rep.Uploads || uploadBytes != rep.UploadBytes || multipart != rep.Multipart {
		t.Errorf("stale uploads the audit says gc removes: %d (%d bytes) and %d multipart; gc deletes %d (%d bytes) and aborts %d",
			uploads, uploadBytes, multipart, rep.Uploads, rep.UploadBytes, rep.Multipart)
	}
}

// estimateOptions are the gc option sets the audit's estimate is checked
// with: the defaults, untagged deletion, a policy, no compaction, some
// compaction with every upload stale, and margins that keep everything
// recent.
func estimateOptions(t *testing.T) [][]string {
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("rules:\n  - repositories: [\"**\"]\n    keep: {newest: 2}\nuntagged: delete\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return [][]string{
		{},
		{"--delete-untagged"},
		{"--policy", policy, "--allow-delete-all"},
		{"--delete-untagged", "--compact", "none"},
		{"--delete-untagged", "--compact", "uploads,links", "--upload-max-age", "0s", "--min-age", "0"},
		{"--delete-untagged", "--min-age", "2400h", "--upload-max-age", "2400h"},
	}
}

// addMultipart starts an incomplete multipart upload of key (below the
// registry's root in bucket) with one part, as the s3-aws driver leaves the
// data of an upload a client gave up on.
func addMultipart(t *testing.T, bucket, key string) {
	t.Helper()
	c := storagetest.S3Client(t)
	up, err := c.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(t.Context(), &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part")}); err != nil {
		t.Fatal(err)
	}
}

// TestAuditEstimateEqualsGCDryRun is the differential test of the audit's
// gc estimate: on every kind of registry the tests build (generated by
// gen, with legacy manifests and sha512 blobs, and storagetest.Random,
// written through distribution), on a filesystem and in S3 with incomplete
// multipart uploads, and with several option sets, `audit --json` says
// exactly what `gc --dry-run` says it would delete. Both run as of the same
// instant, 8 days from now: past every default margin, so that uploads are
// stale and objects just written to S3 old.
func TestAuditEstimateEqualsGCDryRun(t *testing.T) {
	const seed = 11
	now := time.Now().Add(8 * 24 * time.Hour)
	endpoint, access, secret, region := storagetest.S3Server(t)
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	s3Where := func(bucket string) []string {
		return []string{"--s3-endpoint", endpoint, "--s3-region", region, "--s3-force-path-style", "s3://" + bucket + "/registry"}
	}
	genRoot := filepath.Join(t.TempDir(), "gen")
	g := gen.Build(gen.Options{Blobs: 150, Seed: seed, Legacy: true, SHA512: true})
	if _, err := g.Write(context.Background(), genRoot, 4); err != nil {
		t.Fatal(err)
	}
	registries := []struct {
		name  string
		build func(t *testing.T) []string
	}{
		{"gen/fs", func(t *testing.T) []string { return []string{genRoot} }},
		{"gen/s3", func(t *testing.T) []string {
			bucket := storagetest.NewBucket(t)
			storagetest.PutTree(t, genRoot, bucket, "registry")
			// The data of one of the generated uploads as the driver
			// leaves it, and one whose other files are gone.
			var upload string
			for _, r := range g.Repos {
				if len(r.Uploads) > 0 {
					upload = "registry/docker/registry/v2/repositories/" + r.Name + "/_uploads/" + r.Uploads[0].ID + "/data"
					break
				}
			}
			if upload == "" {
				t.Fatal("the generated registry has no upload")
			}
			addMultipart(t, bucket, upload)
			addMultipart(t, bucket, "registry/docker/registry/v2/repositories/"+g.Repos[0].Name+"/_uploads/abandoned/data")
			return s3Where(bucket)
		}},
		{"random/fs", func(t *testing.T) []string {
			root := t.TempDir()
			storagetest.Random(t, root, seed)
			return []string{root}
		}},
		{"damaged/fs", func(t *testing.T) []string {
			// A blob gone, a byte flipped, a kept layer's link cut short;
			// and the link of an orphan blob cut short.
			d := newDamage(t)
			orphan := d.reg.PushBlob("dr/link", 300)
			p := filepath.Join(d.reg.Root, "docker/registry/v2/repositories/dr/link/_layers/sha256", orphan.Encoded(), "link")
			if err := os.WriteFile(p, []byte("sha256:"), 0o644); err != nil {
				t.Fatal(err)
			}
			d.reg.AgeAll(time.Now().Add(-10 * 24 * time.Hour))
			return []string{d.reg.Root}
		}},
		{"random/s3", func(t *testing.T) []string {
			bucket := storagetest.NewBucket(t)
			storagetest.RandomS3(t, bucket, "registry", seed)
			return s3Where(bucket)
		}},
	}
	for _, reg := range registries {
		t.Run(reg.name, func(t *testing.T) {
			where := reg.build(t)
			for _, opts := range estimateOptions(t) {
				name := strings.Join(opts, " ")
				if name == "" {
					name = "defaults"
				}
				t.Run(name, func(t *testing.T) {
					a, rep := estimateAndDryRun(t, now, opts, where)
					assertEstimateIsDryRun(t, a, rep)
					t.Logf("gc --dry-run: %+v", rep.Counts)
				})
			}
		})
	}
}
