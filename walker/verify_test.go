package walker_test

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/walker"
)

// counter records what Verify reports as progress.
type counter struct{ n, max atomic.Int64 }

func (c *counter) Add(n int64)    { c.n.Add(n) }
func (c *counter) SetMax(n int64) { c.max.Store(n) }

func blobPath(root string, d digest.Digest) string {
	return filepath.Join(root, "docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}

func openFS(t *testing.T, root string) *storage.FS {
	t.Helper()
	fs, err := storage.OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs
}

func TestVerifyFindsFlippedAndTruncatedBlobs(t *testing.T) {
	root := t.TempDir()
	r := storagetest.New(t, root)
	img := r.PushImage("a", storagetest.ImageOpts{Layers: 3, LayerSize: 300 << 10})
	r.Tag("a", "v1", img)
	flipped, truncated := digest.Digest(img.Blobs[1]), digest.Digest(img.Blobs[2])

	// A sha512 blob, as the layout stores one pushed by digest: verified
	// with sha512, once intact and once rotten.
	sha512Blob := func(content []byte, rot bool) storage.Digest {
		sum := sha512.Sum512(content)
		hx := hex.EncodeToString(sum[:])
		p := filepath.Join(root, "docker/registry/v2/blobs/sha512", hx[:2], hx, "data")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if rot {
			content = append([]byte{content[0] ^ 1}, content[1:]...)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := storage.DigestFromHex("sha512", hx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	goodSHA512 := sha512Blob([]byte("intact sha512 blob"), false)
	badSHA512 := sha512Blob([]byte("rotten sha512 blob"), true)

	// Bit rot: one byte flipped in the middle. A truncated write: the tail
	// of a layer gone.
	b, err := os.ReadFile(blobPath(root, flipped))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(blobPath(root, flipped), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(blobPath(root, truncated), 1000); err != nil {
		t.Fatal(err)
	}

	store := storage.ReadOnly(openFS(t, root)) // reads go through the wrapper
	ctx := context.Background()
	inv, err := walker.Walk(ctx, store, walker.Options{Jobs: 4, ReadLinks: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c counter
	v, err := walker.Verify(ctx, store, inv, walker.VerifyOptions{Jobs: 3}, &c)
	if err != nil {
		t.Fatal(err)
	}
	if v.Blobs != inv.Digests.Blobs() || v.Bytes != inv.Stats.BlobBytes {
		t.Errorf("verified %d blobs, %d bytes; the walk listed %d, %d", v.Blobs, v.Bytes, inv.Digests.Blobs(), inv.Stats.BlobBytes)
	}
	if c.max.Load() != inv.Stats.BlobBytes || c.n.Load() != inv.Stats.BlobBytes {
		t.Errorf("progress %d of %d bytes, want %d of %d", c.n.Load(), c.max.Load(), inv.Stats.BlobBytes, inv.Stats.BlobBytes)
	}
	var got []string
	for _, m := range v.Mismatches {
		got = append(got, m.Digest.String())
		if m.Path != storage.BlobDataPath(m.Digest) || m.Got.IsZero() || m.Got == m.Digest || m.Got.Algorithm() != m.Digest.Algorithm() {
			t.Errorf("mismatch %+v: want its path and the digest of its content", m)
		}
		if m.Digest.String() == truncated.String() && (m.Read != 1000 || m.Size != 1000) {
			t.Errorf("truncated blob: read %d of %d bytes, want 1000 of 1000", m.Read, m.Size)
		}
	}
	want := []string{flipped.String(), truncated.String(), badSHA512.String()}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("mismatches %v, want %v", got, want)
	}
	if len(v.Unreadable) != 0 {
		t.Errorf("unreadable: %+v", v.Unreadable)
	}
	if slices.Contains(got, goodSHA512.String()) {
		t.Error("an intact sha512 blob was reported")
	}
}

func TestVerifyListsBlobsGoneSinceTheWalk(t *testing.T) {
	root := t.TempDir()
	r := storagetest.New(t, root)
	img := r.PushImage("a", storagetest.ImageOpts{})
	store := openFS(t, root)
	ctx := context.Background()
	inv, err := walker.Walk(ctx, store, walker.Options{Jobs: 2, ReadLinks: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gone := digest.Digest(img.Blobs[1])
	if err := os.Remove(blobPath(root, gone)); err != nil {
		t.Fatal(err)
	}
	v, err := walker.Verify(ctx, store, inv, walker.VerifyOptions{Jobs: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Unreadable) != 1 || v.Unreadable[0].Digest.String() != gone.String() || !storage.IsNotFound(v.Unreadable[0].Err) {
		t.Fatalf("unreadable %+v, want %s not found", v.Unreadable, gone)
	}
	if !strings.Contains(v.Unreadable[0].Err.Error(), root) {
		t.Errorf("error %q does not name the file", v.Unreadable[0].Err)
	}
}

// plainStore hides every method but the Store interface's.
type plainStore struct{ storage.Store }

func TestVerifyNeedsAStoreThatStreams(t *testing.T) {
	root := t.TempDir()
	storagetest.New(t, root).PushImage("a", storagetest.ImageOpts{})
	ctx := context.Background()
	store := plainStore{openFS(t, root)}
	inv, err := walker.Walk(ctx, store, walker.Options{Jobs: 2, ReadLinks: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := walker.Verify(ctx, store, inv, walker.VerifyOptions{Jobs: 2}, nil); err == nil || !strings.Contains(err.Error(), "cannot stream") {
		t.Errorf("Verify over a store without Open: %v", err)
	}
	// ReadOnly offers the streams of the store it wraps, no other: the
	// same refusal, before any blob is read.
	if _, err := walker.Verify(ctx, storage.ReadOnly(store), inv, walker.VerifyOptions{Jobs: 2}, nil); err == nil || !strings.Contains(err.Error(), "cannot stream") {
		t.Errorf("Verify through ReadOnly over a store without Open: %v", err)
	}
}

func TestVerifyStopsWithItsContext(t *testing.T) {
	root := t.TempDir()
	r := storagetest.New(t, root)
	r.PushImage("a", storagetest.ImageOpts{Layers: 8, LayerSize: 64 << 10})
	store := openFS(t, root)
	inv, err := walker.Walk(context.Background(), store, walker.Options{Jobs: 2, ReadLinks: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := walker.Verify(ctx, store, inv, walker.VerifyOptions{Jobs: 2}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a cancelled context: %v", err)
	}
}

func TestReadLinksReportsCorruptLinks(t *testing.T) {
	root := t.TempDir()
	r := storagetest.New(t, root)
	img := r.PushImage("team/app", storagetest.ImageOpts{Layers: 3})
	old := r.PushImage("team/app", storagetest.ImageOpts{})
	r.Tag("team/app", "v1", old)
	r.Tag("team/app", "v1", img)
	r.AgeAll(time.Now().Add(-time.Hour))
	v2 := func(p string) string { return filepath.Join(root, "docker/registry/v2", p) }
	layer := func(i int) string {
		d := digest.Digest(img.Blobs[i])
		return "repositories/team/app/_layers/sha256/" + d.Encoded() + "/link"
	}
	index := "repositories/team/app/_manifests/tags/v1/index/sha256/" + old.Digest.Encoded() + "/link"
	damage := map[string][]byte{
		layer(0): []byte(""),                          // empty
		layer(1): []byte("sha256:0123"),               // truncated
		layer(2): []byte(img.Blobs[0].String()),       // another digest
		index:    []byte("not a digest at all, oops"), // garbage
	}
	for p, b := range damage {
		if err := os.WriteFile(v2(p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A layer folder without its link file.
	orphanDir := "repositories/team/app/_layers/sha256/" + strings.Repeat("ab", 32)
	if err := os.MkdirAll(v2(orphanDir), 0o755); err != nil {
		t.Fatal(err)
	}
	damage[orphanDir+"/link"] = nil

	ctx := context.Background()
	store := openFS(t, root)
	problems := func(opts walker.Options) map[string]string {
		inv, err := walker.Walk(ctx, store, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range inv.Problems {
			out[strings.TrimPrefix(p.Path, storage.V2+"/")] += p.Err.Error() + ";"
		}
		return out
	}
	without := problems(walker.Options{Jobs: 4})
	got := problems(walker.Options{Jobs: 4, ReadLinks: true})
	for p := range damage {
		if got[p] == "" {
			t.Errorf("%s: not reported with ReadLinks (problems: %v)", p, got)
		}
	}
	if !strings.Contains(got[layer(2)], "its path says") || !strings.Contains(got[layer(0)], "empty") || !strings.Contains(got[index], "garbage") {
		t.Errorf("reasons: %v", got)
	}
	for _, p := range []string{layer(0), layer(1), layer(2), index} {
		if without[p] != "" {
			t.Errorf("%s reported without ReadLinks, which must not read layer links: %s", p, without[p])
		}
	}
	if len(got) != len(damage) {
		t.Errorf("%d problems, want %d: %v", len(got), len(damage), got)
	}
}
