package walker

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/regsweep/regsweep/storage"
)

var (
	_ storage.Opener = (*storage.FS)(nil)
	_ storage.Opener = (*storage.S3)(nil)
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Jobs is how many blobs are read and hashed at once.
	Jobs int
}

// Verification is what Verify found.
type Verification struct {
	// Blobs and Bytes count the blobs read and the bytes hashed.
	Blobs int
	Bytes int64
	// Mismatches are blobs whose content hashes to another digest than the
	// one in their path: bit rot, a truncated or interrupted write.
	Mismatches []BadBlob
	// Unreadable are blobs that could not be read to their end: I/O
	// errors, or blobs gone since the walk.
	Unreadable []BadBlob
}

// BadBlob is a blob whose content is not what its digest says.
type BadBlob struct {
	Digest storage.Digest
	// Path is the key of the blob's data file.
	Path string
	// Size is the size the walk listed; Read is how many bytes were read.
	Size, Read int64
	// Got is the digest of the content read, for a mismatch.
	Got storage.Digest
	// Err says why the blob could not be read, for an unreadable one.
	Err error
}

// verifyBufSize is the read size of each worker: large enough that the
// progress counter and system calls cost nothing next to the hashing.
const verifyBufSize = 256 << 10

// Verify reads every blob of inv (from a walk with Options.ReadLinks, which
// gives their sizes) whole and hashes it with the algorithm of
// its digest (sha256, sha384, sha512), Jobs blobs at once, streaming each
// one: a blob is never held in memory. ctr counts bytes; SetMax is the sum
// of the blobs' sizes. Verify fails only when store cannot stream files or
// ctx ends; each blob that cannot be read is recorded and the rest go on.
func Verify(ctx context.Context, store storage.Store, inv *Inventory, opts VerifyOptions, ctr storage.Counter) (*Verification, error) {
	if ctr == nil {
		ctr = storage.Nop{}
	}
	// A blob may be gigabytes: it is streamed, never read whole.
	op := storage.CapabilitiesOf(store).Opener
	if op == nil {
		return nil, fmt.Errorf("verify %s: the store cannot stream blobs", store)
	}
	type job struct {
		d    storage.Digest
		size int64
	}
	jobs := make([]job, 0, inv.Digests.Blobs())
	var total int64
	for id, b := range inv.Digests.StoredBlobs() {
		jobs = append(jobs, job{inv.Digests.Digest(id), b.Size})
		total += b.Size
	}
	// The pool runs the last queued task first: queue the smallest first so
	// that the largest blobs start early and no long read ends the run alone.
	sort.Slice(jobs, func(i, j int) bool {
		if jobs[i].size != jobs[j].size {
			return jobs[i].size < jobs[j].size
		}
		return jobs[i].d.Compare(jobs[j].d) > 0
	})
	ctr.SetMax(total)

	v := &Verification{}
	var mu sync.Mutex
	bufs := sync.Pool{New: func() any { b := make([]byte, verifyBufSize); return &b }}
	p := newPool()
	for _, j := range jobs {
		p.Go(func(ctx context.Context) error {
			buf := bufs.Get().(*[]byte)
			defer bufs.Put(buf)
			bad, n, err := verifyBlob(ctx, op, j.d, *buf, ctr)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			v.Blobs++
			v.Bytes += n
			switch {
			case err != nil:
				v.Unreadable = append(v.Unreadable, BadBlob{Digest: j.d, Path: storage.BlobDataPath(j.d), Size: j.size, Read: n, Err: err})
			case !bad.IsZero():
				v.Mismatches = append(v.Mismatches, BadBlob{Digest: j.d, Path: storage.BlobDataPath(j.d), Size: j.size, Read: n, Got: bad})
			}
			return nil
		})
	}
	if err := p.Run(ctx, opts.Jobs); err != nil {
		return nil, fmt.Errorf("verify %s: %w", store, err)
	}
	for _, list := range [][]BadBlob{v.Mismatches, v.Unreadable} {
		sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	}
	return v, nil
}

// verifyBlob hashes one blob. It returns the digest of the content when it
// differs from d (zero when it matches), the bytes read, and why the blob
// could not be read to its end.
func verifyBlob(ctx context.Context, op storage.Opener, d storage.Digest, buf []byte, ctr storage.Counter) (storage.Digest, int64, error) {
	rc, _, err := op.Open(ctx, storage.BlobDataPath(d))
	if err != nil {
		return storage.Digest{}, 0, err
	}
	defer rc.Close()
	h := d.Algorithm().Hash()
	cr := &countingReader{ctx: ctx, r: rc, ctr: ctr}
	_, err = io.CopyBuffer(h, cr, buf)
	if err != nil {
		return storage.Digest{}, cr.n, err
	}
	got, err := storage.DigestFromHex(d.Algorithm().String(), hex.EncodeToString(h.Sum(nil)))
	if err != nil {
		return storage.Digest{}, cr.n, err // cannot happen: the hash fits its algorithm
	}
	if got == d {
		return storage.Digest{}, cr.n, nil
	}
	return got, cr.n, nil
}

// countingReader adds what it reads to a progress counter and stops at the
// end of ctx, which a file read would not notice.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	ctr storage.Counter
	n   int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.ctr.Add(int64(n))
	return n, err
}

// readLinks reads every sha256 layer link (the others were read as aliases
// by resolveAlias) and every tag history entry, and reports those whose
// content is missing, empty, garbage or another digest than their path as
// Problems. On a flat store, a link whose ETag is the MD5 of the digest in
// its path is proven without a read. Nothing in the inventory changes, so
// that a plan made from it is the plan gc makes.
func (w *walk) readLinks(ctx context.Context, jobs int) error {
	for _, r := range w.inv.Repos {
		for _, l := range r.Layers {
			if d := w.inv.Digests.Digest(l.ID); d.Algorithm() == storage.SHA256 {
				w.checkLink(storage.LayerLinkPath(r.Name, d), d, "layer link")
			}
		}
		for _, t := range r.Tags {
			for _, id := range t.Index {
				d := w.inv.Digests.Digest(id)
				w.checkLink(storage.TagIndexLinkPath(r.Name, t.Name, d), d, "tag history entry")
			}
		}
	}
	return w.pool.Run(ctx, jobs)
}

// checkLink queues the read of the link at p, which should hold d.
func (w *walk) checkLink(p string, d storage.Digest, what string) {
	if etag, ok := w.linkETags[p]; ok && etag == linkETag(d) {
		return
	}
	w.pool.Go(func(ctx context.Context) error {
		got, _, err := w.readLinkDigest(ctx, p)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case storage.IsNotFound(err):
			err = errors.New("folder without link file")
		case err == nil && got != d:
			err = fmt.Errorf("link holds %s, its path says %s", got, d)
		}
		if err != nil {
			w.problem(p, fmt.Errorf("%s: %w", what, err))
		}
		w.ctr.Add(1)
		return nil
	})
}

// noteLinkETag keeps the ETag of a listed layer link or tag history entry
// for readLinks, when Options.ReadLinks asked for them. classify calls it
// with fr.mu held, which guards linkETags.
func (w *walk) noteLinkETag(k storage.Key, o storage.Object) {
	if w.linkETags != nil && (k.Kind == storage.KeyLayerLink || k.Kind == storage.KeyTagIndex) {
		w.linkETags[o.Key] = o.ETag
	}
}
