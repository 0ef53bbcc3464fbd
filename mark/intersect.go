package mark

import (
	"errors"
	"slices"

	"github.com/regsweep/regsweep/storage"
)

// Intersect returns the plan that deletes only what both a and b delete: a
// is the plan from the first walk, b the plan from a recheck just before
// the sweep. Whatever a push during the run made reachable (a new tag, a
// re-pointed tag, a new revision) is in b's keep set, so it drops out; what
// dropped out is counted in Kept.ChangedDuringRun. Decisions, warnings and
// doubts are a's; errors of either plan stay.
func Intersect(a, b *Plan) *Plan {
	out := *a
	out.used = false
	dropped := 0

	type tagKey struct{ repo, name string }
	bt := map[tagKey]bool{}
	for _, t := range b.Tags {
		bt[tagKey{t.Repo, t.Name}] = true
	}
	out.Tags = slices.DeleteFunc(slices.Clone(a.Tags), func(t Tag) bool {
		drop := !bt[tagKey{t.Repo, t.Name}]
		if drop {
			dropped++
		}
		return drop
	})

	type revKey struct {
		repo string
		d    storage.Digest
	}
	br := map[revKey]Revision{}
	for _, r := range b.Revisions {
		br[revKey{r.Repo, r.Digest}] = r
	}
	out.Revisions = nil
	for _, r := range a.Revisions {
		rb, ok := br[revKey{r.Repo, r.Digest}]
		if !ok {
			dropped++
			continue
		}
		// History entries: those of either walk (a tag may have been
		// re-pointed through this manifest in between).
		for _, t := range rb.TagIndex {
			if !slices.Contains(r.TagIndex, t) {
				r.TagIndex = append(slices.Clone(r.TagIndex), t)
			}
		}
		out.Revisions = append(out.Revisions, r)
	}

	bl := map[revKey]bool{}
	for _, l := range b.LayerLinks {
		bl[revKey{l.Repo, l.Digest}] = true
	}
	out.LayerLinks = slices.DeleteFunc(slices.Clone(a.LayerLinks), func(l LayerLink) bool {
		drop := !bl[revKey{l.Repo, l.Digest}]
		if drop {
			dropped++
		}
		return drop
	})

	bb := map[storage.Digest]bool{}
	for _, x := range b.Blobs {
		bb[x.Digest] = true
	}
	out.Blobs = slices.DeleteFunc(slices.Clone(a.Blobs), func(x Blob) bool {
		drop := !bb[x.Digest]
		if drop {
			dropped++
		}
		return drop
	})
	out.Kept.ChangedDuringRun += dropped
	out.Broken = b.Broken
	out.Err = errors.Join(a.Err, b.Err)
	if a.Err != nil && b.Err != nil && a.Err.Error() == b.Err.Error() {
		out.Err = a.Err
	}
	return &out
}
