package walker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/storage"
)

// WalkBlobs lists the blobs of store whose prefix folder (the first two hex
// digits of the sum, 00 to ff) is in [lo, hi), of every algorithm, with
// the size and age of their data: what one sweep shard of a sharded run
// owns. The inventory holds only Digests, Stats.Blobs, Stats.BlobBytes and
// Problems (files of the blob tree that are no blob's data, left alone).
func WalkBlobs(ctx context.Context, store storage.Store, lo, hi, jobs int, ctr storage.Counter) (*Inventory, error) {
	if ctr == nil {
		ctr = storage.Nop{}
	}
	if lo < 0 || hi > 256 || lo >= hi {
		return nil, fmt.Errorf("walk blobs: prefix range [%d, %d) out of 00..ff", lo, hi)
	}
	inv := &Inventory{Location: store.String(), Manifests: map[ID]*Manifest{}}
	entries, err := store.ReadDir(ctx, storage.BlobsDir())
	if err != nil && !storage.IsNotFound(err) {
		return nil, fmt.Errorf("walk blobs %s: %w", store, err)
	}
	// Each prefix folder's blobs go into a part of their own (32 bytes a
	// sha256 sum and 16 of stats), built into the table at the end: a map
	// of digests held 72 MiB at the end of a quarter of a million-blob
	// registry's walk, for 12 MiB of table.
	var (
		mu     sync.Mutex
		parts  []*blobPart
		others = map[storage.Digest]Blob{}
	)
	problem := func(p string, err error) {
		mu.Lock()
		inv.Problems = append(inv.Problems, Problem{Path: p, Err: err})
		mu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for _, a := range entries {
		alg, ok := storage.AlgorithmFromString(a.Name)
		if a.Type != storage.TypeDir || !ok {
			problem(storage.BlobsDir()+"/"+a.Name, errors.New("not a digest algorithm folder: left alone"))
			continue
		}
		for p := lo; p < hi; p++ {
			if gctx.Err() != nil {
				break
			}
			dir := storage.BlobPrefixDir(alg, fmt.Sprintf("%02x", p))
			g.Go(func() error {
				part, other := &blobPart{}, map[storage.Digest]Blob{}
				var bad []Problem
				var bytes int64
				err := store.Walk(gctx, dir, func(o storage.Object) error {
					k, err := storage.ParseKey(o.Key)
					if err != nil || k.Kind != storage.KeyBlobData {
						bad = append(bad, Problem{Path: o.Key, Err: errors.New("not a blob's data file: left alone")})
						return nil
					}
					b := Blob{Size: o.Size, ModTime: TimeOf(o.ModTime)}
					if s, ok := k.Digest.Sum256(); ok {
						part.add(s, b, true)
					} else {
						other[k.Digest] = b
					}
					bytes += b.Size
					return nil
				})
				if err != nil && !storage.IsNotFound(err) {
					return fmt.Errorf("walk blobs %s: %w", dir, err)
				}
				mu.Lock()
				parts = append(parts, part)
				for d, b := range other {
					others[d] = b
				}
				inv.Stats.BlobBytes += bytes
				inv.Problems = append(inv.Problems, bad...)
				mu.Unlock()
				ctr.Add(int64(len(part.sums) + len(other)))
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	inv.Digests = newDigests(parts, others)
	inv.Stats.Blobs, inv.Stats.BlobSizes = inv.Digests.Blobs(), true
	return inv, nil
}
