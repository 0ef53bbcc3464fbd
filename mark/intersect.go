package mark

import (
	"errors"
	"slices"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
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
	tagOf := func(t Tag) tagKey { return tagKey{t.Repo, t.Name} }
	out.Tags = keepIn(a.Tags, b.Tags, tagOf, tagOf, &dropped)

	// b's repositories and IDs in a's terms: the recheck shares a's digest
	// table, apply's walk does not (its plan comes from a file).
	repoOf := make(map[string]RepoIndex, len(a.Repos))
	for i, name := range a.Repos {
		repoOf[name] = RepoIndex(i)
	}
	repo := func(i RepoIndex) RepoIndex {
		if r, ok := repoOf[b.Repo(i)]; ok {
			return r
		}
		return NoRepo
	}
	id := func(x walker.ID) walker.ID {
		if a.Digests == b.Digests {
			return x
		}
		return a.Digests.Lookup(b.Digest(x))
	}

	type revKey struct {
		repo RepoIndex
		id   walker.ID
	}
	later := map[revKey][]string{}
	for _, r := range b.Revisions {
		later[revKey{repo(r.Repo), id(r.ID)}] = r.TagIndex
	}
	out.Revisions = keepIn(a.Revisions, b.Revisions, func(r Revision) revKey { return revKey{r.Repo, r.ID} },
		func(r Revision) revKey { return revKey{repo(r.Repo), id(r.ID)} }, &dropped)
	// History entries: those of either walk (a tag may have been re-pointed
	// through a manifest in between).
	for i, r := range out.Revisions {
		for _, t := range later[revKey{r.Repo, r.ID}] {
			if !slices.Contains(r.TagIndex, t) {
				out.Revisions[i].TagIndex = append(slices.Clone(out.Revisions[i].TagIndex), t)
			}
		}
	}
	out.LayerLinks = keepIn(a.LayerLinks, b.LayerLinks, func(l LayerLink) LayerLink { return l },
		func(l LayerLink) LayerLink { return LayerLink{repo(l.Repo), id(l.ID)} }, &dropped)
	out.Blobs = keepIn(a.Blobs, b.Blobs, func(x Blob) walker.ID { return x.ID }, func(x Blob) walker.ID { return id(x.ID) }, &dropped)
	entry := func(e IndexEntry) IndexEntry { return e }
	out.OrphanIndex = keepIn(a.OrphanIndex, b.OrphanIndex, entry, entry, &dropped)
	upload := func(u Upload) string { return u.Repo + "/" + u.ID }
	out.Uploads = keepIn(a.Uploads, b.Uploads, upload, upload, &dropped)
	multipart := func(u storage.MultipartUpload) string { return u.ID }
	out.Multipart = keepIn(a.Multipart, b.Multipart, multipart, multipart, &dropped)
	name := func(r string) string { return r }
	out.EmptyRepos = keepIn(a.EmptyRepos, b.EmptyRepos, name, name, &dropped)
	out.Kept.ChangedDuringRun += dropped
	out.Broken = b.Broken
	out.Err = errors.Join(a.Err, b.Err)
	if a.Err != nil && b.Err != nil && a.Err.Error() == b.Err.Error() {
		out.Err = a.Err
	}
	return &out
}

// keepIn returns the items of a whose key some item of b has too, adding
// the number it drops to *dropped; keyA and keyB give a key in the same
// terms.
func keepIn[T any, K comparable](a, b []T, keyA, keyB func(T) K, dropped *int) []T {
	in := make(map[K]bool, len(b))
	for _, x := range b {
		in[keyB(x)] = true
	}
	var out []T
	for _, x := range a {
		if in[keyA(x)] {
			out = append(out, x)
		} else {
			*dropped++
		}
	}
	return out
}
