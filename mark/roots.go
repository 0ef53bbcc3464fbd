package mark

import (
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// RepoMark is what mark decides for one repository: SelectRoots (stage 1)
// fills in the tags' fate and the roots, Close (stage 2) the manifests kept
// and the revisions to delete. Its exported fields are its results; the
// others carry stage 1's roots to stage 2.
type RepoMark struct {
	Repo  *walker.Repo
	Index RepoIndex

	// Kept are the manifests the repository keeps (revision links that
	// stay, and what they reference); stage 3 marks their blobs. Compute
	// drops it once they are marked.
	Kept map[walker.ID]bool
	// Tags are the tags to delete; Decisions the verdicts on every tag a
	// policy decided, in the order they were reached.
	Tags      []Tag
	Decisions []TagDecision
	// Revisions are the untagged revision links to delete.
	Revisions []Revision
	// History are the tag history entries to delete: of the deleted tags,
	// then of the deleted revisions.
	History []HistoryEntry
	// Broken are the kept images of the repository that cannot be served
	// whole.
	Broken []Broken
	// RevisionsTooRecent and RevisionsInDoubt count for Plan.Kept.
	RevisionsTooRecent, RevisionsInDoubt int
	// Doubt says why the repository's untagged revisions are all kept, or
	// is nil.
	Doubt *Doubt
	// GraphErrs are the manifests a kept root reaches that could not be
	// read or parsed: no blob may be swept.
	GraphErrs []Doubt
	// LiveTags counts the tags that stay and serve (point somewhere, or
	// could not be read).
	LiveTags int
	// EveryTagDeleted is set when the policy deletes every tag of the
	// repository.
	EveryTagDeleted bool
	// Emptied is set when the repository had serving tags and keeps none.
	Emptied *Emptied

	inv  *walker.Inventory
	opts Options
	// linked are the manifests the repository holds (a revision link):
	// the registry serves no other from it. strict is set when that is
	// known, for a readable repository of a name the registry serves; a
	// tag or index child naming another manifest is then broken, and keeps
	// nothing of it.
	linked map[walker.ID]bool
	strict bool
	// live are the tags that stay, pending the signature tags that wait
	// for their subject's fate (stage 2).
	live, pending []walker.Tag
	// young are the revisions too recent to delete, subjects the
	// referrers of each manifest the repository holds.
	young    []walker.ID
	subjects map[walker.ID][]walker.ID
	// work is the closure's stack; reached, when set, collects every ID a
	// kept manifest keeps.
	work    []walker.ID
	reached map[walker.ID]bool
	// tagsOf are the tags pointing at each manifest, once one is broken.
	tagsOf map[walker.ID][]string
	// leftAlone are the details of the tags kept for the repository's
	// doubt.
	leftAlone *Details
}

// SelectRoots is stage 1 for repository i of inv: it decides its tags (by
// the policy, by compaction of half-deleted tags; a name outside the
// grammar is kept as it is), and its roots: the manifest of each kept tag
// the repository holds, and the revisions kept whatever reaches them (every
// one without DeleteUntagged, corrupt ones always). Signature tags that
// follow their subject wait for Close. A repository that is unreadable or
// of a name the registry would not write is left alone: every tag and
// revision is a root.
func SelectRoots(inv *walker.Inventory, i RepoIndex, opts Options) *RepoMark {
	r := inv.Repos[i]
	m := &RepoMark{Repo: r, Index: i, inv: inv, opts: opts, Kept: make(map[walker.ID]bool, len(r.Revisions))}
	if r.Unreadable != nil {
		m.Doubt = &Doubt{Repo: r.Name, Kind: RepoUnreadable, Err: r.Unreadable.Error()}
	}
	// A name the registry would not write: kept whole, as found.
	foreign := storage.ValidRepoName(r.Name)
	if foreign != nil && m.Doubt == nil {
		m.Doubt = &Doubt{Repo: r.Name, Kind: RepoNameForeign, Err: foreign.Error()}
	}
	m.linked = make(map[walker.ID]bool, len(r.Revisions))
	for _, l := range r.Revisions {
		m.linked[l.ID] = true
	}
	m.strict = r.Unreadable == nil && foreign == nil

	// Tags: delete what the policy says, keep the rest. Signature tags
	// that follow their subject are decided after the closure.
	decisions := map[string]TagDecision{}
	if pol := opts.Policy; pol != nil && r.Unreadable == nil {
		for _, d := range pol.Evaluate(r.Name, r.Tags, opts.StartedAt) {
			decisions[d.Tag] = d
		}
	}
	for _, t := range r.Tags {
		d, decided := decisions[t.Name]
		_, _, isSig := SignatureSubject(t.Name)
		switch {
		case r.Unreadable != nil || foreign != nil:
		case storage.ValidTag(t.Name) != nil:
			// A name the registry would not write: kept as it is, by every
			// rule and every compaction (sweep refuses its keys too).
			d = TagDecision{Keep: true, Why: Reason{Kind: OutsideGrammar}}
		case opts.Compact.Links && t.Current == 0 && t.Err == nil:
			m.deleteTag(t, TagDecision{Why: Reason{Kind: NoCurrentLink}})
			continue
		case opts.Policy == nil:
		case !decided && isSig:
			m.pending = append(m.pending, t)
			continue
		case !d.Keep:
			m.deleteTag(t, d)
			continue
		}
		m.keepTag(t, d)
		if t.Err != nil {
			m.Doubt = &Doubt{Repo: r.Name, Kind: TagUnreadable, Tag: t.Name, Err: t.Err.Error()}
		}
	}

	// Revisions: roots when untagged content is kept, when in doubt, when
	// corrupt (kept whatever: we cannot tell what they are); too recent
	// ones wait for the closure, which tells whether anything else keeps
	// them.
	m.subjects = make(map[walker.ID][]walker.ID)
	for _, l := range r.Revisions {
		man := inv.Manifests[l.ID]
		if man != nil && man.Err == nil && man.Subject != 0 {
			m.subjects[man.Subject] = append(m.subjects[man.Subject], l.ID)
		}
		if man != nil && man.Err != nil && !storage.IsNotFound(man.Err) && opts.DeleteUntagged {
			// An untagged manifest we cannot parse may be a referrer of a kept
			// one: keep every untagged revision of this repository.
			m.Doubt = &Doubt{Repo: r.Name, Kind: ManifestUnparsed, Digest: inv.Digests.Digest(l.ID).String(), Err: man.Err.Error()}
		}
	}
	for _, l := range r.Revisions {
		switch {
		case !opts.DeleteUntagged, l.Corrupt():
			m.keep(l.ID)
			m.keep(l.Target())
		case l.ModTime.After(opts.Cutoff()):
			m.young = append(m.young, l.ID)
		}
	}
	return m
}

// release drops what stages 1 and 2 worked with and stage 3's marking
// read (markBlobs), once both are done, keeping m's results for the plan:
// a registry's marks are never held whole at once (Compute).
func (m *RepoMark) release() {
	m.Kept, m.linked, m.subjects, m.reached, m.tagsOf = nil, nil, nil, nil, nil
	m.live, m.pending, m.young, m.work = nil, nil, nil, nil
	m.leftAlone = nil
}

// Roots returns the manifests stage 1 keeps whatever reaches them: those
// of the kept tags and the kept revisions. Close empties it.
func (m *RepoMark) Roots() []walker.ID { return m.work }

// keepTag keeps tag t: its manifest is a root if the repository holds it.
func (m *RepoMark) keepTag(t walker.Tag, d TagDecision) {
	m.live = append(m.live, t)
	if m.opts.Policy != nil {
		if d.Why.Kind == "" {
			if m.leftAlone == nil || m.leftAlone.Doubt != m.Doubt {
				m.leftAlone = &Details{Doubt: m.Doubt}
			}
			d.Why = Reason{Kind: LeftAlone, Details: m.leftAlone}
		}
		d.Repo, d.Tag, d.Keep = m.Repo.Name, t.Name, true
		m.Decisions = append(m.Decisions, d)
	}
	m.keepServed(t.Current)
}

// keepServed keeps the manifest a tag names, if the repository holds it.
func (m *RepoMark) keepServed(id walker.ID) {
	switch {
	case id == 0 || !m.strict || m.linked[id]:
	case !m.inv.Digests.Stored(id):
		m.broken(id, Broken{Problem: ManifestMissing})
		return
	default:
		m.broken(id, Broken{Problem: ManifestNotLinked})
		return
	}
	m.keep(id)
}

// keep keeps manifest id and queues it for the closure.
func (m *RepoMark) keep(id walker.ID) {
	if m.reached != nil {
		m.reached[id] = true
	}
	if id != 0 && !m.Kept[id] {
		m.Kept[id] = true
		m.work = append(m.work, id)
	}
}

// deleteTag plans the deletion of tag t and records why.
func (m *RepoMark) deleteTag(t walker.Tag, d TagDecision) {
	d.Repo, d.Tag, d.Keep = m.Repo.Name, t.Name, false
	m.Decisions = append(m.Decisions, d)
	m.Tags = append(m.Tags, Tag{Repo: m.Index, Name: t.Name, HasCurrent: t.Current != 0, Why: d.Why})
	for _, id := range t.Index {
		m.History = append(m.History, HistoryEntry{Repo: m.Index, Tag: t.Name, ID: id, Of: HistoryOfTag})
	}
}

// broken records a kept manifest that cannot be served whole (b's
// problem), once for each tag that points at it.
func (m *RepoMark) broken(id walker.ID, b Broken) {
	b.Repo, b.Digest = m.Repo.Name, m.inv.Digests.Digest(id).String()
	if m.tagsOf == nil {
		m.tagsOf = make(map[walker.ID][]string)
		for _, t := range m.Repo.Tags {
			m.tagsOf[t.Current] = append(m.tagsOf[t.Current], t.Name)
		}
	}
	for _, tag := range m.tagsOf[id] {
		b.Tag = tag
		m.Broken = append(m.Broken, b)
	}
	if len(m.tagsOf[id]) == 0 {
		m.Broken = append(m.Broken, b)
	}
}
