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
	out.Tags = keepIn(a.Tags, b.Tags, func(t Tag) tagKey { return tagKey{t.Repo, t.Name} }, &dropped)

	type revKey struct {
		repo string
		d    storage.Digest
	}
	out.Revisions = keepIn(a.Revisions, b.Revisions, func(r Revision) revKey { return revKey{r.Repo, r.Digest} }, &dropped)
	// History entries: those of either walk (a tag may have been re-pointed
	// through a manifest in between).
	later := map[revKey][]string{}
	for _, r := range b.Revisions {
		later[revKey{r.Repo, r.Digest}] = r.TagIndex
	}
	for i, r := range out.Revisions {
		for _, t := range later[revKey{r.Repo, r.Digest}] {
			if !slices.Contains(r.TagIndex, t) {
				out.Revisions[i].TagIndex = append(slices.Clone(out.Revisions[i].TagIndex), t)
			}
		}
	}
	out.LayerLinks = keepIn(a.LayerLinks, b.LayerLinks, func(l LayerLink) LayerLink { return l }, &dropped)
	out.Blobs = keepIn(a.Blobs, b.Blobs, func(x Blob) storage.Digest { return x.Digest }, &dropped)
	out.OrphanIndex = keepIn(a.OrphanIndex, b.OrphanIndex, func(e IndexEntry) IndexEntry { return e }, &dropped)
	out.Uploads = keepIn(a.Uploads, b.Uploads, func(u Upload) string { return u.Repo + "/" + u.ID }, &dropped)
	out.Multipart = keepIn(a.Multipart, b.Multipart, func(u storage.MultipartUpload) string { return u.ID }, &dropped)
	out.EmptyRepos = keepIn(a.EmptyRepos, b.EmptyRepos, func(r string) string { return r }, &dropped)
	out.Kept.ChangedDuringRun += dropped
	out.Broken = b.Broken
	out.Err = errors.Join(a.Err, b.Err)
	if a.Err != nil && b.Err != nil && a.Err.Error() == b.Err.Error() {
		out.Err = a.Err
	}
	return &out
}

// keepIn returns the items of a whose key some item of b has too, adding
// the number it drops to *dropped.
func keepIn[T any, K comparable](a, b []T, key func(T) K, dropped *int) []T {
	in := make(map[K]bool, len(b))
	for _, x := range b {
		in[key(x)] = true
	}
	var out []T
	for _, x := range a {
		if in[key(x)] {
			out = append(out, x)
		} else {
			*dropped++
		}
	}
	return out
}
