package mark

import (
	"cmp"
	"slices"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// MarkBlobs is stage 3's marking: every blob a kept manifest of any
// repository references (its own blob, config, layers, foreign layers),
// every layer link of a repository of a name the registry would not write
// (kept whole, with what it links), and the blobs aliases name for what is
// marked.
func MarkBlobs(inv *walker.Inventory, repos []*RepoMark, aliases Aliases) Bitset {
	marked := NewBitset(inv.Digests.Len())
	for _, m := range repos {
		m.markBlobs(&marked)
	}
	aliases.Follow(&marked)
	return marked
}

// markBlobs marks what MarkBlobs marks for m's repository, aliases aside.
func (m *RepoMark) markBlobs(marked *Bitset) {
	for id := range m.Kept {
		markManifest(m.inv, id, marked)
	}
	if storage.ValidRepoName(m.Repo.Name) != nil {
		for _, l := range m.Repo.Layers {
			marked.Set(l.ID)
		}
	}
}

// Follow marks the blob each marked alias is stored as.
func (a Aliases) Follow(marked *Bitset) {
	for id, targets := range a {
		if marked.Has(id) {
			for _, t := range targets {
				marked.Set(t)
			}
		}
	}
}

// markManifest marks a kept manifest's own blob and what it references.
// Children are kept manifests in their own right and marked as such.
func markManifest(inv *walker.Inventory, id walker.ID, marked *Bitset) {
	marked.Set(id)
	m := inv.Manifests[id]
	if m == nil {
		return
	}
	for _, b := range m.Blobs() {
		marked.Set(b)
	}
	for _, b := range m.Foreign() {
		marked.Set(b)
	}
}

// Sweepable reports whether unmarked blobs may be swept: every repository
// was read whole, and every manifest a kept root reaches could be parsed.
func Sweepable(inv *walker.Inventory, repos []*RepoMark) bool {
	for _, m := range repos {
		if len(m.GraphErrs) > 0 {
			return false
		}
	}
	for _, r := range inv.Repos {
		if r.Unreadable != nil {
			return false
		}
	}
	return true
}

// BlobSweep is what SweepBlobs decides.
type BlobSweep struct {
	// Blobs are the blobs to delete, in ID (digest) order, each with the
	// first repository (by name) that linked it.
	Blobs []Blob
	// Deleted is the set of Blobs' IDs.
	Deleted Bitset
	// TooRecent and Unswept count the unmarked blobs kept: modified after
	// the cutoff, or not swept at all (sweep false).
	TooRecent, Unswept int
	// AgesWanted are the unmarked blobs kept only because their age is
	// unknown: a filesystem walk lists blobs by their folder names (see
	// Plan.BlobAgesWanted).
	AgesWanted []walker.ID
}

// SweepBlobs is stage 3's sweep: the stored blobs not marked and modified
// before cutoff, unless sweep is false (an incomplete graph). A blob of
// unknown age is kept and wanted.
func SweepBlobs(inv *walker.Inventory, marked Bitset, cutoff time.Time, sweep bool) BlobSweep {
	t := inv.Digests
	s := BlobSweep{Deleted: NewBitset(t.Len())}
	for id, b := range t.StoredBlobs() {
		switch {
		case marked.Has(id):
		case !sweep:
			s.Unswept++
		case b.ModTime.IsZero():
			s.AgesWanted = append(s.AgesWanted, id)
		case b.ModTime.After(cutoff):
			s.TooRecent++
		default:
			s.Deleted.Set(id)
			s.Blobs = append(s.Blobs, Blob{ID: id, Repo: NoRepo})
		}
	}
	attribute(inv, s.Blobs, s.Deleted)
	return s
}

// attribute sets the repository of each deleted blob to the first one (by
// name) that linked it, for the per-repository report. blobs is in ID
// order.
func attribute(inv *walker.Inventory, blobs []Blob, deleted Bitset) {
	if len(blobs) == 0 {
		return
	}
	for i, r := range inv.Repos {
		for _, links := range [][]walker.Link{r.Revisions, r.Layers} {
			for _, l := range links {
				if !deleted.Has(l.ID) {
					continue
				}
				if j, ok := slices.BinarySearchFunc(blobs, l.ID, func(b Blob, id walker.ID) int { return cmp.Compare(b.ID, id) }); ok && blobs[j].Repo == NoRepo {
					blobs[j].Repo = RepoIndex(i)
				}
			}
		}
	}
}

// SweepLayerLinks is stage 3's last step: the layer links to delete, to
// blobs this run deletes or to blobs already gone (and modified before
// cutoff), with the count of those kept as too recent. Layer links of
// repositories left alone stay.
func SweepLayerLinks(inv *walker.Inventory, marked, deleted Bitset, cutoff time.Time) (links []LayerLink, tooRecent int) {
	t := inv.Digests
	for i, r := range inv.Repos {
		if r.Unreadable != nil || storage.ValidRepoName(r.Name) != nil {
			continue
		}
		for _, l := range r.Layers {
			present := t.Stored(l.ID)
			switch {
			case l.Corrupt():
				continue
			case l.Target() != 0:
				// An alias goes with its blob, never while it stays.
				if t.Stored(l.Target()) && !deleted.Has(l.Target()) || marked.Has(l.ID) {
					continue
				}
			case deleted.Has(l.ID):
			case present || marked.Has(l.ID):
				continue
			case l.ModTime.IsZero():
				continue // age unknown (its stat failed): keep
			case l.ModTime.After(cutoff):
				tooRecent++
				continue
			}
			links = append(links, LayerLink{Repo: RepoIndex(i), ID: l.ID})
		}
	}
	return links, tooRecent
}
