package mark

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// Each stage of Compute on its own: the inventories are the smallest that
// show each case, the expectations are by digest and tag name.

// digests returns the digests of ids, sorted.
func digests(t *walker.Digests, ids []walker.ID) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, t.Digest(id).String())
	}
	slices.Sort(out)
	return out
}

func strs(ds ...storage.Digest) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.String())
	}
	slices.Sort(out)
	return out
}

func TestSelectRoots(t *testing.T) {
	t.Parallel()
	newest1 := "rules:\n  - repositories: [app]\n    keep: {newest: 1}\n"
	for _, c := range []struct {
		name   string
		policy string
		opts   Options
		// build returns the roots it expects; deleted, pending and young
		// are the tags deleted, the signature tags left to Close and
		// the revisions too recent to decide yet.
		build   func(v *inv, r *repo) (roots []storage.Digest)
		deleted []string
		pending int
		young   int
		broken  int
		doubt   string
	}{
		{name: "no policy: every tag's manifest", build: func(v *inv, r *repo) []storage.Digest {
			a, b := v.image(r, 1), v.image(r, 1)
			v.tag(r, "a", a, old)
			v.tag(r, "b", b, old)
			v.image(r, 1) // untagged: not a root with DeleteUntagged
			return []storage.Digest{a, b}
		}, opts: Options{DeleteUntagged: true}},
		{name: "without DeleteUntagged every revision is a root", build: func(v *inv, r *repo) []storage.Digest {
			a, u := v.image(r, 1), v.image(r, 1)
			v.tag(r, "a", a, old)
			return []storage.Digest{a, u}
		}},
		{name: "newest 1 deletes the older tag", policy: newest1, opts: Options{DeleteUntagged: true}, build: func(v *inv, r *repo) []storage.Digest {
			a, b := v.image(r, 1), v.image(r, 1)
			v.tag(r, "new", a, now.Add(-time.Hour))
			v.tag(r, "old", b, old)
			return []storage.Digest{a}
		}, deleted: []string{"old"}},
		{name: "a signature tag waits for its subject", policy: newest1, opts: Options{DeleteUntagged: true}, build: func(v *inv, r *repo) []storage.Digest {
			a := v.image(r, 1)
			v.tag(r, "new", a, now.Add(-time.Hour))
			v.tag(r, cosign(a, "sig"), v.referrer(r, a), old)
			return []storage.Digest{a}
		}, pending: 1},
		{name: "half-deleted tag goes with Compact.Links", opts: Options{DeleteUntagged: true, Compact: CompactAll}, build: func(v *inv, r *repo) []storage.Digest {
			r.Tags = append(r.Tags, tag{Name: "half", Index: []storage.Digest{v.image(r, 1)}})
			return nil
		}, deleted: []string{"half"}},
		{name: "tag naming a manifest the repository does not link is broken", opts: Options{DeleteUntagged: true}, build: func(v *inv, r *repo) []storage.Digest {
			a := v.image(r, 1)
			v.tag(r, "a", a, old)
			r.Revisions = nil
			return nil
		}, broken: 1},
		{name: "corrupt and recent revisions", opts: Options{DeleteUntagged: true, MinAge: time.Hour}, build: func(v *inv, r *repo) []storage.Digest {
			c, _ := v.image(r, 1), v.image(r, 1)
			r.Revisions[0].Corrupt = true
			r.Revisions[1].ModTime = walker.TimeOf(now)
			return []storage.Digest{c}
		}, young: 1},
		{name: "unreadable repository: every tag and revision", policy: newest1, opts: Options{DeleteUntagged: true}, build: func(v *inv, r *repo) []storage.Digest {
			a, b, u := v.image(r, 1), v.image(r, 1), v.image(r, 1)
			v.tag(r, "new", a, now)
			v.tag(r, "old", b, old)
			r.Unreadable = errors.New("permission denied")
			_ = u
			return []storage.Digest{a, b}
		}, doubt: "permission denied"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newInv()
			r := v.repo("app")
			want := c.build(v, r)
			opts := c.opts
			opts.StartedAt = now
			if c.policy != "" {
				opts.Policy = mustPolicy(t, c.policy)
			}
			inv := v.build()
			m := SelectRoots(inv, 0, opts)
			if got := digests(inv.Digests, m.Roots()); !slices.Equal(got, strs(want...)) {
				t.Errorf("roots %v, want %v", got, strs(want...))
			}
			var deleted []string
			for _, tg := range m.Tags {
				deleted = append(deleted, tg.Name)
			}
			if !slices.Equal(deleted, c.deleted) {
				t.Errorf("tags deleted %v, want %v", deleted, c.deleted)
			}
			if len(m.pending) != c.pending || len(m.young) != c.young || len(m.Broken) != c.broken {
				t.Errorf("pending %d, young %d, broken %v; want %d, %d, %d", len(m.pending), len(m.young), m.Broken, c.pending, c.young, c.broken)
			}
			if (c.doubt == "") != (m.Doubt == nil) || m.Doubt != nil && !strings.Contains(m.Doubt.Err, c.doubt) {
				t.Errorf("doubt %+v, want %q", m.Doubt, c.doubt)
			}
		})
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		opts Options
		// build returns the manifests it expects kept and the revisions
		// it expects deleted.
		build                    func(v *inv, r *repo) (kept, deleted []storage.Digest)
		recent, inDoubt, broken  int
		keptTags, deletedSigTags int
		policy                   string
		wantTagIndex             string
		everyTagDeleted          bool
	}{
		{name: "children and referrers of a tagged index", build: func(v *inv, r *repo) ([]storage.Digest, []storage.Digest) {
			a, b := v.image(r, 1), v.image(r, 1)
			idx := v.index(r, a, b)
			sbom := v.referrer(r, idx)
			sig := v.referrer(r, sbom)
			v.tag(r, "v1", idx, old)
			u := v.image(r, 1)
			return []storage.Digest{a, b, idx, sbom, sig}, []storage.Digest{u}
		}},
		{name: "untagged revision keeps the history entries of kept tags", build: func(v *inv, r *repo) ([]storage.Digest, []storage.Digest) {
			was, is := v.image(r, 1), v.image(r, 1)
			v.tag(r, "latest", was, old)
			v.tag(r, "latest", is, old)
			return []storage.Digest{is}, []storage.Digest{was}
		}, wantTagIndex: "latest"},
		{name: "recent untagged revision counts as too recent, its referrer does not", opts: Options{MinAge: time.Hour}, build: func(v *inv, r *repo) ([]storage.Digest, []storage.Digest) {
			u := v.image(r, 1)
			ref := v.referrer(r, u)
			for i := range r.Revisions {
				r.Revisions[i].ModTime = walker.TimeOf(now)
			}
			return []storage.Digest{u, ref}, nil
		}, recent: 1},
		{name: "an unparsable untagged manifest keeps every untagged revision", build: func(v *inv, r *repo) ([]storage.Digest, []storage.Digest) {
			a, u, bad := v.image(r, 1), v.image(r, 1), v.image(r, 1)
			v.tag(r, "a", a, old)
			v.Manifests[bad] = &manifest{Err: errors.New("not JSON")}
			return []storage.Digest{a, u, bad}, nil
		}, inDoubt: 2},
		{name: "a child without a revision link is broken and kept nothing of", build: func(v *inv, r *repo) ([]storage.Digest, []storage.Digest) {
			a, gone := v.image(r, 1), v.image(r, 1)
			idx := v.index(r, a, gone)
			v.tag(r, "v1", idx, old)
			r.Revisions = slices.DeleteFunc(r.Revisions, func(l link) bool { return l.Digest == gone })
			return []storage.Digest{a, idx}, nil
		}, broken: 1},
		{name: "signature tags follow their subject, signatures of signatures too", policy: "rules:\n  - repositories: [app]\n    keep: {newest: 1}\n",
			build: func(v *inv, r *repo) ([]storage.Digest, []storage.Digest) {
				keep, drop := v.image(r, 1), v.image(r, 1)
				v.tag(r, "new", keep, now)
				v.tag(r, "old", drop, old)
				sig := v.referrer(r, keep)
				sigsig := v.referrer(r, sig)
				v.tag(r, cosign(keep, "sig"), sig, old)
				v.tag(r, cosign(sig, "sig"), sigsig, old)
				dropSig := v.referrer(r, drop)
				v.tag(r, cosign(drop, "sig"), dropSig, old)
				return []storage.Digest{keep, sig, sigsig}, []storage.Digest{drop, dropSig}
			}, keptTags: 3, deletedSigTags: 1},
		{name: "a policy deleting every tag warns", policy: "rules:\n  - repositories: [app]\n    keep: {newest: 0}\n",
			build: func(v *inv, r *repo) ([]storage.Digest, []storage.Digest) {
				a := v.image(r, 1)
				v.tag(r, "a", a, old)
				return nil, []storage.Digest{a}
			}, everyTagDeleted: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newInv()
			r := v.repo("app")
			wantKept, wantDeleted := c.build(v, r)
			opts := c.opts
			opts.StartedAt, opts.DeleteUntagged = now, true
			if c.policy != "" {
				opts.Policy = mustPolicy(t, c.policy)
			}
			inv := v.build()
			m := SelectRoots(inv, 0, opts)
			m.Close(FindAliases(inv))
			var kept []walker.ID
			for id := range m.Kept {
				kept = append(kept, id)
			}
			if got := digests(inv.Digests, kept); !slices.Equal(got, strs(wantKept...)) {
				t.Errorf("kept %v, want %v", got, strs(wantKept...))
			}
			var deleted []walker.ID
			for _, rev := range m.Revisions {
				deleted = append(deleted, rev.ID)
				var history []string
				for _, e := range m.History {
					if e.ID == rev.ID && e.Of == HistoryOfRevision {
						history = append(history, e.Tag)
					}
				}
				if c.wantTagIndex != "" && !slices.Equal(history, []string{c.wantTagIndex}) {
					t.Errorf("history entries of %s: %v", inv.Digests.Digest(rev.ID), history)
				}
			}
			if got := digests(inv.Digests, deleted); !slices.Equal(got, strs(wantDeleted...)) {
				t.Errorf("deleted %v, want %v", got, strs(wantDeleted...))
			}
			if m.RevisionsTooRecent != c.recent || m.RevisionsInDoubt != c.inDoubt || len(m.Broken) != c.broken {
				t.Errorf("too recent %d, in doubt %d, broken %v; want %d, %d, %d", m.RevisionsTooRecent, m.RevisionsInDoubt, m.Broken, c.recent, c.inDoubt, c.broken)
			}
			if c.policy != "" && c.keptTags > 0 {
				if m.LiveTags != c.keptTags || len(m.Tags) != 1+c.deletedSigTags {
					t.Errorf("live tags %d, deleted %v; want %d live, %d deleted", m.LiveTags, m.Tags, c.keptTags, 1+c.deletedSigTags)
				}
			}
			if m.EveryTagDeleted != c.everyTagDeleted {
				t.Errorf("every tag deleted %v, want %v", m.EveryTagDeleted, c.everyTagDeleted)
			}
		})
	}
}

// TestBlobStages: MarkBlobs, SweepBlobs and SweepLayerLinks over two
// repositories: marking is global, links are per repository.
func TestBlobStages(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		// build returns the blobs it expects deleted and the layer links
		// it expects deleted ("repo@digest").
		build                        func(v *inv, a, b *repo) (blobs []storage.Digest, links []string)
		sweepable                    bool
		tooRecent, unswept, linksNew int
	}{
		{name: "a layer shared with a kept image in another repository stays", sweepable: true, build: func(v *inv, a, b *repo) ([]storage.Digest, []string) {
			img := v.image(a, 1)
			v.tag(a, "a", img, old)
			u := v.image(b, 0)
			shared := v.Manifests[img].Refs.Blobs[1]
			v.Manifests[u].Refs.Blobs = append(v.Manifests[u].Refs.Blobs, shared)
			b.Layers = append(b.Layers, link{Digest: shared})
			cfg := v.Manifests[u].Refs.Blobs[0]
			return []storage.Digest{u, cfg}, []string{"b@" + cfg.String()}
		}},
		{name: "a recent orphan is kept and counted", sweepable: true, build: func(v *inv, a, b *repo) ([]storage.Digest, []string) {
			d := v.blob()
			v.Blobs[d] = walker.Blob{Size: 1, ModTime: walker.TimeOf(now)}
			return nil, nil
		}, tooRecent: 1},
		{name: "an incomplete graph sweeps nothing", sweepable: false, build: func(v *inv, a, b *repo) ([]storage.Digest, []string) {
			v.blob()
			return nil, nil
		}, unswept: 1},
		{name: "a link to a blob already gone goes, a recent one stays", sweepable: true, build: func(v *inv, a, b *repo) ([]storage.Digest, []string) {
			gone, young := v.blob(), v.blob()
			delete(v.Blobs, gone)
			delete(v.Blobs, young)
			a.Layers = append(a.Layers, link{Digest: gone, ModTime: walker.TimeOf(old)}, link{Digest: young, ModTime: walker.TimeOf(now)})
			return nil, []string{"a@" + gone.String()}
		}, linksNew: 1},
		{name: "an alias keeps the blob it names", sweepable: true, build: func(v *inv, a, b *repo) ([]storage.Digest, []string) {
			target := v.blob()
			sha512, _ := storage.ParseDigest("sha512:" + strings.Repeat("ab", 64))
			img := v.manifest(a, storage.Refs{MediaType: storage.MediaTypeOCIManifest, Blobs: []storage.Digest{sha512}})
			a.Layers = append(a.Layers, link{Digest: sha512, Target: target})
			v.tag(a, "a", img, old)
			return nil, nil
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newInv()
			a, b := v.repo("a"), v.repo("b")
			wantBlobs, wantLinks := c.build(v, a, b)
			inv := v.build()
			opts := Options{DeleteUntagged: true, StartedAt: now, MinAge: time.Hour}
			aliases := FindAliases(inv)
			var repos []*RepoMark
			for i := range inv.Repos {
				m := SelectRoots(inv, RepoIndex(i), opts)
				m.Close(aliases)
				repos = append(repos, m)
			}
			marked := MarkBlobs(inv, repos, aliases)
			s := SweepBlobs(inv, marked, opts.Cutoff(), c.sweepable)
			var blobs []walker.ID
			for _, x := range s.Blobs {
				blobs = append(blobs, x.ID)
				if !s.Deleted.Has(x.ID) {
					t.Errorf("blob %s planned, not in Deleted", inv.Digests.Digest(x.ID))
				}
			}
			if got := digests(inv.Digests, blobs); !slices.Equal(got, strs(wantBlobs...)) {
				t.Errorf("blobs %v, want %v", got, strs(wantBlobs...))
			}
			if s.TooRecent != c.tooRecent || s.Unswept != c.unswept {
				t.Errorf("too recent %d, unswept %d; want %d, %d", s.TooRecent, s.Unswept, c.tooRecent, c.unswept)
			}
			links, tooRecent := SweepLayerLinks(inv, marked, s.Deleted, opts.Cutoff())
			var got []string
			for _, l := range links {
				got = append(got, inv.Repos[l.Repo].Name+"@"+inv.Digests.Digest(l.ID).String())
			}
			slices.Sort(got)
			slices.Sort(wantLinks)
			if !slices.Equal(got, wantLinks) || tooRecent != c.linksNew {
				t.Errorf("layer links %v (%d too recent), want %v (%d)", got, tooRecent, wantLinks, c.linksNew)
			}
		})
	}
}

func TestSweepBlobsAttributesToTheFirstRepository(t *testing.T) {
	t.Parallel()
	v := newInv()
	a, b := v.repo("a"), v.repo("b")
	u := v.image(b, 1)
	a.Layers = append(a.Layers, link{Digest: v.Manifests[u].Refs.Blobs[1]})
	orphan := v.blob()
	inv := v.build()
	s := SweepBlobs(inv, NewBitset(0), now, true)
	want := map[storage.Digest]string{u: "b", v.Manifests[u].Refs.Blobs[0]: "b", v.Manifests[u].Refs.Blobs[1]: "a", orphan: ""}
	for _, x := range s.Blobs {
		var name string
		if x.Repo != NoRepo {
			name = inv.Repos[x.Repo].Name
		}
		if d := inv.Digests.Digest(x.ID); name != want[d] {
			t.Errorf("blob %s attributed to %q, want %q", d, name, want[d])
		}
	}
	if len(s.Blobs) != len(want) {
		t.Errorf("%d blobs, want %d", len(s.Blobs), len(want))
	}
}

func TestCompactRepo(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name                        string
		build                       func(v *inv, r *repo)
		orphanIndex, folders, loads int
		empty                       bool
	}{
		{name: "history of a manifest the repository no longer holds", build: func(v *inv, r *repo) {
			a, gone := v.image(r, 1), v.blob()
			v.tag(r, "a", a, old)
			r.Tags[0].Index = append(r.Tags[0].Index, gone)
		}, orphanIndex: 1},
		{name: "folders of manifests deleted through the API", build: func(v *inv, r *repo) {
			v.tag(r, "a", v.image(r, 1), old)
			r.Deleted = []link{{Digest: v.blob()}, {Digest: v.blob()}}
		}, folders: 2},
		{name: "an untagged repository is empty", build: func(v *inv, r *repo) { v.image(r, 1) }, empty: true},
		{name: "a kept tag is not empty", build: func(v *inv, r *repo) { v.tag(r, "a", v.image(r, 1), old) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newInv()
			r := v.repo("app")
			c.build(v, r)
			inv := v.build()
			inv.Repos[0].Uploads = []walker.Upload{{ID: "old", StartedAt: old, Keys: []string{storage.UploadStartedAtPath("app", "old")}}}
			opts := Options{DeleteUntagged: true, StartedAt: now, Compact: CompactAll}
			m := SelectRoots(inv, 0, opts)
			m.Close(FindAliases(inv))
			got := CompactRepo(m)
			for _, e := range got.History {
				if e.Of != HistoryOfAbsent {
					t.Errorf("history entry %+v of compaction: want HistoryOfAbsent", e)
				}
			}
			if len(got.History) != c.orphanIndex || len(got.RevisionFolders) != c.folders || len(got.Uploads) != 1 || got.Empty != c.empty {
				t.Errorf("orphan history %v, folders %v, uploads %v, empty %v; want %d, %d, 1, %v", got.History, got.RevisionFolders, got.Uploads, got.Empty, c.orphanIndex, c.folders, c.empty)
			}
			// A young upload keeps the repository.
			// An upload folder holding no file (a run stopped while
			// deleting it) is stale, however young or undated.
			inv.Repos[0].Uploads = append(inv.Repos[0].Uploads, walker.Upload{ID: "emptied"})
			if got := CompactRepo(m); got.Empty != c.empty || len(got.Uploads) != 2 || len(got.Uploads[1].Files) != 0 {
				t.Errorf("with an empty upload folder: empty %v, uploads %v; want %v and it planned without files", got.Empty, got.Uploads, c.empty)
			}
			// A young upload keeps the repository.
			inv.Repos[0].Uploads = append(inv.Repos[0].Uploads, walker.Upload{ID: "young", StartedAt: now, Keys: []string{storage.UploadStartedAtPath("app", "young")}})
			if got := CompactRepo(m); got.Empty || len(got.Uploads) != 2 {
				t.Errorf("with a young upload: empty %v, uploads %v", got.Empty, got.Uploads)
			}
		})
	}
}

// TestCompactEmptyRepos: the links already planned of one candidate are
// not those of another, whatever their order.
func TestCompactEmptyRepos(t *testing.T) {
	t.Parallel()
	l := func(d storage.Digest, at time.Time) link { return link{Digest: d, ModTime: walker.TimeOf(at)} }
	v := newInv()
	x, y, z := v.blob(), v.blob(), v.blob()
	v.repo("a").Layers = []link{l(x, old), l(y, old)}   // x planned: y goes with the repository
	v.repo("b").Layers = []link{l(x, old), l(y, now)}   // y is young: stays
	v.repo("c").Layers = []link{l(x, old), {Digest: z}} // z's age unknown
	v.repo("d").Layers = []link{l(x, old), l(z, old)}   // not a candidate
	v.repo("e").Layers = []link{l(y, old), {Digest: x}} // x planned: unknown age does not matter
	inv := v.build()
	id := inv.Digests.Lookup
	planned := []LayerLink{{0, id(x)}, {1, id(x)}, {3, id(x)}, {4, id(x)}}
	got := CompactEmptyRepos(inv, []RepoIndex{0, 1, 2, 4}, planned, now.Add(-time.Hour))
	if !slices.Equal(got.Repos, []RepoIndex{0, 4}) || !slices.Equal(got.LinkAgesWanted, []string{"c"}) {
		t.Errorf("empty %v, link ages wanted %v", got.Repos, got.LinkAgesWanted)
	}
	want := []LayerLink{{0, id(y)}, {4, id(y)}}
	if !slices.Equal(got.LayerLinks, want) {
		t.Errorf("extra layer links %v, want %v", got.LayerLinks, want)
	}
}
