package storage_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// openS3 opens the registry under root in bucket on the tests' S3 server,
// counting its requests with rc (if not nil).
func openS3(t *testing.T, bucket, root string, rc *storage.RequestCounter) (*storage.S3, error) {
	t.Helper()
	endpoint, access, secret, region := storagetest.S3Server(t)
	o := storage.S3Options{
		Bucket: bucket, RootDirectory: root, Region: region, Endpoint: endpoint,
		ForcePathStyle: true, AccessKey: access, SecretKey: secret,
	}
	if rc != nil {
		o.HTTPClient = &http.Client{Transport: rc}
	}
	return storage.OpenS3(t.Context(), o)
}

func mustOpenS3(t *testing.T, bucket, root string, rc *storage.RequestCounter) *storage.S3 {
	t.Helper()
	s, err := openS3(t, bucket, root, rc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func putObject(t testing.TB, c *s3.Client, bucket, key, content string) {
	t.Helper()
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(content)})
	if err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

func TestOpenS3Refuses(t *testing.T) {
	bucket := storagetest.NewBucket(t)
	c := storagetest.S3Client(t)
	putObject(t, c, bucket, "other/docker/registry/v2/blobs/x", "not under the root we ask for")
	putObject(t, c, bucket, "reg/docker/registry/v2", "a file, not a folder")

	for _, tc := range []struct{ root, prefix string }{
		{"", "docker/registry/v2/"},
		{"reg", "reg/docker/registry/v2/"},
		{"/reg/", "reg/docker/registry/v2/"},
	} {
		_, err := openS3(t, bucket, tc.root, nil)
		if err == nil {
			t.Fatalf("OpenS3 root %q of a bucket without a registry succeeded", tc.root)
		}
		for _, want := range []string{bucket, fmt.Sprintf("%q", tc.prefix), "not a registry rootdirectory"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("OpenS3 root %q: error %q does not contain %s", tc.root, err, want)
			}
		}
	}
	if _, err := openS3(t, bucket, "other", nil); err != nil {
		t.Errorf("OpenS3 root other: %v", err)
	}
	_, err := openS3(t, bucket+"-missing", "", nil)
	if err == nil || !strings.Contains(err.Error(), bucket+"-missing") {
		t.Errorf("OpenS3 of a missing bucket: %v, want an error naming it", err)
	}
}

func quotedMD5(b []byte) string {
	sum := md5.Sum(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func TestS3StoreOnDistributionRegistry(t *testing.T) {
	for _, root := range []string{"", "/registry/root/"} {
		t.Run("root="+root, func(t *testing.T) { testS3Store(t, root) })
	}
}

func testS3Store(t *testing.T, root string) {
	ctx := t.Context()
	bucket := storagetest.NewBucket(t)
	start := time.Now().Add(-2 * time.Second) // LastModified has whole seconds
	r := storagetest.NewS3(t, bucket, root)
	app := r.PushImage("lib/app", storagetest.ImageOpts{Layers: 2})
	oci := r.PushImage("lib/app", storagetest.ImageOpts{OCI: true, Layers: 1, LayerSize: 3000})
	idx := r.PushIndex("lib/app", true, oci)
	other := r.PushImage("other", storagetest.ImageOpts{SharedLayers: app.Blobs[1:]})
	r.Tag("lib/app", "v1", app)
	r.Tag("lib/app", "multi", idx)
	r.Tag("other", "latest", other)
	upload := r.StartUpload("lib/app", 100)
	want := storagetest.SnapshotS3(t, bucket, root)

	rc := &storage.RequestCounter{}
	s := mustOpenS3(t, bucket, root, rc)
	trimmed := strings.Trim(root, "/")
	if want := "s3://" + bucket + strings.TrimSuffix("/"+trimmed, "/"); s.String() != want {
		t.Errorf("String() = %q, want %q", s.String(), want)
	}
	if !s.FlatListing() || s.BatchSize() != 1000 {
		t.Errorf("FlatListing %v, BatchSize %d", s.FlatListing(), s.BatchSize())
	}
	bucketKey := func(k string) string {
		if trimmed == "" {
			return k
		}
		return trimmed + "/" + k
	}

	// Walk lists every key with its size, LastModified and ETag, as a raw
	// listing of the bucket does.
	c := storagetest.S3Client(t)
	raw := map[string]int64{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			raw[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
		}
	}
	rc.Reset()
	walked := map[string]storage.Object{}
	var order []string
	err := s.Walk(ctx, storage.V2, func(o storage.Object) error {
		walked[o.Key] = o
		order = append(order, o.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := rc.Counts(); n.List != 1 || n.Total() != 1 {
		t.Errorf("Walk of %d keys sent %s, want one LIST", len(walked), n)
	}
	if !slices.IsSorted(order) {
		t.Errorf("Walk did not list in key order: %q", order)
	}
	gotKeys := map[string]int64{}
	for k, o := range walked {
		gotKeys[bucketKey(k)] = o.Size
	}
	if diff := cmp.Diff(raw, gotKeys); diff != "" {
		t.Errorf("Walk keys and sizes differ from the bucket's listing (-bucket +walk):\n%s", diff)
	}
	links := 0
	for k, o := range walked {
		if o.ModTime.Before(start) || o.ModTime.After(time.Now().Add(2*time.Second)) {
			t.Errorf("%s: ModTime %v, want about now", k, o.ModTime)
		}
		if len(o.ETag) < 3 || o.ETag[0] != '"' {
			t.Errorf("%s: ETag %q, want a quoted entity tag", k, o.ETag)
		}
		if !strings.HasSuffix(k, "/link") {
			continue
		}
		links++
		b, ro, err := s.ReadFile(ctx, k, 1024)
		if err != nil {
			t.Fatal(err)
		}
		if o.ETag != quotedMD5(b) || ro.ETag != o.ETag {
			t.Errorf("%s: ETag %q (GET %q), want the quoted MD5 of %q: %s", k, o.ETag, ro.ETag, b, quotedMD5(b))
		}
		if ro.Size != o.Size || !ro.ModTime.Equal(o.ModTime) {
			t.Errorf("%s: ReadFile gives %+v, Walk %+v", k, ro, o)
		}
		if pk, err := storage.ParseKey(k); err == nil && pk.Kind != storage.KeyTagCurrent && pk.Digest.String() != string(b) {
			t.Errorf("%s holds %q, not the digest of its path", k, b)
		}
	}
	if links != len(want.LayerLinks)+len(want.Revisions)+len(want.Tags)+len(want.TagIndex) {
		t.Errorf("walked %d links, snapshot has %+v", links, want)
	}

	// ReadDir: common prefixes are folders, objects are files, sorted.
	readDir := func(dir string) []storage.Entry {
		t.Helper()
		es, err := s.ReadDir(ctx, dir)
		if err != nil {
			t.Fatalf("ReadDir %s: %v", dir, err)
		}
		return es
	}
	d := func(names ...string) []storage.Entry {
		var es []storage.Entry
		for _, n := range names {
			es = append(es, storage.Entry{Name: n, Type: storage.TypeDir})
		}
		return es
	}
	for _, tc := range []struct {
		dir  string
		want []storage.Entry
	}{
		{storage.V2, d("blobs", "repositories")},
		{storage.RepositoriesDir(), d("lib", "other")},
		{storage.RepositoriesDir() + "/lib", d("app")},
		{storage.RepoDir("lib/app"), d("_layers", "_manifests", "_uploads")},
		{storage.TagsDir("lib/app"), d("multi", "v1")},
		{storage.TagDir("lib/app", "v1"), d("current", "index")},
		{storage.TagDir("lib/app", "v1") + "/current", []storage.Entry{{Name: "link", Type: storage.TypeFile}}},
		{storage.UploadDir("lib/app", upload), append(d("hashstates"), storage.Entry{Name: "startedat", Type: storage.TypeFile})},
	} {
		if diff := cmp.Diff(tc.want, readDir(tc.dir)); diff != "" {
			t.Errorf("ReadDir %s (-want +got):\n%s", tc.dir, diff)
		}
	}
	var blobHex []string
	for _, e := range readDir(storage.V2 + "/blobs/sha256") {
		for _, e2 := range readDir(storage.V2 + "/blobs/sha256/" + e.Name) {
			blobHex = append(blobHex, e2.Name)
		}
	}
	var wantHex []string
	for dg := range want.Blobs {
		wantHex = append(wantHex, dg.Encoded())
	}
	slices.Sort(wantHex)
	if diff := cmp.Diff(wantHex, blobHex); diff != "" {
		t.Errorf("blobs listed by ReadDir (-snapshot +got):\n%s", diff)
	}

	missing := storage.TagsDir("lib/app") + "/nope"
	if _, err := s.ReadDir(ctx, missing); !storage.IsNotFound(err) {
		t.Errorf("ReadDir of a missing folder: %v, want ErrNotFound", err)
	}
	if err := s.Walk(ctx, missing, func(storage.Object) error { return nil }); !storage.IsNotFound(err) {
		t.Errorf("Walk of a missing prefix: %v, want ErrNotFound", err)
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.Walk(ctx, storage.V2, func(storage.Object) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("Walk returned %v after %d calls, want the callback's error after 1", err, calls)
	}

	// Stat and ReadFile.
	cur := storage.TagCurrentPath("lib/app", "v1")
	o, err := s.Stat(ctx, cur)
	if err != nil {
		t.Fatal(err)
	}
	if o.Key != cur || o.Size != int64(len(app.Digest.String())) || o.ETag != walked[cur].ETag || !o.ModTime.Equal(walked[cur].ModTime) {
		t.Errorf("Stat %s = %+v, Walk gave %+v", cur, o, walked[cur])
	}
	if _, err := s.Stat(ctx, cur+"-nope"); !storage.IsNotFound(err) || !strings.Contains(err.Error(), "s3://"+bucket+"/"+bucketKey(cur+"-nope")) {
		t.Errorf("Stat of a missing key: %v, want ErrNotFound naming s3://%s/%s", err, bucket, bucketKey(cur+"-nope"))
	}
	if _, _, err := s.ReadFile(ctx, cur+"-nope", 100); !storage.IsNotFound(err) {
		t.Errorf("ReadFile of a missing key: %v, want ErrNotFound", err)
	}
	b, _, err := s.ReadFile(ctx, cur, 1024)
	if err != nil || string(b) != app.Digest.String() {
		t.Errorf("ReadFile %s = %q, %v; want %s", cur, b, err, app.Digest)
	}
	big := storage.V2 + "/blobs/sha256/" + oci.Blobs[1].Encoded()[:2] + "/" + oci.Blobs[1].Encoded() + "/data"
	if _, bo, err := s.ReadFile(ctx, big, 2999); !errors.Is(err, storage.ErrTooLarge) || bo.Size != 3000 {
		t.Errorf("ReadFile of 3000 bytes with limit 2999: size %d, %v; want ErrTooLarge", bo.Size, err)
	}
	if b, _, err := s.ReadFile(ctx, big, 3000); err != nil || len(b) != 3000 {
		t.Errorf("ReadFile of 3000 bytes with limit 3000: %d bytes, %v", len(b), err)
	}

	// Delete a tag's links, and a key that does not exist: one request.
	keys := []string{cur, storage.TagDir("lib/app", "v1") + "/index/sha256/" + app.Digest.Encoded() + "/link", cur + "-never-existed"}
	rc.Reset()
	got := map[string]error{}
	s.Delete(ctx, keys, func(k string, err error) { got[k] = err })
	if len(got) != len(keys) {
		t.Errorf("done called for %d keys, want %d", len(got), len(keys))
	}
	for k, err := range got {
		if err != nil {
			t.Errorf("delete %s: %v", k, err)
		}
	}
	if n := rc.Counts(); n.DeleteBatch != 1 || n.Total() != 1 {
		t.Errorf("Delete of %d keys sent %s, want one DeleteObjects", len(keys), n)
	}
	if _, err := s.Stat(ctx, cur); !storage.IsNotFound(err) {
		t.Errorf("Stat after Delete: %v", err)
	}
	if diff := cmp.Diff(d("multi"), readDir(storage.TagsDir("lib/app"))); diff != "" {
		t.Errorf("tags after deleting v1 (-want +got):\n%s", diff)
	}
	after := storagetest.SnapshotS3(t, bucket, root)
	delete(want.Tags, "lib/app:v1")
	delete(want.TagIndex, "lib/app:v1@"+app.Digest.String())
	if diff := cmp.Diff(want, after); diff != "" {
		t.Errorf("state after Delete (-want +got):\n%s", diff)
	}
}

func TestS3DeleteBatches(t *testing.T) {
	const n = 2500
	ctx := t.Context()
	bucket := storagetest.NewBucket(t)
	c := storagetest.S3Client(t)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s/repositories/r%d/_layers/sha256/%064x/link", storage.V2, i%7, i)
	}
	var g errgroup.Group
	g.SetLimit(16)
	for _, k := range keys[1:] { // keys[0] never exists
		g.Go(func() error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("r/" + k), Body: bytes.NewReader([]byte("x"))})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	rc := &storage.RequestCounter{}
	s := mustOpenS3(t, bucket, "r", rc)
	rc.Reset()
	var mu sync.Mutex
	done := map[string]int{}
	s.Delete(ctx, keys, func(k string, err error) {
		mu.Lock()
		defer mu.Unlock()
		done[k]++
		if err != nil {
			t.Errorf("delete %s: %v", k, err)
		}
	})
	counts := rc.Counts()
	t.Logf("Delete of %d keys: %s", n, counts)
	if counts.DeleteBatch != 3 || counts.Total() != 3 {
		t.Errorf("Delete of %d keys sent %s, want 3 DeleteObjects", n, counts)
	}
	if len(done) != n {
		t.Errorf("done called for %d distinct keys, want %d", len(done), n)
	}
	for k, times := range done {
		if times != 1 {
			t.Errorf("done called %d times for %s", times, k)
		}
	}
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 0 {
		t.Errorf("%d objects left after Delete, first %s", len(out.Contents), aws.ToString(out.Contents[0].Key))
	}
}

func TestS3WalkPaginates(t *testing.T) {
	const n = 2100
	ctx := t.Context()
	bucket := storagetest.NewBucket(t)
	c := storagetest.S3Client(t)
	var g errgroup.Group
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			k := fmt.Sprintf("%s/blobs/sha256/%02x/%064x/data", storage.V2, i%256, i)
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader(strings.Repeat("y", i%5))})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	rc := &storage.RequestCounter{}
	s := mustOpenS3(t, bucket, "", rc)
	rc.Reset()
	var size int64
	seen := 0
	if err := s.Walk(ctx, storage.BlobsDir(), func(o storage.Object) error { seen++; size += o.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	counts := rc.Counts()
	t.Logf("Walk of %d keys: %s", n, counts)
	if seen != n || counts.List != 3 || counts.Total() != 3 {
		t.Errorf("Walk saw %d keys with %s, want %d with 3 LISTs", seen, counts, n)
	}
	var wantSize int64
	for i := range n {
		wantSize += int64(i % 5)
	}
	if size != wantSize {
		t.Errorf("Walk sizes add up to %d, want %d", size, wantSize)
	}
	rc.Reset()
	es, err := s.ReadDir(ctx, storage.BlobsDir()+"/sha256/00")
	if err != nil || len(es) != 9 {
		t.Errorf("ReadDir of one prefix folder: %d entries, %v; want 9", len(es), err)
	}
	es, err = s.ReadDir(ctx, storage.BlobsDir()+"/sha256")
	if err != nil || len(es) != 256 {
		t.Errorf("ReadDir of the sha256 folder: %d entries, %v; want 256", len(es), err)
	}
	t.Logf("two ReadDirs: %s", rc.Counts())
}

func TestS3UpstreamGC(t *testing.T) {
	ctx := t.Context()
	bucket := storagetest.NewBucket(t)
	r := storagetest.NewS3(t, bucket, "reg")
	kept := r.PushImage("lib/app", storagetest.ImageOpts{Layers: 2})
	gone := r.PushImage("lib/app", storagetest.ImageOpts{SharedLayers: kept.Blobs[1:2], Layers: 1})
	old := r.PushImage("lib/app", storagetest.ImageOpts{OCI: true})
	r.Tag("lib/app", "v1", old)
	r.Tag("lib/app", "v1", kept) // old stays in v1's history only
	r.Tag("lib/app", "v2", gone)
	r.Untag("lib/app", "v2")
	before := storagetest.SnapshotS3(t, bucket, "reg")

	if err := r.UpstreamGC(ctx, false, true); err != nil {
		t.Fatal(err)
	}
	r.Reopen()
	if err := r.ServesAll(ctx); err != nil {
		t.Errorf("after upstream GC: %v", err)
	}
	after := storagetest.SnapshotS3(t, bucket, "reg")
	for _, img := range []storagetest.Image{gone, old} {
		if after.Revisions["lib/app@"+img.Digest.String()] || after.Blobs[img.Digest] {
			t.Errorf("untagged manifest %s survived upstream GC", img.Digest)
		}
		for _, b := range img.Blobs {
			if after.Blobs[b] && !slices.Contains(kept.Blobs, b) {
				t.Errorf("blob %s of untagged %s survived upstream GC", b, img.Digest)
			}
		}
	}
	for _, b := range append(kept.Blobs, kept.Digest) {
		if !after.Blobs[b] {
			t.Errorf("blob %s of tagged %s deleted by upstream GC", b, kept.Digest)
		}
	}
	// gone: manifest, config, its own layer; old: manifest, config, layer.
	if len(after.Blobs) != len(before.Blobs)-6 {
		t.Errorf("blobs before upstream GC %d, after %d, want 6 fewer", len(before.Blobs), len(after.Blobs))
	}

	// Our store sees exactly the blobs the snapshot sees.
	s := mustOpenS3(t, bucket, "reg", nil)
	seen := map[string]bool{}
	if err := s.Walk(ctx, storage.BlobsDir(), func(o storage.Object) error {
		k, err := storage.ParseKey(o.Key)
		if err != nil {
			return err
		}
		seen[k.Digest.String()] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for dg := range after.Blobs {
		want[dg.String()] = true
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("blobs walked after upstream GC (-snapshot +walk):\n%s", diff)
	}
}

// TestS3UploadDataIsMultipart shows where an upload in flight keeps its data
// on S3: in an unfinished multipart upload that no listing shows, which
// WalkMultipartUploads finds and AbortMultipartUpload frees.
func TestS3UploadDataIsMultipart(t *testing.T) {
	ctx := t.Context()
	bucket := storagetest.NewBucket(t)
	r := storagetest.NewS3(t, bucket, "reg")
	r.PushImage("lib/app", storagetest.ImageOpts{})
	id := r.StartUpload("lib/app", 4096)
	s := mustOpenS3(t, bucket, "reg", nil)

	var files []string
	if err := s.Walk(ctx, storage.UploadDir("lib/app", id), func(o storage.Object) error {
		files = append(files, strings.TrimPrefix(o.Key, storage.UploadDir("lib/app", id)+"/"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(files, "data") || !slices.Contains(files, "startedat") {
		t.Errorf("upload %s lists %q: want startedat and no data object", id, files)
	}
	var ups []storage.MultipartUpload
	collect := func(u storage.MultipartUpload) error { ups = append(ups, u); return nil }
	if err := s.WalkMultipartUploads(ctx, storage.RepositoriesDir(), collect); err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 || ups[0].Key != storage.UploadDir("lib/app", id)+"/data" || ups[0].ID == "" || ups[0].Initiated.IsZero() {
		t.Fatalf("multipart uploads: %+v, want the data of upload %s", ups, id)
	}
	for range 2 { // the second abort finds it gone
		if err := s.AbortMultipartUpload(ctx, ups[0]); err != nil {
			t.Error(err)
		}
	}
	ups = nil
	if err := s.WalkMultipartUploads(ctx, storage.V2, collect); err != nil || len(ups) != 0 {
		t.Errorf("multipart uploads after abort: %+v, %v", ups, err)
	}
}

func TestS3LockIsConditional(t *testing.T) {
	bucket := storagetest.NewBucket(t)
	c := storagetest.S3Client(t)
	putObject(t, c, bucket, "r/docker/registry/v2/blobs/x", "x")
	s := mustOpenS3(t, bucket, "r", nil)
	ctx := t.Context()
	l, _, err := storage.AcquireLock(ctx, s, storage.LockInfo{Host: "a", RunID: "1"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutIfAbsent(ctx, storage.LockKey, []byte("{}")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second conditional write: %v, want ErrExists (412 from If-None-Match)", err)
	}
	if _, _, err := storage.AcquireLock(ctx, s, storage.LockInfo{Host: "b", RunID: "2"}, false); !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("second run: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
