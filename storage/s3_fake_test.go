package storage_test

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regsweep/regsweep/storage"
)

// fakeS3 is an S3 server of a few scripted answers, for what a real server
// will not do on demand: per-key errors, 503s, lying lengths. It holds one
// registry key so that OpenS3 accepts it.
type fakeS3 struct {
	t *testing.T
	// deletes answers the n-th DeleteObjects (from 0) given its keys with
	// the per-key error codes to report.
	deletes func(n int, keys []string) map[string]string
	// head answers the n-th HEAD with a status.
	head func(n int) int
	// get writes the answer to a GET of an object.
	get func(w http.ResponseWriter)

	mu             sync.Mutex
	nDelete, nHead int
	deleted        [][]string
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodGet && q.Has("list-type"):
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>bucket</Name><Prefix>%s</Prefix><KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>false</IsTruncated>
<Contents><Key>root/docker/registry/v2/blobs/x</Key><Size>1</Size><ETag>"x"</ETag><LastModified>2024-01-01T00:00:00.000Z</LastModified></Contents>
</ListBucketResult>`, q.Get("prefix"))
	case r.Method == http.MethodPost && q.Has("delete"):
		var req struct {
			Objects []struct{ Key string } `xml:"Object"`
			Quiet   bool
		}
		if err := xml.NewDecoder(r.Body).Decode(&req); err != nil {
			f.t.Errorf("DeleteObjects body: %v", err)
		}
		if !req.Quiet {
			f.t.Errorf("DeleteObjects not in quiet mode")
		}
		keys := make([]string, len(req.Objects))
		for i, o := range req.Objects {
			keys[i] = o.Key
		}
		f.mu.Lock()
		n := f.nDelete
		f.nDelete++
		f.deleted = append(f.deleted, keys)
		f.mu.Unlock()
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><DeleteResult>`)
		for k, code := range f.deletes(n, keys) {
			fmt.Fprintf(&b, "<Error><Key>%s</Key><Code>%s</Code><Message>scripted %s</Message></Error>", k, code, code)
		}
		b.WriteString(`</DeleteResult>`)
		io.WriteString(w, b.String())
	case r.Method == http.MethodHead:
		f.mu.Lock()
		n := f.nHead
		f.nHead++
		f.mu.Unlock()
		status := f.head(n)
		if status == http.StatusOK {
			w.Header().Set("Content-Length", "5")
			w.Header().Set("ETag", `"abc"`)
			w.Header().Set("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
		}
		w.WriteHeader(status)
	case r.Method == http.MethodGet:
		f.get(w)
	default:
		f.t.Errorf("unexpected %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotImplemented)
	}
}

// open starts f and opens a store on it with root "root".
func (f *fakeS3) open(t *testing.T, o storage.S3Options) (*storage.S3, *storage.RequestCounter) {
	t.Helper()
	f.t = t
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	rc := &storage.RequestCounter{}
	o.Bucket, o.RootDirectory, o.Endpoint, o.ForcePathStyle = "bucket", "root", srv.URL, true
	o.Region, o.AccessKey, o.SecretKey = "us-east-1", "test", "test"
	o.HTTPClient = &http.Client{Transport: rc}
	s, err := storage.OpenS3(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	rc.Reset()
	return s, rc
}

func deleteAll(t *testing.T, s *storage.S3, keys []string) map[string]error {
	t.Helper()
	got := map[string]error{}
	s.Delete(t.Context(), keys, func(k string, err error) {
		if _, dup := got[k]; dup {
			t.Errorf("done called twice for %s", k)
		}
		got[k] = err
	})
	if len(got) != len(keys) {
		t.Errorf("done called for %d keys, want %d", len(got), len(keys))
	}
	return got
}

func TestS3DeleteReportsPerKeyErrors(t *testing.T) {
	f := &fakeS3{deletes: func(n int, keys []string) map[string]string {
		switch n {
		case 0:
			return map[string]string{"root/slow": "SlowDown", "root/denied": "AccessDenied", "root/gone": "NoSuchKey", "root/internal": "InternalError"}
		case 1:
			if want := "root/slow root/internal"; strings.Join(keys, " ") != want {
				t.Errorf("second DeleteObjects sent %q, want %q", keys, want)
			}
			return map[string]string{"root/internal": "ServiceUnavailable"}
		}
		return nil
	}}
	s, rc := f.open(t, storage.S3Options{})
	got := deleteAll(t, s, []string{"ok", "slow", "denied", "gone", "internal"})
	for _, k := range []string{"ok", "slow", "gone", "internal"} {
		if got[k] != nil {
			t.Errorf("delete %s: %v, want success", k, got[k])
		}
	}
	if err := got["denied"]; err == nil || !strings.Contains(err.Error(), "s3://bucket/root/denied: AccessDenied") {
		t.Errorf("delete denied: %v, want the AccessDenied naming s3://bucket/root/denied", err)
	}
	if n := rc.Counts(); n.DeleteBatch != 3 || n.Total() != 3 {
		t.Errorf("sent %s, want 3 DeleteObjects", n)
	}
}

func TestS3DeleteRetriesGiveUp(t *testing.T) {
	f := &fakeS3{deletes: func(n int, keys []string) map[string]string {
		return map[string]string{"root/hot": "SlowDown"}
	}}
	s, rc := f.open(t, storage.S3Options{})
	got := deleteAll(t, s, []string{"hot", "cold"})
	if err := got["hot"]; err == nil || !strings.Contains(err.Error(), "SlowDown") {
		t.Errorf("delete hot: %v, want SlowDown", err)
	}
	if got["cold"] != nil {
		t.Errorf("delete cold: %v", got["cold"])
	}
	if n := rc.Count(storage.RequestDeleteBatch); n != 5 {
		t.Errorf("sent %d DeleteObjects, want 5 rounds", n)
	}
}

func TestS3DeleteStrayErrorFailsTheRound(t *testing.T) {
	f := &fakeS3{deletes: func(n int, keys []string) map[string]string {
		return map[string]string{"": "InternalError"}
	}}
	s, _ := f.open(t, storage.S3Options{})
	got := deleteAll(t, s, []string{"a", "b"})
	for k, err := range got {
		if err == nil {
			t.Errorf("delete %s succeeded on an answer with an error for no key", k)
		}
	}
}

func TestS3DeleteSplitsBatches(t *testing.T) {
	f := &fakeS3{deletes: func(int, []string) map[string]string { return nil }}
	s, rc := f.open(t, storage.S3Options{})
	keys := make([]string, 2500)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	keys[999] = keys[0] // a duplicate in a batch is sent once, reported twice
	got := map[string]int{}
	s.Delete(t.Context(), keys, func(k string, err error) {
		got[k]++
		if err != nil {
			t.Error(err)
		}
	})
	if got["k0"] != 2 || len(got) != 2499 {
		t.Errorf("done: %d keys, k0 %d times", len(got), got["k0"])
	}
	if n := rc.Count(storage.RequestDeleteBatch); n != 3 {
		t.Errorf("sent %d DeleteObjects, want 3", n)
	}
	for i, b := range f.deleted {
		if want := []int{999, 1000, 500}[i]; len(b) != want {
			t.Errorf("request %d held %d keys, want %d", i, len(b), want)
		}
	}
}

func TestS3RetriesSlowDown(t *testing.T) {
	f := &fakeS3{head: func(n int) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}}
	s, rc := f.open(t, storage.S3Options{})
	o, err := s.Stat(t.Context(), "k")
	if err != nil || o.Size != 5 || o.ETag != `"abc"` {
		t.Errorf("Stat after a 503: %+v, %v", o, err)
	}
	if n := rc.Count(storage.RequestHead); n != 2 {
		t.Errorf("sent %d HEADs, want 2", n)
	}

	f2 := &fakeS3{head: func(int) int { return http.StatusServiceUnavailable }}
	s, rc = f2.open(t, storage.S3Options{MaxRetries: -1})
	if _, err := s.Stat(t.Context(), "k"); err == nil || !strings.Contains(err.Error(), "s3://bucket/root/k") {
		t.Errorf("Stat with retries off: %v, want the 503 naming s3://bucket/root/k", err)
	}
	if n := rc.Count(storage.RequestHead); n != 1 {
		t.Errorf("sent %d HEADs with retries off, want 1", n)
	}

	f3 := &fakeS3{head: func(int) int { return http.StatusNotFound }}
	s, rc = f3.open(t, storage.S3Options{})
	if _, err := s.Stat(t.Context(), "k"); !storage.IsNotFound(err) {
		t.Errorf("Stat of a 404: %v, want ErrNotFound", err)
	}
	if n := rc.Count(storage.RequestHead); n != 1 {
		t.Errorf("a 404 was retried: %d HEADs", n)
	}
}

func TestS3ReadFileLimit(t *testing.T) {
	body := strings.Repeat("z", 1<<20)
	f := &fakeS3{get: func(w http.ResponseWriter) {
		// No Content-Length: the limit must hold on the body itself.
		w.Header().Set("Transfer-Encoding", "chunked")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		io.WriteString(w, body)
	}}
	s, _ := f.open(t, storage.S3Options{})
	if _, _, err := s.ReadFile(t.Context(), "k", 100); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("ReadFile of a chunked 1 MiB body with limit 100: %v, want ErrTooLarge", err)
	}
	if b, o, err := s.ReadFile(t.Context(), "k", int64(len(body))); err != nil || len(b) != len(body) || o.Size != int64(len(body)) {
		t.Errorf("ReadFile at the limit: %d bytes, size %d, %v", len(b), o.Size, err)
	}

	f2 := &fakeS3{get: func(w http.ResponseWriter) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, strings.Repeat("z", 1000))
	}}
	s, _ = f2.open(t, storage.S3Options{})
	if _, o, err := s.ReadFile(t.Context(), "k", 999); !errors.Is(err, storage.ErrTooLarge) || o.Size != 1000 {
		t.Errorf("ReadFile of 1000 bytes with limit 999: size %d, %v", o.Size, err)
	}
}

func TestS3RequestsPerSecond(t *testing.T) {
	f := &fakeS3{head: func(int) int { return http.StatusOK }}
	s, rc := f.open(t, storage.S3Options{RequestsPerSecond: 20})
	time.Sleep(time.Second) // refill the bucket OpenS3 drew from
	start := time.Now()
	for range 30 {
		if _, err := s.Stat(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
	}
	// A burst of 20, then 10 more at 20 a second.
	if el := time.Since(start); el < 400*time.Millisecond || el > 5*time.Second {
		t.Errorf("30 requests at 20/s took %v, want about 0.5s", el)
	}
	if n := rc.Count(storage.RequestHead); n != 30 {
		t.Errorf("%d HEADs", n)
	}
}

func TestRequestCounterKinds(t *testing.T) {
	for _, tc := range []struct {
		method, url string
		want        storage.RequestKind
	}{
		{"GET", "http://h/bucket?list-type=2&prefix=a%2F", storage.RequestList},
		{"GET", "http://bucket.h/?list-type=2", storage.RequestList},
		{"GET", "http://h/bucket?uploads", storage.RequestList},
		{"GET", "http://h/bucket?delimiter=%2F&prefix=x", storage.RequestList},
		{"GET", "http://h/bucket/docker/registry/v2/x/link", storage.RequestGet},
		{"GET", "http://h/bucket/key?versionId=3", storage.RequestGet},
		{"HEAD", "http://h/bucket/key", storage.RequestHead},
		{"PUT", "http://h/bucket/key", storage.RequestPut},
		{"PUT", "http://h/bucket/key?partNumber=1&uploadId=x", storage.RequestPut},
		{"POST", "http://h/bucket?delete", storage.RequestDeleteBatch},
		{"POST", "http://h/bucket/key?uploads", storage.RequestOther},
		{"DELETE", "http://h/bucket/key", storage.RequestOther},
	} {
		req, err := http.NewRequest(tc.method, tc.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := storage.KindOf(req); got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.method, tc.url, got, tc.want)
		}
	}
}

func TestRequestCounterDelay(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	rc := &storage.RequestCounter{Delay: 50 * time.Millisecond}
	c := &http.Client{Transport: rc}
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			resp, err := c.Get(srv.URL + "/bucket/key")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	if el := time.Since(start); el < 50*time.Millisecond || el > 2*time.Second {
		t.Errorf("4 concurrent requests delayed 50ms took %v", el)
	}
	if got := rc.Counts(); got.Get != 4 || got.Total() != 4 {
		t.Errorf("counts %s, want 4 GETs", got)
	}
}
