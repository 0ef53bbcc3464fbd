package walker

import (
	"bytes"
	"cmp"
	"iter"
	"slices"
	"sort"
	"sync"

	"github.com/regsweep/regsweep/storage"
)

// ID names one digest of an inventory: every link, tag and manifest
// reference holds one in 4 bytes where a storage.Digest takes 56, and mark
// keeps its sets as bitsets over IDs. The zero ID is no digest.
//
// The stored blobs come first, sha256 ones in digest order (IDs 1 to
// n), then blobs of other algorithms, then digests that something
// references but the blob store does not hold (missing blobs, manifests
// of broken images, foreign layers).
type ID uint32

// Digests is an inventory's digest table: the blob store's blobs with
// their size and age, and every other digest the walk met. A table is
// built by one Walk and read-only afterwards, except that a recheck walk
// adds the digests it meets that the table lacks.
type Digests struct {
	// sums are the sha256 blobs in digest order, 32 bytes each with no
	// pointer the garbage collector must follow: ID i+1.
	sums [][32]byte
	// stats are the size and age of sums[i]'s data, or nil while no
	// walk or stat has given any (a filesystem walk lists blob folders
	// without opening them; StatBlobs fills in the candidates).
	stats []Blob
	// start[b] is the index in sums of the first sum in bucket b or after
	// (a bucket is a value of the first 16-shift bits): sha256 sums are
	// uniform, so a lookup searches a handful of entries where a binary
	// search over a million takes 20 comparisons.
	start []uint32
	shift uint

	mu sync.Mutex // guards other, ids and present once the table is in use
	// other are the blobs of other algorithms, then digests not stored:
	// ID len(sums)+1+i.
	other []otherEntry
	ids   map[storage.Digest]ID
	// named is set for a table built from what repositories name rather
	// than from a listing of the blob store (Options.NoBlobListing): a
	// digest is stored only once a read found its data (setStored), a bit
	// each in present for sums.
	named   bool
	present []uint64
	// order is the inode number of sums[i]'s folder (truncated: a hint),
	// when the listing gave them (a filesystem on Linux), else nil; see
	// SortByDiskOrder.
	order []uint32
}

// blobPart is one listing's sha256 blobs: their sums and, when the
// listing gave them (S3, a walk that stats every blob), their stats, with
// stats[i] belonging to sums[i].
type blobPart struct {
	sums  [][32]byte
	stats []Blob
	// inos are the folders' inode numbers, inos[i] belonging to sums[i],
	// when the listing gave every one (see Digests.order).
	inos []uint32
}

func (p *blobPart) add(s [32]byte, b Blob, withStats bool) {
	p.sums = append(p.sums, s)
	if withStats {
		p.stats = append(p.stats, b)
	}
}

func (p *blobPart) Len() int           { return len(p.sums) }
func (p *blobPart) Less(i, j int) bool { return bytes.Compare(p.sums[i][:], p.sums[j][:]) < 0 }
func (p *blobPart) Swap(i, j int) {
	p.sums[i], p.sums[j] = p.sums[j], p.sums[i]
	if p.stats != nil {
		p.stats[i], p.stats[j] = p.stats[j], p.stats[i]
	}
	if p.inos != nil {
		p.inos[i], p.inos[j] = p.inos[j], p.inos[i]
	}
}

type otherEntry struct {
	d      storage.Digest
	blob   Blob
	stored bool
}

// newDigests builds a table from the blobs a walk listed: parts of sha256
// blobs (each part one listing, in any order) and a map of the others.
// Parts are emptied as they are copied into the table.
func newDigests(parts []*blobPart, others map[storage.Digest]Blob) *Digests {
	n, withStats, withOrder := 0, false, len(parts) > 0
	for _, p := range parts {
		n += len(p.sums)
		withStats = withStats || p.stats != nil
		withOrder = withOrder && len(p.inos) == len(p.sums)
		if !sort.IsSorted(p) { // listings come sorted by name, as a rule
			sort.Sort(p)
		}
	}
	// Parts are listings of distinct prefixes: ordered by their first
	// entry, they concatenate in order. A sort at the end catches anything
	// else.
	slices.SortFunc(parts, func(a, b *blobPart) int {
		if len(a.sums) == 0 || len(b.sums) == 0 {
			return cmp.Compare(len(a.sums), len(b.sums))
		}
		return bytes.Compare(a.sums[0][:], b.sums[0][:])
	})
	all := &blobPart{sums: make([][32]byte, 0, n)}
	if withStats {
		all.stats = make([]Blob, 0, n)
	}
	if withOrder {
		all.inos = make([]uint32, 0, n)
	}
	for _, p := range parts {
		all.sums = append(all.sums, p.sums...)
		if withOrder {
			all.inos = append(all.inos, p.inos...)
		}
		if withStats {
			if p.stats == nil {
				p.stats = make([]Blob, len(p.sums))
			}
			all.stats = append(all.stats, p.stats...)
		}
		*p = blobPart{}
	}
	if !sort.IsSorted(all) {
		sort.Sort(all)
	}
	// Drop duplicates (a listing met twice).
	k := 0
	for i := range all.sums {
		if i > 0 && all.sums[i] == all.sums[k-1] {
			continue
		}
		all.sums[k] = all.sums[i]
		if withStats {
			all.stats[k] = all.stats[i]
		}
		if withOrder {
			all.inos[k] = all.inos[i]
		}
		k++
	}
	t := &Digests{sums: all.sums[:k:k], ids: make(map[storage.Digest]ID, len(others))}
	if withStats {
		t.stats = all.stats[:k:k]
	}
	if withOrder {
		t.order = all.inos[:k:k]
	}
	// A bucket for every four sums or so, at most 2^16.
	t.shift = 16
	for t.shift > 0 && len(t.sums)>>(16-t.shift) > 4 {
		t.shift--
	}
	buckets := 1 << (16 - t.shift)
	t.start = make([]uint32, buckets+1)
	i := 0
	for p := range buckets {
		for i < len(t.sums) && t.bucket(t.sums[i]) < p {
			i++
		}
		t.start[p] = uint32(i)
	}
	t.start[buckets] = uint32(len(t.sums))
	keys := make([]storage.Digest, 0, len(others))
	for d := range others {
		keys = append(keys, d)
	}
	slices.SortFunc(keys, func(a, b storage.Digest) int { return a.Compare(b) })
	for _, d := range keys {
		t.other = append(t.other, otherEntry{d: d, blob: others[d], stored: true})
		t.ids[d] = ID(len(t.sums) + len(t.other))
	}
	return t
}

func (t *Digests) bucket(s [32]byte) int { return (int(s[0])<<8 | int(s[1])) >> t.shift }

// NewDigests returns a table of the given stored blobs, for tests and
// tools that build an inventory by hand.
func NewDigests(blobs map[storage.Digest]Blob) *Digests {
	part := &blobPart{}
	others := map[storage.Digest]Blob{}
	for d, b := range blobs {
		if s, ok := d.Sum256(); ok {
			part.add(s, b, true)
		} else {
			others[d] = b
		}
	}
	return newDigests([]*blobPart{part}, others)
}

// newNamedDigests builds a table of the sha256 digests repositories name
// (part, emptied), none of them stored yet: a walk that does not list the
// blob store records what its reads find (setStored).
func newNamedDigests(part *blobPart) *Digests {
	part.stats = nil
	t := newDigests([]*blobPart{part}, nil)
	t.named = true
	t.present = make([]uint64, len(t.sums)/64+1)
	return t
}

// Listed reports whether the table holds the blob store's listing: every
// blob it does not say is stored is missing. A table of what repositories
// name (Options.NoBlobListing) knows only the blobs a read found; of any
// other digest it cannot say whether the store holds it.
func (t *Digests) Listed() bool { return !t.named }

// setStored records that the store holds id's blob, in a table of what
// repositories name. Safe for concurrent use.
func (t *Digests) setStored(id ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := int(id) - 1; i < len(t.sums) {
		t.present[i/64] |= 1 << (i % 64)
		return
	}
	t.other[int(id)-1-len(t.sums)].stored = true
}

// presentSum reports whether sums[i] is stored; t.mu is held.
func (t *Digests) presentSum(i int) bool {
	return !t.named || t.present[i/64]&(1<<(i%64)) != 0
}

// Len is the highest ID in the table.
func (t *Digests) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sums) + len(t.other)
}

// Blobs is the number of stored blobs.
func (t *Digests) Blobs() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.sums)
	if t.named {
		n = 0
		for i := range t.sums {
			if t.presentSum(i) {
				n++
			}
		}
	}
	for _, o := range t.other {
		if o.stored {
			n++
		}
	}
	return n
}

// Digest returns the digest id names; the zero Digest for the zero ID.
func (t *Digests) Digest(id ID) storage.Digest {
	if id == 0 {
		return storage.Digest{}
	}
	if i := int(id) - 1; i < len(t.sums) {
		return storage.DigestOfSum256(t.sums[i])
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.other[int(id)-1-len(t.sums)].d
}

// Lookup returns the ID of d, or 0 when the table does not know it.
func (t *Digests) Lookup(d storage.Digest) ID {
	if s, ok := d.Sum256(); ok {
		b := t.bucket(s)
		lo, hi := t.start[b], t.start[b+1]
		if i, found := slices.BinarySearchFunc(t.sums[lo:hi], s, func(e, s [32]byte) int { return bytes.Compare(e[:], s[:]) }); found {
			return ID(int(lo) + i + 1)
		}
	}
	if d.IsZero() {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ids[d]
}

// Blob returns the stored blob id names; false when the store does not
// hold it. Its size and age are zero (unknown) until a stat gave them
// (see SetBlob).
func (t *Digests) Blob(id ID) (Blob, bool) {
	if id == 0 {
		return Blob{}, false
	}
	if i := int(id) - 1; i < len(t.sums) {
		if t.named {
			t.mu.Lock()
			ok := t.presentSum(i)
			t.mu.Unlock()
			if !ok {
				return Blob{}, false
			}
		}
		if t.stats == nil {
			return Blob{}, true
		}
		return t.stats[i], true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.other[int(id)-1-len(t.sums)]
	return o.blob, o.stored
}

// Stored reports whether the blob store holds id's blob. In a table that
// is not Listed, false means "not found by a read" for a digest the walk
// read (a manifest), and unknown for any other.
func (t *Digests) Stored(id ID) bool {
	_, ok := t.Blob(id)
	return ok
}

// StoredBlobs yields every stored blob: sha256 ones in digest order, then
// the others in digest order.
func (t *Digests) StoredBlobs() iter.Seq2[ID, Blob] {
	return func(yield func(ID, Blob) bool) {
		for i := range t.sums {
			if t.named {
				t.mu.Lock()
				ok := t.presentSum(i)
				t.mu.Unlock()
				if !ok {
					continue
				}
			}
			var b Blob
			if t.stats != nil {
				b = t.stats[i]
			}
			if !yield(ID(i+1), b) {
				return
			}
		}
		t.mu.Lock()
		other := t.other
		t.mu.Unlock()
		for i, o := range other {
			if o.stored && !yield(ID(len(t.sums)+1+i), o.blob) {
				return
			}
		}
	}
}

// Intern returns the ID of d, adding it as a digest the store does not
// hold when the table lacks it; 0 for the zero Digest. Walks intern what
// links and manifests reference; tests building inventories by hand do
// too.
func (t *Digests) Intern(d storage.Digest) ID {
	if id := t.Lookup(d); id != 0 || d.IsZero() {
		return id
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[d]; ok {
		return id
	}
	t.other = append(t.other, otherEntry{d: d})
	id := ID(len(t.sums) + len(t.other))
	t.ids[d] = id
	return id
}

// prepareStats makes room for the stats of every stored blob, so that
// SetBlob may then be called from many goroutines at once.
func (t *Digests) prepareStats() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stats == nil {
		t.stats = make([]Blob, len(t.sums))
	}
}

// setBlob records the stat of stored blob id. Calls for distinct IDs may
// run at once after prepareStats.
func (t *Digests) setBlob(id ID, b Blob) {
	if i := int(id) - 1; i < len(t.sums) {
		t.stats[i] = b
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if o := &t.other[int(id)-1-len(t.sums)]; o.stored {
		o.blob = b
	}
}

// SortByDiskOrder sorts ids in the order their blob folders were found
// on disk (inode number) when the listing gave it, digests without one
// last in ID order; otherwise it leaves ids as they are. Reading the blobs
// of a cold filesystem in this order reads the inode tables, and the blocks
// allocated with them, in order: at 300k blobs on ext4 stat'ing 150k blobs'
// data took 16.1 s in inode order against 21.8 s in digest order.
func (t *Digests) SortByDiskOrder(ids []ID) {
	if t.order == nil {
		return
	}
	key := func(id ID) uint64 {
		if id >= 1 && int(id) <= len(t.order) {
			return uint64(t.order[id-1])
		}
		return 1<<32 + uint64(id)
	}
	slices.SortFunc(ids, func(a, b ID) int { return cmp.Compare(key(a), key(b)) })
}
