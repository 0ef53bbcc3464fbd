package mark

import (
	"errors"
	"slices"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// Intersect returns the plan that deletes only what both a and b delete:
// a is the earlier plan (the first walk's, or one read from a plan file), b
// the plan of a fresh walk just before the sweep, made with a's options.
// Whatever a push during the run made reachable (a new tag, a re-pointed
// tag, a new revision) is in b's keep set, so it drops out; what dropped out
// is counted in Kept.ChangedDuringRun.
//
// Every item of the result is b's, only selected by a: a says what may be
// deleted, never what or how. Keys, tag histories, upload files, multipart
// upload keys, repository names and blob sizes all come from the fresh walk;
// nothing but a's identities (repository and tag names, digests, upload
// ids) is read from a, and only to be matched. A plan file cannot add a
// key, a history entry or an upload file to what the fresh walk would
// delete. Errors of either plan stay. b is consumed: its lists are filtered
// in place.
func Intersect(a, b *Plan) *Plan {
	out := *b
	out.used = false
	dropped := 0

	// a's repositories and IDs in b's terms: the recheck shares b's digest
	// table, apply's plan file does not.
	repoOf := make(map[string]RepoIndex, len(b.Repos))
	for i, name := range b.Repos {
		repoOf[name] = RepoIndex(i)
	}
	repo := func(i RepoIndex) RepoIndex {
		if r, ok := repoOf[a.Repo(i)]; ok && a.Repo(i) != "" {
			return r
		}
		return NoRepo
	}
	id := func(x walker.ID) walker.ID {
		if a.Digests == b.Digests {
			return x
		}
		return b.Digests.Lookup(a.Digest(x))
	}

	// Every item is matched by its address in b's terms: repository,
	// digest, and name within the repository.
	type addr struct {
		repo RepoIndex
		id   walker.ID
		name string
	}
	tagA := func(t Tag) addr { return addr{repo(t.Repo), 0, t.Name} }
	tagB := func(t Tag) addr { return addr{t.Repo, 0, t.Name} }
	out.Tags = keepIn(b.Tags, a.Tags, tagB, tagA)
	// A history entry is the link it names: a's reason for it is not
	// matched, b's is kept.
	out.History = keepIn(b.History, a.History, func(e HistoryEntry) addr { return addr{e.Repo, e.ID, e.Tag} },
		func(e HistoryEntry) addr { return addr{repo(e.Repo), id(e.ID), e.Tag} })

	// The lists of IDs hold a million items on a large registry: a's keys
	// are one sorted number each (8 bytes) rather than map entries (~50).
	revB := func(r Revision) uint64 { return packed(r.Repo, r.ID) }
	revA := func(r Revision) uint64 { return packed(repo(r.Repo), id(r.ID)) }
	out.Revisions = keepSorted(b.Revisions, a.Revisions, revB, revA)
	out.LayerLinks = keepSorted(b.LayerLinks, a.LayerLinks, func(l LayerLink) uint64 { return packed(l.Repo, l.ID) },
		func(l LayerLink) uint64 { return packed(repo(l.Repo), id(l.ID)) })
	out.Blobs = keepSorted(b.Blobs, a.Blobs, func(x Blob) uint64 { return uint64(x.ID) }, func(x Blob) uint64 { return uint64(id(x.ID)) })
	out.Uploads = keepIn(b.Uploads, a.Uploads, func(u Upload) addr { return addr{u.Repo, 0, u.ID} },
		func(u Upload) addr { return addr{repo(u.Repo), 0, u.ID} })
	multipart := func(u storage.MultipartUpload) [2]string { return [2]string{u.Key, u.ID} }
	out.Multipart = keepIn(b.Multipart, a.Multipart, multipart, multipart)
	out.EmptyRepos = keepIn(b.EmptyRepos, a.EmptyRepos, func(r RepoIndex) RepoIndex { return r }, repo)
	out.RevisionFolders = keepSorted(b.RevisionFolders, a.RevisionFolders, revB, revA)
	// What a deletes and b keeps: reachable again, or changed, since a.
	for _, n := range [][2]int{{len(a.Tags), len(out.Tags)}, {len(a.History), len(out.History)}, {len(a.Revisions), len(out.Revisions)},
		{len(a.LayerLinks), len(out.LayerLinks)}, {len(a.Blobs), len(out.Blobs)}, {len(a.Uploads), len(out.Uploads)},
		{len(a.Multipart), len(out.Multipart)}, {len(a.EmptyRepos), len(out.EmptyRepos)}, {len(a.RevisionFolders), len(out.RevisionFolders)}} {
		dropped += max(0, n[0]-n[1])
	}
	out.Kept.ChangedDuringRun = b.Kept.ChangedDuringRun + dropped

	// b's verdicts on the tags a did not delete: kept after all.
	type tagKey struct{ repo, name string }
	deleted := make(map[tagKey]bool, len(out.Tags))
	for _, t := range out.Tags {
		deleted[tagKey{b.Repo(t.Repo), t.Name}] = true
	}
	out.Decisions = slices.Clone(b.Decisions)
	for i, d := range out.Decisions {
		if !d.Keep && !deleted[tagKey{d.Repo, d.Tag}] {
			first := d.Why
			out.Decisions[i].Keep = true
			out.Decisions[i].Why = Reason{Kind: NotFirstPlan, Details: &Details{First: &first}}
		}
	}

	out.Err = errors.Join(a.Err, b.Err)
	if a.Err != nil && b.Err != nil && a.Err.Error() == b.Err.Error() {
		out.Err = b.Err
	}
	return &out
}

// packed is a repository index and an ID as one number.
func packed(r RepoIndex, id walker.ID) uint64 { return uint64(uint32(r))<<32 | uint64(id) }

// keepSorted is keepIn for keys that are numbers: b's keys are sorted and
// searched, 8 bytes an item, and a is filtered in place: these lists hold
// a million items on a large registry, and a is consumed.
func keepSorted[T any](a, b []T, keyA, keyB func(T) uint64) []T {
	in := make([]uint64, len(b))
	for i, x := range b {
		in[i] = keyB(x)
	}
	slices.Sort(in)
	out := a[:0]
	for _, x := range a {
		if _, ok := slices.BinarySearch(in, keyA(x)); ok {
			out = append(out, x)
		}
	}
	return out
}

// keepIn returns the items of a whose key some item of b has too; keyA and
// keyB give a key in the same terms.
func keepIn[T any, K comparable](a, b []T, keyA, keyB func(T) K) []T {
	in := make(map[K]bool, len(b))
	for _, x := range b {
		in[keyB(x)] = true
	}
	var out []T
	for _, x := range a {
		if in[keyA(x)] {
			out = append(out, x)
		}
	}
	return out
}
