package sweep

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// BenchmarkKeyCheck measures making a key and checking it against its
// phase, which every delete of a sweep (dry or not) does.
func BenchmarkKeyCheck(b *testing.B) {
	p := &mark.Plan{Repos: []string{"team/app"}}
	blobs := map[storage.Digest]walker.Blob{}
	var ds []storage.Digest
	for i := range 1000 {
		d, _ := storage.DigestFromHex("sha256", fmt.Sprintf("%x", sha256.Sum256(fmt.Appendf(nil, "%d", i))))
		blobs[d] = walker.Blob{Size: 1}
		ds = append(ds, d)
	}
	p.Digests = walker.NewDigests(blobs)
	for _, d := range ds {
		p.Blobs = append(p.Blobs, mark.Blob{ID: p.Digests.Lookup(d), Repo: 0})
		p.LayerLinks = append(p.LayerLinks, mark.LayerLink{ID: p.Digests.Lookup(d), Repo: 0})
	}
	re := repoErrs(p)
	b.Run("key", func(b *testing.B) {
		for b.Loop() {
			for i := range 1000 {
				_ = op{kindLayerLink, int32(i), 0}.key(p)
			}
		}
	})
	b.Run("key+check", func(b *testing.B) {
		for b.Loop() {
			for i := range 1000 {
				o := op{kindLayerLink, int32(i), 0}
				if err := o.check(p, o.key(p), re); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
