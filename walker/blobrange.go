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
	var (
		mu    sync.Mutex
		blobs = map[storage.Digest]Blob{}
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
				found := map[storage.Digest]Blob{}
				var bad []Problem
				err := store.Walk(gctx, dir, func(o storage.Object) error {
					k, err := storage.ParseKey(o.Key)
					if err != nil || k.Kind != storage.KeyBlobData {
						bad = append(bad, Problem{Path: o.Key, Err: errors.New("not a blob's data file: left alone")})
						return nil
					}
					found[k.Digest] = Blob{Size: o.Size, ModTime: TimeOf(o.ModTime)}
					return nil
				})
				if err != nil && !storage.IsNotFound(err) {
					return fmt.Errorf("walk blobs %s: %w", dir, err)
				}
				mu.Lock()
				for d, b := range found {
					blobs[d] = b
					inv.Stats.BlobBytes += b.Size
				}
				inv.Problems = append(inv.Problems, bad...)
				mu.Unlock()
				ctr.Add(int64(len(found)))
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	inv.Stats.Blobs, inv.Stats.BlobSizes = len(blobs), true
	inv.Digests = NewDigests(blobs)
	return inv, nil
}
