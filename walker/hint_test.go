package walker_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/walker"
)

// TestBlobsHint walks a generated registry on the filesystem (256 prefix
// listings) and on S3 (16 flat listings): BlobsHint is called once, with
// the blobs of one listing times the listings (one prefix folder's count
// times 256, one hex digit's times 16); a recheck and a walk that lists no
// blob do not call it.
func TestBlobsHint(t *testing.T) {
	root := t.TempDir()
	storagetest.Generate(t, root, 1500)
	// What each listing holds, by two-digit prefix and by first digit.
	byPrefix, byDigit := map[int]bool{}, map[string]int{}
	alg := filepath.Join(root, filepath.FromSlash(storage.BlobAlgDir(storage.SHA256)))
	prefixes, err := os.ReadDir(alg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prefixes {
		blobs, err := os.ReadDir(filepath.Join(alg, p.Name()))
		if err != nil {
			t.Fatal(err)
		}
		byPrefix[len(blobs)*256] = true
		byDigit[p.Name()[:1]] += len(blobs)
	}
	fs, err := storage.OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	stores := map[string]storage.Store{"fs": fs}
	if !testing.Short() {
		bucket := storagetest.NewBucket(t)
		storagetest.PutTree(t, root, bucket, "registry")
		endpoint, access, secret, region := storagetest.S3Server(t)
		s3, err := storage.OpenS3(t.Context(), storage.S3Options{Bucket: bucket, RootDirectory: "registry", Region: region, Endpoint: endpoint, ForcePathStyle: true, AccessKey: access, SecretKey: secret})
		if err != nil {
			t.Fatal(err)
		}
		stores["s3"] = s3
	}
	ctx := context.Background()
	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			var hints []int
			opts := walker.Options{Jobs: 8, StartedAt: time.Now(), BlobsHint: func(n int) { hints = append(hints, n) }}
			inv, err := walker.Walk(ctx, store, opts, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(hints) != 1 {
				t.Fatalf("BlobsHint called %d times (%v), want once", len(hints), hints)
			}
			want := byPrefix
			if store.FlatListing() {
				want = map[int]bool{}
				for _, n := range byDigit {
					want[n*16] = true
				}
			}
			if h := hints[0]; !want[h] {
				ok := []int{}
				for n := range want {
					ok = append(ok, n)
				}
				slices.Sort(ok)
				t.Errorf("BlobsHint(%d) for %d blobs stored, want one listing's count scaled: one of %v", h, inv.Stats.Blobs, ok)
			}
			hints = nil
			if _, err := walker.Recheck(ctx, store, inv, opts, nil); err != nil {
				t.Fatal(err)
			}
			opts.NoBlobListing = true
			if _, err := walker.Walk(ctx, store, opts, nil); err != nil {
				t.Fatal(err)
			}
			if len(hints) != 0 {
				t.Errorf("recheck and a walk listing no blob called BlobsHint: %v", hints)
			}
		})
	}
}
