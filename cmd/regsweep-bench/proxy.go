package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regsweep/regsweep/storage"
)

// reqKind is an S3 request kind as the proxy counts them: storage's kinds,
// with the single-object DELETE told apart from the other requests.
type reqKind int

const (
	kindList        reqKind = iota // GET with a listing parameter (list-type, prefix, ...)
	kindGet                        // GET of an object
	kindHead                       // HEAD of an object or bucket
	kindPut                        // PUT: objects, parts, buckets
	kindDeleteBatch                // POST ?delete: DeleteObjects
	kindDelete                     // DELETE of one object (or bucket, or upload)
	kindOther                      // anything else
	numKinds
)

var kindNames = [numKinds]string{"LIST", "GET", "HEAD", "PUT", "DEL-batch", "DELETE", "other"}

func (k reqKind) String() string { return kindNames[k] }

// classify tells the kind of an S3 request by its method and query.
func classify(r *http.Request) reqKind {
	if r.Method == http.MethodDelete {
		return kindDelete
	}
	switch storage.KindOf(r) {
	case storage.RequestList:
		return kindList
	case storage.RequestGet:
		return kindGet
	case storage.RequestHead:
		return kindHead
	case storage.RequestPut:
		return kindPut
	case storage.RequestDeleteBatch:
		return kindDeleteBatch
	}
	return kindOther
}

// Requests counts S3 requests by kind. Its JSON form names every kind.
type Requests struct {
	List        int64 `json:"list"`
	Get         int64 `json:"get"`
	Head        int64 `json:"head"`
	Put         int64 `json:"put"`
	DeleteBatch int64 `json:"delete_batch"`
	Delete      int64 `json:"delete"`
	Other       int64 `json:"other"`
}

// Total is the sum over every kind.
func (r Requests) Total() int64 {
	return r.List + r.Get + r.Head + r.Put + r.DeleteBatch + r.Delete + r.Other
}

// byKind returns the counts in the order of the kinds.
func (r Requests) byKind() [numKinds]int64 {
	return [numKinds]int64{r.List, r.Get, r.Head, r.Put, r.DeleteBatch, r.Delete, r.Other}
}

func (r Requests) String() string {
	s := ""
	for k, n := range r.byKind() {
		s += fmt.Sprintf("%s=%d ", reqKind(k), n)
	}
	return s + fmt.Sprintf("total=%d", r.Total())
}

// s3Proxy is a reverse proxy on loopback in front of an S3 server that
// counts every request by kind and holds each for a fixed delay before
// forwarding it, to simulate a distant S3 for the clients pointed at it.
//
// Clients sign their requests for the proxy's address; the proxy forwards
// them with the Host header they were signed with, so SigV4 still verifies
// at the server (a server that resolves the bucket from Host would need
// path-style addressing, which both collectors use here).
type s3Proxy struct {
	URL    string // http://127.0.0.1:PORT, the endpoint to give clients
	delay  atomic.Int64
	counts [numKinds]atomic.Int64
	srv    *http.Server
	ln     net.Listener
	done   chan struct{}

	logMu sync.Mutex
	logW  io.Writer // nil: no request log
	label string    // prefix of the log lines
	logT0 time.Time // log times are seconds since SetLog
}

// newS3Proxy starts a proxy to target on a free loopback port.
func newS3Proxy(target string) (*s3Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("s3 proxy: bad target %q", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("s3 proxy: %w", err)
	}
	p := &s3Proxy{URL: "http://" + ln.Addr().String(), ln: ln, done: make(chan struct{})}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// regsweep keeps 64 requests in flight on S3: keep their connections.
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 1024
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // the host the client signed for
		},
		Transport: tr,
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			k := classify(r)
			p.counts[k].Add(1)
			p.logRequest(k, r)
			if d := time.Duration(p.delay.Load()); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-r.Context().Done():
					t.Stop()
					return
				}
			}
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: time.Minute,
	}
	go func() {
		defer close(p.done)
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "s3 proxy: %v\n", err)
		}
	}()
	return p, nil
}

// SetLog makes the proxy write one line per request to w (nil: none):
// seconds since this call, label, kind, method, URI, and for a
// DeleteObjects the number of keys.
func (p *s3Proxy) SetLog(w io.Writer, label string) {
	p.logMu.Lock()
	p.logW, p.label, p.logT0 = w, label, time.Now()
	p.logMu.Unlock()
}

func (p *s3Proxy) logRequest(k reqKind, r *http.Request) {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	if p.logW == nil {
		return
	}
	extra := ""
	if k == kindDeleteBatch && r.Body != nil {
		// How full the batches are: count the keys, then restore the body.
		if b, err := io.ReadAll(io.LimitReader(r.Body, 4<<20)); err == nil {
			r.Body.Close()
			r.Body = io.NopCloser(bytes.NewReader(b))
			extra = fmt.Sprintf(" keys=%d", bytes.Count(b, []byte("<Key>")))
		}
	}
	fmt.Fprintf(p.logW, "%.3f %s %s %s %s%s\n", time.Since(p.logT0).Seconds(), p.label, k, r.Method, r.URL.RequestURI(), extra)
}

// SetDelay sets the time each request is held before it is forwarded.
func (p *s3Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Counts returns the requests counted since the last Reset.
func (p *s3Proxy) Counts() Requests {
	var c [numKinds]int64
	for k := range c {
		c[k] = p.counts[k].Load()
	}
	return Requests{List: c[kindList], Get: c[kindGet], Head: c[kindHead], Put: c[kindPut],
		DeleteBatch: c[kindDeleteBatch], Delete: c[kindDelete], Other: c[kindOther]}
}

// Reset sets every count to zero.
func (p *s3Proxy) Reset() {
	for k := range p.counts {
		p.counts[k].Store(0)
	}
}

// Close stops the proxy.
func (p *s3Proxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	<-p.done
	return err
}
