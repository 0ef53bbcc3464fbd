package storage

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// RequestKind is the kind of an S3 request, as RequestCounter tells them apart.
type RequestKind uint8

// The request kinds RequestCounter counts.
const (
	RequestList        RequestKind = iota // GET on a bucket: ListObjectsV2, ListObjects, ListMultipartUploads, ...
	RequestGet                            // GET of an object
	RequestHead                           // HEAD of an object or a bucket
	RequestPut                            // PUT: objects, parts, buckets
	RequestDeleteBatch                    // POST ?delete: DeleteObjects
	RequestOther                          // anything else: single DELETE, multipart POSTs, ...
	numRequestKinds
)

var requestKindNames = [numRequestKinds]string{"LIST", "GET", "HEAD", "PUT", "DELETE-batch", "other"}

// String returns LIST, GET, HEAD, PUT, DELETE-batch or other.
func (k RequestKind) String() string {
	if k < numRequestKinds {
		return requestKindNames[k]
	}
	return fmt.Sprintf("RequestKind(%d)", uint8(k))
}

// KindOf classifies an S3 request by its method and query: a GET with a
// listing parameter (list-type, prefix, delimiter, uploads, versions) is a
// LIST whatever the addressing style, a POST with ?delete is a DeleteObjects.
func KindOf(req *http.Request) RequestKind {
	q := req.URL.Query()
	switch req.Method {
	case http.MethodGet:
		for _, p := range []string{"list-type", "prefix", "delimiter", "uploads", "versions", "continuation-token", "marker"} {
			if q.Has(p) {
				return RequestList
			}
		}
		return RequestGet
	case http.MethodHead:
		return RequestHead
	case http.MethodPut:
		return RequestPut
	case http.MethodPost:
		if q.Has("delete") {
			return RequestDeleteBatch
		}
	}
	return RequestOther
}

// RequestCounts holds how many requests of each kind were sent.
type RequestCounts struct {
	List, Get, Head, Put, DeleteBatch, Other int64
}

// Total is the sum of every kind.
func (c RequestCounts) Total() int64 {
	return c.List + c.Get + c.Head + c.Put + c.DeleteBatch + c.Other
}

// String formats the counts as "LIST=3 GET=1 ...", for logs.
func (c RequestCounts) String() string {
	return fmt.Sprintf("LIST=%d GET=%d HEAD=%d PUT=%d DELETE-batch=%d other=%d total=%d",
		c.List, c.Get, c.Head, c.Put, c.DeleteBatch, c.Other, c.Total())
}

// RequestCounter is an http.RoundTripper that counts the requests it carries
// by kind and can delay each by a fixed time, to measure or simulate a remote
// S3. It counts attempts, so a request the SDK retries counts once per try.
// Put it in S3Options.HTTPClient:
//
//	rc := &storage.RequestCounter{}
//	opts.HTTPClient = &http.Client{Transport: rc}
//
// It is safe for concurrent use; set Next and Delay before the first request.
type RequestCounter struct {
	// Next carries the requests; nil means http.DefaultTransport.
	Next http.RoundTripper
	// Delay is waited before each request is sent (a round-trip latency);
	// a request whose context ends while it waits fails with the context's
	// error.
	Delay time.Duration

	counts [numRequestKinds]atomic.Int64
}

var _ http.RoundTripper = (*RequestCounter)(nil)

// RoundTrip counts req, waits Delay, and sends it through Next.
func (c *RequestCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.counts[KindOf(req)].Add(1)
	if c.Delay > 0 {
		t := time.NewTimer(c.Delay)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			if req.Body != nil {
				req.Body.Close() // a RoundTripper must close the body, even on error
			}
			return nil, req.Context().Err()
		}
	}
	next := c.Next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(req)
}

// Count returns the number of requests of kind k so far.
func (c *RequestCounter) Count(k RequestKind) int64 { return c.counts[k].Load() }

// Counts returns the number of requests of every kind so far.
func (c *RequestCounter) Counts() RequestCounts {
	return RequestCounts{
		List:        c.counts[RequestList].Load(),
		Get:         c.counts[RequestGet].Load(),
		Head:        c.counts[RequestHead].Load(),
		Put:         c.counts[RequestPut].Load(),
		DeleteBatch: c.counts[RequestDeleteBatch].Load(),
		Other:       c.counts[RequestOther].Load(),
	}
}

// Reset sets every count back to zero.
func (c *RequestCounter) Reset() {
	for i := range c.counts {
		c.counts[i].Store(0)
	}
}
