package mark

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// inv builds inventories by hand: mark is pure, so its tests need no
// storage. Tests shape it by digest, as a walk would find the store; build
// gives the walker.Inventory of it, with IDs.
type inv struct {
	Blobs     map[storage.Digest]walker.Blob
	Manifests map[storage.Digest]*manifest
	Repos     []*repo
	n         int
}

type manifest struct {
	Refs storage.Refs
	Err  error
}

type repo struct {
	Name       string
	Tags       []tag
	Revisions  []link
	Layers     []link
	Deleted    []link
	Unreadable error
}

type link struct {
	Digest  storage.Digest
	ModTime walker.Time
	Corrupt bool
	Target  storage.Digest
}

type tag struct {
	Name     string
	Current  storage.Digest
	PushedAt time.Time
	Index    []storage.Digest
	Err      error
}

func newInv() *inv {
	return &inv{Blobs: map[storage.Digest]walker.Blob{}, Manifests: map[storage.Digest]*manifest{}}
}

// build returns the inventory as a walk would.
func (v *inv) build() *walker.Inventory {
	return v.buildWith(walker.NewDigests(v.Blobs))
}

// buildWith returns the inventory over the digest table t, as a recheck
// walk shares the first walk's table.
func (v *inv) buildWith(t *walker.Digests) *walker.Inventory {
	out := &walker.Inventory{Digests: t, Manifests: map[walker.ID]*walker.Manifest{}}
	for d, m := range v.Manifests {
		wm := &walker.Manifest{Err: m.Err, Size: 100}
		if m.Err == nil {
			wm = walker.NewManifest(t, m.Refs, 100)
		}
		out.Manifests[t.Intern(d)] = wm
	}
	links := func(ls []link) []walker.Link {
		var out []walker.Link
		for _, l := range ls {
			out = append(out, walker.NewLink(t.Intern(l.Digest), l.ModTime, t.Intern(l.Target), l.Corrupt))
		}
		return out
	}
	repos := slices.Clone(v.Repos)
	slices.SortFunc(repos, func(a, b *repo) int { return strings.Compare(a.Name, b.Name) })
	for _, r := range repos {
		wr := &walker.Repo{Name: r.Name, Revisions: links(r.Revisions), Layers: links(r.Layers), Deleted: links(r.Deleted), Unreadable: r.Unreadable}
		for _, tg := range r.Tags {
			wt := walker.Tag{Name: tg.Name, Current: t.Intern(tg.Current), PushedAt: tg.PushedAt, Err: tg.Err}
			for _, d := range tg.Index {
				wt.Index = append(wt.Index, t.Intern(d))
			}
			wr.Tags = append(wr.Tags, wt)
		}
		out.Repos = append(out.Repos, wr)
	}
	return out
}

var old = now.Add(-30 * 24 * time.Hour)

// digest returns a fresh digest and stores a blob of 100 bytes under it.
func (v *inv) blob() storage.Digest {
	v.n++
	d, _ := storage.DigestFromHex("sha256", fmt.Sprintf("%x", sha256.Sum256(fmt.Appendf(nil, "%d", v.n))))
	v.Blobs[d] = walker.Blob{Size: 100, ModTime: walker.TimeOf(old)}
	return d
}

func (v *inv) repo(name string) *repo {
	r := &repo{Name: name}
	v.Repos = append(v.Repos, r)
	return r
}

func (v *inv) manifest(r *repo, refs storage.Refs) storage.Digest {
	d := v.blob()
	v.Manifests[d] = &manifest{Refs: refs}
	r.Revisions = append(r.Revisions, link{Digest: d, ModTime: walker.TimeOf(old)})
	for _, b := range refs.Blobs {
		r.Layers = append(r.Layers, link{Digest: b})
	}
	return d
}

// image adds an image manifest with a config and n layers to r.
func (v *inv) image(r *repo, n int) storage.Digest {
	refs := storage.Refs{MediaType: storage.MediaTypeOCIManifest, Blobs: []storage.Digest{v.blob()}}
	for range n {
		refs.Blobs = append(refs.Blobs, v.blob())
	}
	return v.manifest(r, refs)
}

func (v *inv) index(r *repo, children ...storage.Digest) storage.Digest {
	return v.manifest(r, storage.Refs{MediaType: storage.MediaTypeOCIIndex, Manifests: children})
}

func (v *inv) referrer(r *repo, subject storage.Digest) storage.Digest {
	return v.manifest(r, storage.Refs{MediaType: storage.MediaTypeOCIManifest, Blobs: []storage.Digest{v.blob()}, Subject: subject})
}

func (v *inv) tag(r *repo, name string, d storage.Digest, pushed time.Time) {
	for i := range r.Tags {
		if r.Tags[i].Name == name {
			r.Tags[i].Current, r.Tags[i].PushedAt = d, pushed
			r.Tags[i].Index = append(r.Tags[i].Index, d)
			return
		}
	}
	r.Tags = append(r.Tags, tag{Name: name, Current: d, PushedAt: pushed, Index: []storage.Digest{d}})
}

// cosign returns the fallback tag name of a signature of d.
func cosign(d storage.Digest, suffix string) string {
	return "sha256-" + d.Hex() + "." + suffix
}

// says spells a reason as the tests expect it, in the words report uses.
func says(why Reason) string {
	r := why.Detail()
	switch why.Kind {
	case NoRuleMatches:
		return "no rule matches"
	case MatchesTags:
		return "matches " + r.Pattern
	case KeptNewest:
		return fmt.Sprintf("newest %d", r.Newest)
	case KeptYounger:
		return "younger than " + r.YoungerThan
	case NoRuleKeeps:
		if len(r.Rules) == 1 {
			return fmt.Sprintf("no rule keeps it (rule %d matches)", r.Rules[0])
		}
		return fmt.Sprintf("no rule keeps it (rules %s match)", strings.Trim(strings.Join(strings.Fields(fmt.Sprint(r.Rules)), ", "), "[]"))
	case SubjectKept:
		return r.What + " of kept subject " + r.Subject
	case SubjectDeleted:
		return r.What + " of deleted subject " + r.Subject
	}
	return string(why.Kind)
}
