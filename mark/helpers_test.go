package mark

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// inv builds inventories by hand: mark is pure, so its tests need no storage.
type inv struct {
	*walker.Inventory
	n int
}

func newInv() *inv {
	return &inv{Inventory: &walker.Inventory{Blobs: map[storage.Digest]walker.Blob{}, Manifests: map[storage.Digest]*walker.Manifest{}}}
}

var old = now.Add(-30 * 24 * time.Hour)

// digest returns a fresh digest and stores a blob of 100 bytes under it.
func (v *inv) blob() storage.Digest {
	v.n++
	d, _ := storage.DigestFromHex("sha256", fmt.Sprintf("%x", sha256.Sum256(fmt.Appendf(nil, "%d", v.n))))
	v.Blobs[d] = walker.Blob{Size: 100, ModTime: walker.TimeOf(old)}
	return d
}

func (v *inv) repo(name string) *walker.Repo {
	r := &walker.Repo{Name: name}
	v.Repos = append(v.Repos, r)
	return r
}

func (v *inv) manifest(r *walker.Repo, refs storage.Refs) storage.Digest {
	d := v.blob()
	v.Manifests[d] = &walker.Manifest{Refs: refs, Size: 100}
	r.Revisions = append(r.Revisions, walker.Link{Digest: d, ModTime: walker.TimeOf(old)})
	for _, b := range refs.Blobs {
		r.Layers = append(r.Layers, walker.Link{Digest: b})
	}
	return d
}

// image adds an image manifest with a config and n layers to r.
func (v *inv) image(r *walker.Repo, n int) storage.Digest {
	refs := storage.Refs{MediaType: storage.MediaTypeOCIManifest, Blobs: []storage.Digest{v.blob()}}
	for range n {
		refs.Blobs = append(refs.Blobs, v.blob())
	}
	return v.manifest(r, refs)
}

func (v *inv) index(r *walker.Repo, children ...storage.Digest) storage.Digest {
	return v.manifest(r, storage.Refs{MediaType: storage.MediaTypeOCIIndex, Manifests: children})
}

func (v *inv) referrer(r *walker.Repo, subject storage.Digest) storage.Digest {
	return v.manifest(r, storage.Refs{MediaType: storage.MediaTypeOCIManifest, Blobs: []storage.Digest{v.blob()}, Subject: subject})
}

func (v *inv) tag(r *walker.Repo, name string, d storage.Digest, pushed time.Time) {
	for i := range r.Tags {
		if r.Tags[i].Name == name {
			r.Tags[i].Current, r.Tags[i].PushedAt = d, pushed
			r.Tags[i].Index = append(r.Tags[i].Index, d)
			return
		}
	}
	r.Tags = append(r.Tags, walker.Tag{Name: name, Current: d, PushedAt: pushed, Index: []storage.Digest{d}})
}

// cosign returns the fallback tag name of a signature of d.
func cosign(d storage.Digest, suffix string) string {
	return "sha256-" + d.Hex() + "." + suffix
}
