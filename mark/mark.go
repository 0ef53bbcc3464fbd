package mark

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// timeSlack widens the grace period by what file times lag behind the
// clock the run's start is read from: Linux stamps files from a coarse clock
// (up to a few milliseconds behind), S3 truncates LastModified to the second.
// Without it, a layer uploaded just after a --min-age 0 run started may look
// older than the run, and be deleted under the manifest pushed after it.
const timeSlack = time.Second

// Compute decides what to delete in inv. Reachability is per repository
// (a repository serves only what it links), blob marking is global (a blob
// is garbage only when no kept manifest of any repository references it).
//
// Kept, per repository: every tag not in Options.DeleteTags; the manifest of
// each kept tag; without DeleteUntagged, every revision; and, transitively,
// children of kept indexes and manifest lists, and referrers (manifests
// whose subject is kept). Revisions modified after the cutoff are kept too.
func Compute(inv *walker.Inventory, opts Options) *Plan {
	t := inv.Digests
	p := &Plan{Options: opts, Cutoff: opts.StartedAt.Add(-opts.MinAge - timeSlack), Digests: t}
	marked := newBitset(t.Len())
	var graphErrs []string
	var emptyCandidates []int

	// Aliases: a blob pushed under a sha512 digest is stored under its
	// sha256 digest; marking the one must keep the other.
	alias := make(map[walker.ID][]walker.ID)
	for _, r := range inv.Repos {
		for _, l := range r.Layers {
			if l.Target != 0 && !l.Corrupt {
				alias[l.ID] = append(alias[l.ID], l.Target)
			}
		}
	}
	for i, r := range inv.Repos {
		p.Repos = append(p.Repos, r.Name)
		rp := repoPlan{inv: inv, r: r, p: p, ri: RepoIndex(i), opts: opts, alias: alias}
		rp.run()
		if rp.compact(rp.liveTags) && opts.Compact.Repos {
			emptyCandidates = append(emptyCandidates, i)
		}
		for id := range rp.kept {
			markManifest(inv, id, marked)
		}
		if storage.ValidRepoName(r.Name) != nil {
			for _, l := range r.Layers {
				marked.set(l.ID) // kept whole, with what it links
			}
		}
		graphErrs = append(graphErrs, rp.graphErrs...)
		if rp.doubt != "" && opts.DeleteUntagged {
			p.Doubts = append(p.Doubts, fmt.Sprintf("untagged manifests of %s kept: %s", r.Name, rp.doubt))
		}
	}

	for id, targets := range alias {
		if marked.has(id) {
			for _, a := range targets {
				marked.set(a)
			}
		}
	}

	p.PolicyEffect = policyEffect(inv, opts, p.Decisions)

	sweepBlobs := len(graphErrs) == 0
	for _, r := range inv.Repos {
		if r.Unreadable != nil {
			sweepBlobs = false
		}
	}

	// Blobs: unmarked and old enough, in digest order.
	deleted := newBitset(t.Len())
	for id, b := range t.StoredBlobs() {
		switch {
		case marked.has(id):
		case b.ModTime.After(p.Cutoff):
			p.Kept.BlobsTooRecent++
		case !sweepBlobs:
			p.Kept.BlobsUnswept++
		default:
			deleted.set(id)
			p.Blobs = append(p.Blobs, Blob{ID: id, Repo: NoRepo})
		}
	}
	// Attribute each deleted blob to the first repository (by name) that
	// linked it, for the per-repository report. p.Blobs is in ID order.
	if len(p.Blobs) > 0 {
		for i, r := range inv.Repos {
			for _, links := range [][]walker.Link{r.Revisions, r.Layers} {
				for _, l := range links {
					if !deleted.has(l.ID) {
						continue
					}
					if j, ok := slices.BinarySearchFunc(p.Blobs, l.ID, func(b Blob, id walker.ID) int { return cmp.Compare(b.ID, id) }); ok && p.Blobs[j].Repo == NoRepo {
						p.Blobs[j].Repo = RepoIndex(i)
					}
				}
			}
		}
	}

	// Layer links: to blobs this run deletes, or to blobs already gone.
	for i, r := range inv.Repos {
		if r.Unreadable != nil || storage.ValidRepoName(r.Name) != nil {
			continue
		}
		for _, l := range r.Layers {
			present := t.Stored(l.ID)
			switch {
			case l.Corrupt:
				continue
			case l.Target != 0:
				// An alias goes with its blob, never while it stays.
				if t.Stored(l.Target) && !deleted.has(l.Target) || marked.has(l.ID) {
					continue
				}
			case deleted.has(l.ID):
			case present || marked.has(l.ID):
				continue
			case l.ModTime.IsZero():
				continue // age unknown (its stat failed): keep
			case l.ModTime.After(p.Cutoff):
				p.Kept.LayerLinksTooRecent++
				continue
			}
			p.LayerLinks = append(p.LayerLinks, LayerLink{Repo: RepoIndex(i), ID: l.ID})
		}
	}

	if opts.Compact.Uploads {
		for _, u := range inv.Multipart {
			if u.Initiated.Before(opts.StartedAt.Add(-opts.Compact.UploadMaxAge)) {
				p.Multipart = append(p.Multipart, u)
			}
		}
	}

	// Empty repositories: every layer link goes too, if all are old enough
	// (a push in progress links its blobs before it puts its manifest).
	planned := make(map[LayerLink]bool)
	for _, l := range p.LayerLinks {
		if slices.Contains(emptyCandidates, int(l.Repo)) {
			planned[l] = true
		}
	}
	for _, i := range emptyCandidates {
		r := inv.Repos[i]
		var extra []LayerLink
		ok, unaged := true, false
		for _, l := range r.Layers {
			ll := LayerLink{Repo: RepoIndex(i), ID: l.ID}
			if planned[ll] {
				continue
			}
			if l.Corrupt || l.ModTime.After(p.Cutoff) {
				ok = false // young, or what it holds is unknown: kept
				break
			}
			unaged = unaged || l.ModTime.IsZero()
			extra = append(extra, ll)
		}
		switch {
		case !ok:
		case unaged:
			// The walk did not need these ages; the caller may read them
			// (walker.AgeLayerLinks) and compute the plan again.
			p.linkAgesWanted = append(p.linkAgesWanted, r.Name)
		default:
			p.LayerLinks = append(p.LayerLinks, extra...)
			p.EmptyRepos = append(p.EmptyRepos, r.Name)
		}
	}

	var errs []error
	if len(graphErrs) > 0 {
		errs = append(errs, fmt.Errorf("%w; no blob swept: %s", ErrIncompleteGraph, strings.Join(graphErrs, "; ")))
	}
	for _, r := range inv.Repos {
		if r.Unreadable != nil {
			errs = append(errs, fmt.Errorf("repository %s left alone and no blob swept: %w", r.Name, r.Unreadable))
		}
	}
	p.Err = errors.Join(errs...)
	return p
}

// markManifest marks a kept manifest's own blob and what it references.
// Children are kept manifests in their own right and marked as such.
func markManifest(inv *walker.Inventory, id walker.ID, marked bitset) {
	marked.set(id)
	m := inv.Manifests[id]
	if m == nil {
		return
	}
	for _, b := range m.Blobs() {
		marked.set(b)
	}
	for _, b := range m.Foreign() {
		marked.set(b)
	}
}

// bitset is a set of IDs: a bit each, where a map would take 50 bytes.
type bitset []uint64

func newBitset(maxID int) bitset { return make(bitset, maxID/64+1) }

func (b bitset) set(id walker.ID)      { b[id/64] |= 1 << (id % 64) }
func (b bitset) has(id walker.ID) bool { return b[id/64]&(1<<(id%64)) != 0 }

// repoPlan computes the kept manifests and the deletions of one repository.
type repoPlan struct {
	inv  *walker.Inventory
	r    *walker.Repo
	ri   RepoIndex
	p    *Plan
	opts Options

	alias map[walker.ID][]walker.ID
	kept  map[walker.ID]bool
	// linked are the manifests the repository holds (a revision link):
	// the registry serves no other from it. strict is set when that is
	// known, for a readable repository of a name the registry serves; a
	// tag or index child naming another manifest is then broken, and keeps
	// nothing of it.
	linked    map[walker.ID]bool
	strict    bool
	liveTags  int // tags that stay and point somewhere
	graphErrs []string
	doubt     string // why untagged revisions are all kept, if they are
}

func (rp *repoPlan) run() {
	r, inv := rp.r, rp.inv
	rp.kept = make(map[walker.ID]bool)
	var work []walker.ID
	var reached map[walker.ID]bool // when set, every ID a kept manifest keeps
	keep := func(id walker.ID) {
		if reached != nil {
			reached[id] = true
		}
		if id != 0 && !rp.kept[id] {
			rp.kept[id] = true
			work = append(work, id)
		}
	}

	if r.Unreadable != nil {
		rp.doubt = r.Unreadable.Error()
	}
	// A name the registry would not write: kept whole, as found.
	foreign := storage.ValidRepoName(r.Name)
	if foreign != nil && rp.doubt == "" {
		rp.doubt = foreign.Error()
	}
	rp.linked = make(map[walker.ID]bool, len(r.Revisions))
	for _, l := range r.Revisions {
		rp.linked[l.ID] = true
	}
	rp.strict = r.Unreadable == nil && foreign == nil
	// keepServed keeps the manifest a tag names, if the repository holds it.
	keepServed := func(id walker.ID) {
		switch {
		case id == 0 || !rp.strict || rp.linked[id]:
		case !inv.Digests.Stored(id):
			rp.broken(id, "manifest blob missing from the blob store")
			return
		default:
			rp.broken(id, "manifest "+inv.Digests.Digest(id).String()+" has no revision link in the repository")
			return
		}
		keep(id)
	}
	// Tags: delete what the policy says, keep the rest. Signature tags
	// that follow their subject are decided after the closure.
	decisions := map[string]TagDecision{}
	if pol := rp.opts.Policy; pol != nil && r.Unreadable == nil {
		for _, d := range pol.Evaluate(r.Name, r.Tags, rp.opts.StartedAt) {
			decisions[d.Tag] = d
		}
	}
	var liveTags, sigTags []walker.Tag
	for _, t := range r.Tags {
		d, decided := decisions[t.Name]
		_, _, isSig := SignatureSubject(t.Name)
		switch {
		case r.Unreadable != nil || foreign != nil:
		case storage.ValidTag(t.Name) != nil:
			// A name the registry would not write: kept as it is, by every
			// rule and every compaction (sweep refuses its keys too).
			d = TagDecision{Keep: true, Reason: "tag name outside the grammar: kept as it is"}
		case rp.opts.Compact.Links && t.Current == 0 && t.Err == nil:
			rp.deleteTag(t, TagDecision{Reason: "no current link (an interrupted tag delete)"})
			continue
		case rp.opts.Policy == nil:
		case !decided && isSig:
			sigTags = append(sigTags, t)
			continue
		case !d.Keep:
			rp.deleteTag(t, d)
			continue
		}
		rp.keepTag(t, d)
		liveTags = append(liveTags, t)
		if t.Err != nil {
			rp.doubt = fmt.Sprintf("tag %s of %s: %v", t.Name, r.Name, t.Err)
		}
		keepServed(t.Current)
	}

	// Revisions: roots when untagged content is kept, when in doubt, when
	// corrupt (kept whatever: we cannot tell what they are) or too recent.
	subjects := make(map[walker.ID][]walker.ID)
	for _, l := range r.Revisions {
		m := inv.Manifests[l.ID]
		if m != nil && m.Err == nil && m.Subject != 0 {
			subjects[m.Subject] = append(subjects[m.Subject], l.ID)
		}
		if m != nil && m.Err != nil && !storage.IsNotFound(m.Err) && rp.opts.DeleteUntagged {
			// An untagged manifest we cannot parse may be a referrer of a kept
			// one: keep every untagged revision of this repository.
			rp.doubt = fmt.Sprintf("manifest %s of %s: %v", inv.Digests.Digest(l.ID), r.Name, m.Err)
		}
	}
	var young []walker.ID
	for _, l := range r.Revisions {
		switch {
		case !rp.opts.DeleteUntagged, l.Corrupt:
			keep(l.ID)
			keep(l.Target)
		case l.ModTime.After(rp.p.Cutoff):
			young = append(young, l.ID)
		}
	}

	// Closure: children of kept indexes and referrers of kept manifests.
	closure := func() {
		for len(work) > 0 {
			d := work[len(work)-1]
			work = work[:len(work)-1]
			rp.visit(d, subjects, keep)
		}
	}
	closure()

	// Signature tags live and die with their subject, signatures of
	// signatures included: repeat until nothing changes.
	followSubjects := func() {
		for changed := true; changed; {
			changed = false
			rest := sigTags[:0]
			for _, t := range sigTags {
				subj, what, _ := SignatureSubject(t.Name)
				sd, err := storage.ParseDigest(subj)
				if err == nil && rp.kept[inv.Digests.Lookup(sd)] {
					rp.keepTag(t, TagDecision{Keep: true, Reason: what + " of kept subject " + subj})
					liveTags = append(liveTags, t)
					keepServed(t.Current)
					closure()
					changed = true
					continue
				}
				rest = append(rest, t)
			}
			sigTags = rest
		}
	}
	followSubjects()

	// Revisions too recent to delete stay, with what they keep. They count
	// as kept for being recent only when nothing else would keep them: the
	// manifest of a kept tag, a referrer or child of a kept manifest (old
	// or recent itself) stays whatever its age. This is the one place that
	// counts them.
	var recent []walker.ID
	for _, id := range young {
		if !rp.kept[id] {
			recent = append(recent, id)
			keep(id)
		}
	}
	reached = make(map[walker.ID]bool)
	closure()
	for _, id := range recent {
		if !reached[id] {
			rp.p.Kept.RevisionsTooRecent++
		}
	}
	reached = nil
	followSubjects()
	for _, t := range sigTags {
		subj, what, _ := SignatureSubject(t.Name)
		rp.deleteTag(t, TagDecision{Reason: what + " of deleted subject " + subj})
	}
	if rp.opts.Policy != nil && len(r.Tags) > 0 && len(liveTags) == 0 {
		rp.p.Warnings = append(rp.p.Warnings, fmt.Sprintf("the policy deletes every tag of %s (%d)", r.Name, len(r.Tags)))
	}
	rp.emptied(liveTags)

	if len(rp.graphErrs) > 0 && rp.doubt == "" {
		rp.doubt = rp.graphErrs[0]
	}

	rp.liveTags = 0
	for _, t := range liveTags {
		if t.Current != 0 || t.Err != nil {
			rp.liveTags++
		}
	}
	if !rp.opts.DeleteUntagged {
		return
	}
	// Untagged revisions: deleted unless kept or in doubt.
	indexOf := make(map[walker.ID][]string)
	for _, t := range liveTags {
		if storage.ValidTag(t.Name) != nil {
			continue // kept as it is, history included
		}
		for _, id := range t.Index {
			indexOf[id] = append(indexOf[id], t.Name)
		}
	}
	for _, l := range r.Revisions {
		if rp.kept[l.ID] {
			continue
		}
		if rp.doubt != "" {
			// It stays, so what it references stays too.
			rp.p.Kept.RevisionsInDoubt++
			keep(l.ID)
			continue
		}
		rp.p.Revisions = append(rp.p.Revisions, Revision{Repo: rp.ri, ID: l.ID, TagIndex: indexOf[l.ID]})
	}
	closure()
}

// compact plans the compaction of one repository, after its tags and
// revisions are decided: history entries of absent manifests and abandoned
// uploads. It returns whether the repository keeps no tag, no manifest and
// no young upload.
func (rp *repoPlan) compact(liveTags int) (empty bool) {
	r, c := rp.r, rp.opts.Compact
	if r.Unreadable != nil || storage.ValidRepoName(r.Name) != nil {
		return false
	}
	revs := rp.linked
	deletedTags := map[string]bool{}
	for _, t := range rp.p.Tags {
		if t.Repo == r.Name {
			deletedTags[t.Name] = true
		}
	}
	if c.Links {
		for _, t := range r.Tags {
			if deletedTags[t.Name] || storage.ValidTag(t.Name) != nil {
				continue
			}
			for _, id := range t.Index {
				if !revs[id] {
					rp.p.OrphanIndex = append(rp.p.OrphanIndex, IndexEntry{Repo: r.Name, Tag: t.Name, Digest: rp.inv.Digests.Digest(id)})
				}
			}
		}
		// Removing an empty folder is safe whatever its age: a push of
		// the manifest again fills it, and a folder holding a file stays.
		for _, l := range r.Deleted {
			rp.p.RevisionFolders = append(rp.p.RevisionFolders, RevisionFolder{Repo: r.Name, Digest: rp.inv.Digests.Digest(l.ID)})
		}
	}
	young := 0
	for _, u := range r.Uploads {
		if c.Uploads && !u.StartedAt.IsZero() && u.StartedAt.Before(rp.opts.StartedAt.Add(-c.UploadMaxAge)) {
			rp.p.Uploads = append(rp.p.Uploads, Upload{Repo: r.Name, ID: u.ID, Keys: u.Keys, Size: u.Size})
		} else {
			young++
		}
	}
	deletedRevs := 0
	for i := len(rp.p.Revisions) - 1; i >= 0 && rp.p.Revisions[i].Repo == rp.ri; i-- {
		deletedRevs++
	}
	return liveTags == 0 && deletedRevs == len(r.Revisions) && young == 0
}

// visit checks one kept manifest and keeps its children and referrers.
func (rp *repoPlan) visit(id walker.ID, subjects map[walker.ID][]walker.ID, keep func(walker.ID)) {
	for _, s := range subjects[id] {
		keep(s)
	}
	t := rp.inv.Digests
	m := rp.inv.Manifests[id]
	switch {
	case m == nil || storage.IsNotFound(m.Err):
		rp.broken(id, "manifest blob missing from the blob store")
		return
	case m.Err != nil:
		rp.graphErrs = append(rp.graphErrs, fmt.Sprintf("%s@%s: %v", rp.r.Name, t.Digest(id), m.Err))
		return
	}
	for _, c := range m.Children() {
		if rp.strict && !rp.linked[c] {
			// The registry cannot serve it from here (upstream's GC
			// does not mark what it references either).
			rp.broken(id, "child manifest "+t.Digest(c).String()+" has no revision link in the repository")
			continue
		}
		keep(c)
	}
	for _, b := range m.Blobs() {
		if !t.Stored(b) && len(rp.alias[b]) == 0 {
			rp.broken(id, "references missing blob "+t.Digest(b).String())
		}
	}
}

// emptied records the repository in Plan.Emptied if it had tags that serve
// (a current link, or one that could not be read) and keeps none of them.
func (rp *repoPlan) emptied(liveTags []walker.Tag) {
	serving := func(t walker.Tag) bool { return t.Current != 0 || t.Err != nil }
	had := 0
	for _, t := range rp.r.Tags {
		if serving(t) {
			had++
		}
	}
	if had == 0 || slices.ContainsFunc(liveTags, serving) {
		return
	}
	e := Emptied{Repo: rp.r.Name, Tags: had}
	if pol := rp.opts.Policy; pol != nil {
		for i := range pol.Rules {
			if pol.Rules[i].Matches(rp.r.Name) {
				e.Rules = append(e.Rules, i+1)
			}
		}
	}
	rp.p.Emptied = append(rp.p.Emptied, e)
}

// deleteTag plans the deletion of tag t and records why.
func (rp *repoPlan) deleteTag(t walker.Tag, d TagDecision) {
	d.Repo, d.Tag, d.Keep = rp.r.Name, t.Name, false
	rp.p.Decisions = append(rp.p.Decisions, d)
	index := make([]storage.Digest, len(t.Index))
	for i, id := range t.Index {
		index[i] = rp.inv.Digests.Digest(id)
	}
	rp.p.Tags = append(rp.p.Tags, Tag{Repo: rp.r.Name, Name: t.Name, HasCurrent: t.Current != 0, Index: index, Reason: d.Reason})
}

// keepTag records why tag t stays, when a policy decided.
func (rp *repoPlan) keepTag(t walker.Tag, d TagDecision) {
	if rp.opts.Policy == nil {
		return
	}
	if d.Reason == "" {
		d.Reason = "repository left alone: " + rp.doubt
	}
	d.Repo, d.Tag, d.Keep = rp.r.Name, t.Name, true
	rp.p.Decisions = append(rp.p.Decisions, d)
}

// broken records a kept manifest that cannot be served whole, naming the
// tags that point at it.
func (rp *repoPlan) broken(id walker.ID, reason string) {
	d := rp.inv.Digests.Digest(id)
	tagged := false
	for _, t := range rp.r.Tags {
		if t.Current == id {
			rp.p.Broken = append(rp.p.Broken, Broken{Repo: rp.r.Name, Tag: t.Name, Digest: d.String(), Reason: reason})
			tagged = true
		}
	}
	if !tagged {
		rp.p.Broken = append(rp.p.Broken, Broken{Repo: rp.r.Name, Digest: d.String(), Reason: reason})
	}
}
