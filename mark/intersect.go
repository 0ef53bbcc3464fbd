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
// doubts are a's; errors of either plan stay. a is consumed: its lists are
// filtered in place.
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

	// The lists of IDs hold a million items on a large registry: b's keys
	// are one sorted number each (8 bytes) rather than map entries (~50).
	later := map[uint64][]string{}
	for _, r := range b.Revisions {
		if len(r.TagIndex) > 0 {
			later[packed(repo(r.Repo), id(r.ID))] = r.TagIndex
		}
	}
	out.Revisions = keepSorted(a.Revisions, b.Revisions, func(r Revision) uint64 { return packed(r.Repo, r.ID) },
		func(r Revision) uint64 { return packed(repo(r.Repo), id(r.ID)) }, &dropped)
	// History entries: those of either walk (a tag may have been re-pointed
	// through a manifest in between).
	for i, r := range out.Revisions {
		for _, t := range later[packed(r.Repo, r.ID)] {
			if !slices.Contains(r.TagIndex, t) {
				out.Revisions[i].TagIndex = append(slices.Clone(out.Revisions[i].TagIndex), t)
			}
		}
	}
	out.LayerLinks = keepSorted(a.LayerLinks, b.LayerLinks, func(l LayerLink) uint64 { return packed(l.Repo, l.ID) },
		func(l LayerLink) uint64 { return packed(repo(l.Repo), id(l.ID)) }, &dropped)
	out.Blobs = keepSorted(a.Blobs, b.Blobs, func(x Blob) uint64 { return uint64(x.ID) }, func(x Blob) uint64 { return uint64(id(x.ID)) }, &dropped)
	entry := func(e IndexEntry) IndexEntry { return e }
	out.OrphanIndex = keepIn(a.OrphanIndex, b.OrphanIndex, entry, entry, &dropped)
	upload := func(u Upload) string { return u.Repo + "/" + u.ID }
	out.Uploads = keepIn(a.Uploads, b.Uploads, upload, upload, &dropped)
	multipart := func(u storage.MultipartUpload) string { return u.ID }
	out.Multipart = keepIn(a.Multipart, b.Multipart, multipart, multipart, &dropped)
	name := func(r string) string { return r }
	out.EmptyRepos = keepIn(a.EmptyRepos, b.EmptyRepos, name, name, &dropped)
	folder := func(f RevisionFolder) RevisionFolder { return f }
	out.RevisionFolders = keepIn(a.RevisionFolders, b.RevisionFolders, folder, folder, &dropped)
	out.Kept.ChangedDuringRun += dropped
	out.Broken = b.Broken
	out.Err = errors.Join(a.Err, b.Err)
	if a.Err != nil && b.Err != nil && a.Err.Error() == b.Err.Error() {
		out.Err = a.Err
	}
	return &out
}

// packed is a repository index and an ID as one number.
func packed(r RepoIndex, id walker.ID) uint64 { return uint64(uint32(r))<<32 | uint64(id) }

// keepSorted is keepIn for keys that are numbers: b's keys are sorted and
// searched, 8 bytes an item, and a is filtered in place: these lists hold
// a million items on a large registry, and a is consumed.
func keepSorted[T any](a, b []T, keyA, keyB func(T) uint64, dropped *int) []T {
	in := make([]uint64, len(b))
	for i, x := range b {
		in[i] = keyB(x)
	}
	slices.Sort(in)
	out := a[:0]
	for _, x := range a {
		if _, ok := slices.BinarySearch(in, keyA(x)); ok {
			out = append(out, x)
		} else {
			*dropped++
		}
	}
	return out
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
