package walker

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/regsweep/regsweep/storage"
)

// TestDigestsLookup checks the table's IDs against its digests: every
// stored blob found at its ID, in digest order; unknown digests interned
// after them, once.
func TestDigestsLookup(t *testing.T) {
	blobs := map[storage.Digest]Blob{}
	var all []storage.Digest
	for i := range 5000 {
		d := storage.DigestOfSum256(sha256.Sum256(fmt.Appendf(nil, "%d", i)))
		all = append(all, d)
		blobs[d] = Blob{Size: int64(i)}
	}
	long, _ := storage.ParseDigest("sha512:" + fmt.Sprintf("%0128x", 7))
	blobs[long] = Blob{Size: -1}
	tb := NewDigests(blobs)
	if tb.Blobs() != 5001 || tb.Len() != 5001 {
		t.Fatalf("%d blobs, %d IDs", tb.Blobs(), tb.Len())
	}
	for _, d := range append(all, long) {
		id := tb.Lookup(d)
		if b, ok := tb.Blob(id); id == 0 || !ok || tb.Digest(id) != d || b != blobs[d] {
			t.Fatalf("%s: ID %d, digest %s, blob %+v %v", d, id, tb.Digest(id), b, ok)
		}
	}
	for id := ID(2); id <= ID(5000); id++ {
		if tb.Digest(id-1).Compare(tb.Digest(id)) >= 0 {
			t.Fatalf("IDs %d and %d out of digest order", id-1, id)
		}
	}
	missing := storage.DigestOfSum256(sha256.Sum256([]byte("missing")))
	if tb.Lookup(missing) != 0 || tb.Lookup(storage.Digest{}) != 0 || tb.Intern(storage.Digest{}) != 0 {
		t.Fatal("an unknown or zero digest has an ID")
	}
	id := tb.Intern(missing)
	if id != 5002 || tb.Intern(missing) != id || tb.Lookup(missing) != id || tb.Stored(id) || tb.Digest(id) != missing {
		t.Fatalf("interned %s as %d: stored %v, digest %s", missing, id, tb.Stored(id), tb.Digest(id))
	}
}
