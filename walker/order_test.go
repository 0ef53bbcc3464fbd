package walker_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/walker"
)

// TestWalkReadsBlobsInDiskOrder walks a generated registry on one worker
// through a store that records every call: the manifests are read, and the
// blobs then stat'ed, in the inode order of their folders (each wave of
// manifests in order: an index's children come in a later wave), which
// reads a cold filesystem's inode tables in order; the blobs by bands of
// neighbouring inodes, each band in digest order.
func TestWalkReadsBlobsInDiskOrder(t *testing.T) {
	root := t.TempDir()
	storagetest.Generate(t, root, 600)
	fs, err := storage.OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ctx := context.Background()
	f := storagetest.NewFaulty(fs)
	f.Record = true
	inv, err := walker.Walk(ctx, f, walker.Options{Jobs: 1, StartedAt: time.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// inodes returns the inode numbers of the blob folders whose data the
	// calls op'ed, in call order.
	inodes := func(calls []storagetest.Call, op storagetest.Op) []uint64 {
		var out []uint64
		for _, c := range calls {
			k, err := storage.ParseKey(c.Key)
			if err != nil || c.Op != op || k.Kind != storage.KeyBlobData {
				continue
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, filepath.Dir(c.Key)), &st); err != nil {
				t.Fatal(err)
			}
			out = append(out, st.Ino)
		}
		return out
	}
	// breaks counts the steps against the sequence's main direction: the
	// pool takes the latest task first, so a run of tasks may go down the
	// inode numbers as well as up (the inode tables are read ahead in
	// aligned windows, either way). Random order breaks half the steps.
	breaks := func(inos []uint64) int {
		up, down := 0, 0
		for i := 1; i < len(inos); i++ {
			if inos[i] < inos[i-1] {
				down++
			} else {
				up++
			}
		}
		return min(up, down)
	}
	read := inodes(f.Calls(), storagetest.OpReadFile)
	if len(read) < 100 {
		t.Fatalf("the walk read %d manifests; the generated registry has more", len(read))
	}
	// Waves: the tags' and revisions' manifests, then children of indexes,
	// then their children; the generator nests indexes two deep at most.
	if b := breaks(read); b > 3 {
		t.Errorf("manifests read out of disk order: %d breaks in %d reads", b, len(read))
	}

	var ids []walker.ID
	for id := walker.ID(1); int(id) <= inv.Digests.Len(); id++ {
		if b, ok := inv.Digests.Blob(id); ok && b.ModTime.IsZero() {
			ids = append(ids, id)
		}
	}
	before := len(f.Calls())
	if err := walker.StatBlobs(ctx, f, inv, ids, 1); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()[before:]
	stated := inodes(calls, storagetest.OpStat)
	if len(stated) != len(ids) || len(ids) < 300 {
		t.Fatalf("stat'ed %d blobs of %d asked", len(stated), len(ids))
	}
	var keys []string
	for _, c := range calls {
		if k, err := storage.ParseKey(c.Key); err == nil && c.Op == storagetest.OpStat && k.Kind == storage.KeyBlobData {
			keys = append(keys, c.Key)
		}
	}
	// Bands of what the jobs stat at once (256 blobs a job, one job here),
	// in disk order: band k holds the k-th 256 blobs by inode. Each band's
	// blobs are stat'ed together, in digest order (a prefix folder's
	// together, relative to it opened once).
	sorted := slices.Clone(stated)
	slices.Sort(sorted)
	band := make(map[uint64]int, len(sorted))
	for i, ino := range sorted {
		band[ino] = i / 256
	}
	runs := 1
	for i := 1; i < len(stated); i++ {
		if band[stated[i]] != band[stated[i-1]] {
			runs++
			continue
		}
		if keys[i] < keys[i-1] {
			t.Errorf("blobs of one band stat'ed out of digest order: %s after %s", keys[i], keys[i-1])
		}
	}
	if want := (len(sorted) + 255) / 256; runs != want {
		t.Errorf("blobs stat'ed in %d runs of one band, want %d: bands are not read together", runs, want)
	}
}
