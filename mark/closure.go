package mark

import (
	"slices"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// Aliases map a blob pushed under a digest of another algorithm (its layer
// link's ID) to the blob it is stored as (the link's Target): marking the
// one must keep the other. They are the inventory's, over every
// repository.
type Aliases map[walker.ID][]walker.ID

// FindAliases returns the aliases of inv's layer links.
func FindAliases(inv *walker.Inventory) Aliases {
	alias := make(Aliases)
	for _, r := range inv.Repos {
		for _, l := range r.Layers {
			if l.Target() != 0 && !l.Corrupt() {
				alias[l.ID] = append(alias[l.ID], l.Target())
			}
		}
	}
	return alias
}

// Close is stage 2: it keeps what the roots reach in the repository
// (children of kept indexes and manifest lists, referrers of kept
// manifests), decides the signature tags that follow their subject, keeps
// the revisions too recent to delete with what they reach, and lists the
// untagged revisions to delete (none when the repository is in doubt).
// aliases tell a blob stored under another digest from a missing one.
func (m *RepoMark) Close(aliases Aliases) {
	r := m.Repo
	m.closure(aliases)
	m.followSubjects(aliases)

	// Revisions too recent to delete stay, with what they keep. They count
	// as kept for being recent only when nothing else would keep them: the
	// manifest of a kept tag, a referrer or child of a kept manifest (old
	// or recent itself) stays whatever its age. This is the one place that
	// counts them.
	var recent []walker.ID
	for _, id := range m.young {
		if !m.Kept[id] {
			recent = append(recent, id)
			m.keep(id)
		}
	}
	m.reached = make(map[walker.ID]bool)
	m.closure(aliases)
	for _, id := range recent {
		if !m.reached[id] {
			m.RevisionsTooRecent++
		}
	}
	m.reached = nil
	m.followSubjects(aliases)
	for _, t := range m.pending {
		subj, what, _ := SignatureSubject(t.Name)
		m.deleteTag(t, TagDecision{Why: Reason{Kind: SubjectDeleted, Details: &Details{What: what, Subject: subj}}})
	}
	m.pending = nil
	m.EveryTagDeleted = m.opts.Policy != nil && len(r.Tags) > 0 && len(m.live) == 0
	m.emptied()

	if len(m.GraphErrs) > 0 && m.Doubt == nil {
		d := m.GraphErrs[0]
		m.Doubt = &d
	}
	for _, t := range m.live {
		if serving(t) {
			m.LiveTags++
		}
	}
	if m.opts.DeleteUntagged {
		m.untagged(aliases)
	}
}

// untagged lists the revisions nothing keeps, with the history entries of
// the kept tags that name them; a repository in doubt keeps them all, with
// what they reference.
func (m *RepoMark) untagged(aliases Aliases) {
	indexOf := make(map[walker.ID][]string)
	for _, t := range m.live {
		if storage.ValidTag(t.Name) != nil {
			continue // kept as it is, history included
		}
		for _, id := range t.Index {
			indexOf[id] = append(indexOf[id], t.Name)
		}
	}
	for _, l := range m.Repo.Revisions {
		if m.Kept[l.ID] {
			continue
		}
		if m.Doubt != nil {
			// It stays, so what it references stays too.
			m.RevisionsInDoubt++
			m.keep(l.ID)
			continue
		}
		m.Revisions = append(m.Revisions, Revision{Repo: m.Index, ID: l.ID})
		for _, tag := range indexOf[l.ID] {
			m.History = append(m.History, HistoryEntry{Repo: m.Index, Tag: tag, ID: l.ID, Of: HistoryOfRevision})
		}
	}
	m.closure(aliases)
}

// closure keeps the children of kept indexes and the referrers of kept
// manifests, until nothing is left to visit.
func (m *RepoMark) closure(aliases Aliases) {
	for len(m.work) > 0 {
		id := m.work[len(m.work)-1]
		m.work = m.work[:len(m.work)-1]
		m.visit(id, aliases)
	}
}

// followSubjects keeps the signature tags whose subject is kept, with what
// they reach: signatures of signatures included, so until nothing changes.
func (m *RepoMark) followSubjects(aliases Aliases) {
	for changed := true; changed; {
		changed = false
		rest := m.pending[:0]
		for _, t := range m.pending {
			subj, what, _ := SignatureSubject(t.Name)
			sd, err := storage.ParseDigest(subj)
			if err == nil && m.Kept[m.inv.Digests.Lookup(sd)] {
				m.keepTag(t, TagDecision{Keep: true, Why: Reason{Kind: SubjectKept, Details: &Details{What: what, Subject: subj}}})
				m.closure(aliases)
				changed = true
				continue
			}
			rest = append(rest, t)
		}
		m.pending = rest
	}
}

// visit checks one kept manifest and keeps its children and referrers.
func (m *RepoMark) visit(id walker.ID, aliases Aliases) {
	for _, s := range m.subjects[id] {
		m.keep(s)
	}
	t := m.inv.Digests
	man := m.inv.Manifests[id]
	switch {
	case man == nil || storage.IsNotFound(man.Err):
		m.broken(id, Broken{Problem: ManifestMissing})
		return
	case man.Err != nil:
		m.GraphErrs = append(m.GraphErrs, Doubt{Repo: m.Repo.Name, Kind: ManifestUnparsed, Digest: t.Digest(id).String(), Err: man.Err.Error()})
		return
	}
	for _, c := range man.Children() {
		if m.strict && !m.linked[c] {
			// The registry cannot serve it from here (upstream's GC
			// does not mark what it references either).
			m.broken(id, Broken{Problem: ManifestNotLinked, Missing: t.Digest(c).String()})
			continue
		}
		m.keep(c)
	}
	if !t.Listed() {
		// The blob store was not listed (a sharded run's mark shard): a
		// blob missing is found by the sweep shard of its range.
		return
	}
	for _, b := range man.Blobs() {
		if _, ok := aliases.Stored(t, b); !ok {
			m.broken(id, Broken{Problem: BlobMissing, Missing: t.Digest(b).String()})
		}
	}
}

// serving reports whether a tag serves: it has a current link, or one that
// could not be read.
func serving(t walker.Tag) bool { return t.Current != 0 || t.Err != nil }

// emptied records the repository in Emptied if it had tags that serve and
// keeps none of them.
func (m *RepoMark) emptied() {
	had := 0
	for _, t := range m.Repo.Tags {
		if serving(t) {
			had++
		}
	}
	if had == 0 || slices.ContainsFunc(m.live, serving) {
		return
	}
	e := Emptied{Repo: m.Repo.Name, Tags: had}
	if pol := m.opts.Policy; pol != nil {
		for i := range pol.Rules {
			if pol.Rules[i].Matches(m.Repo.Name) {
				e.Rules = append(e.Rules, i+1)
			}
		}
	}
	m.Emptied = &e
}
