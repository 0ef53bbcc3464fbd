package mark

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regsweep/regsweep/walker"
)

// timeSlack widens the grace period by what file times lag behind the
// clock the run's start is read from: Linux stamps files from a coarse clock
// (up to a few milliseconds behind), S3 truncates LastModified to the second.
// Without it, a layer uploaded just after a --min-age 0 run started may look
// older than the run, and be deleted under the manifest pushed after it.
const timeSlack = time.Second

// Cutoff is StartedAt - MinAge, less the slack of file times: objects
// modified after it are kept.
func (o Options) Cutoff() time.Time { return o.StartedAt.Add(-o.MinAge - timeSlack) }

// Compute decides what to delete in inv. Reachability is per repository
// (a repository serves only what it links), blob marking is global (a blob
// is garbage only when no kept manifest of any repository references it).
//
// Kept, per repository: every tag not in Options.DeleteTags; the manifest of
// each kept tag; without DeleteUntagged, every revision; and, transitively,
// children of kept indexes and manifest lists, and referrers (manifests
// whose subject is kept). Revisions modified after the cutoff are kept too.
//
// Compute runs the stages in order, each of which can be called on its own
// (a sharded run, or an audit, calls them itself):
//
//  1. SelectRoots, per repository: the tags' fate (policy, compaction of
//     half-deleted tags) and the manifests kept whatever reaches them.
//  2. RepoMark.Close, per repository: the closure of the roots (children,
//     referrers, signature tags following their subject, recent
//     revisions), then the untagged revisions to delete.
//  3. MarkBlobs then SweepBlobs and SweepLayerLinks, over every repository:
//     the blobs no kept manifest references, and the layer links to them.
//     Compute marks each repository's blobs as soon as stage 2 is done
//     with it, and drops its marks then.
//  4. CompactRepo per repository, then CompactEmptyRepos and
//     CompactMultipart: history of absent manifests, empty revision
//     folders, abandoned uploads, repositories left empty.
//
// Every stage's cost is linear in what it reads: no step grows with
// repositories × tags.
func Compute(inv *walker.Inventory, opts Options) *Plan {
	p := &Plan{Options: opts, Cutoff: opts.Cutoff(), Digests: inv.Digests}
	aliases := FindAliases(inv)

	// Stages 1, 2, the per-repository part of 4, and stage 3's marking.
	repos, emptyCandidates, marked := p.repoStages(inv, aliases)

	// Stage 3's sweep.
	bs := SweepBlobs(inv, marked, opts.Cutoff(), Sweepable(inv, repos))
	p.Blobs = bs.Blobs
	p.Kept.BlobsTooRecent, p.Kept.BlobsUnswept = bs.TooRecent, bs.Unswept
	p.blobAgesWanted = bs.AgesWanted
	var tooRecent int
	p.LayerLinks, tooRecent = SweepLayerLinks(inv, marked, bs.Deleted, opts.Cutoff())
	p.Kept.LayerLinksTooRecent += tooRecent

	// Stage 4, over every repository.
	p.Multipart = CompactMultipart(inv, opts)
	e := CompactEmptyRepos(inv, emptyCandidates, p.LayerLinks, opts.Cutoff())
	p.LayerLinks = append(p.LayerLinks, e.LayerLinks...)
	p.EmptyRepos = e.Repos
	p.linkAgesWanted = e.LinkAgesWanted

	p.Err = planErr(inv, repos)
	return p
}

// repoStages runs stages 1, 2 and the per-repository part of 4 over every
// repository of inv, into p, with the policy's effect, and marks the blobs
// each repository keeps as it goes (MarkBlobs, one repository at a time: a
// repository's marks are then released, and never held for every
// repository at once). It returns the repositories' marks (their results),
// the candidates for CompactEmptyRepos and the blobs marked, aliases
// followed.
func (p *Plan) repoStages(inv *walker.Inventory, aliases Aliases) (repos []*RepoMark, emptyCandidates []RepoIndex, marked Bitset) {
	opts := p.Options
	repos = make([]*RepoMark, len(inv.Repos))
	comps := make([]RepoCompaction, len(inv.Repos))
	p.Repos = make([]string, len(inv.Repos))
	marked = NewBitset(inv.Digests.Len())
	for i, r := range inv.Repos {
		p.Repos[i] = r.Name
		m := SelectRoots(inv, RepoIndex(i), opts)
		m.Close(aliases)
		repos[i], comps[i] = m, CompactRepo(m)
		m.markBlobs(&marked)
		m.release()
	}
	aliases.Follow(&marked)
	p.addRepos(repos, comps)
	for i, c := range comps {
		if c.Empty && opts.Compact.Repos {
			emptyCandidates = append(emptyCandidates, RepoIndex(i))
		}
	}
	p.PolicyEffect = policyEffect(inv, opts, p.Decisions)
	for _, m := range repos {
		if m.EveryTagDeleted {
			p.PolicyEffect.EveryTagDeleted = append(p.PolicyEffect.EveryTagDeleted, RepoTags{Repo: m.Repo.Name, Tags: len(m.Repo.Tags)})
		}
	}
	return repos, emptyCandidates, marked
}

// addRepos adds what stages 1, 2 and 4 decided for each repository to the
// plan, in repository order. The lists are sized first: they hold millions
// of items on a large registry, and growing them as they fill copies each
// item again at every doubling.
func (p *Plan) addRepos(repos []*RepoMark, comps []RepoCompaction) {
	var n [6]int
	for _, m := range repos {
		n[0] += len(m.Tags)
		n[1] += len(m.Decisions)
		n[2] += len(m.Revisions)
		n[3] += len(m.History)
	}
	for _, c := range comps {
		n[3] += len(c.History)
		n[4] += len(c.RevisionFolders)
		n[5] += len(c.Uploads)
	}
	p.Tags = slices.Grow(p.Tags, n[0])
	p.Decisions = slices.Grow(p.Decisions, n[1])
	p.Revisions = slices.Grow(p.Revisions, n[2])
	p.History = slices.Grow(p.History, n[3])
	p.RevisionFolders = slices.Grow(p.RevisionFolders, n[4])
	p.Uploads = slices.Grow(p.Uploads, n[5])
	for i, m := range repos {
		p.Tags = append(p.Tags, m.Tags...)
		p.Decisions = append(p.Decisions, m.Decisions...)
		p.Revisions = append(p.Revisions, m.Revisions...)
		p.History = append(p.History, m.History...)
		p.Broken = append(p.Broken, m.Broken...)
		if m.Emptied != nil {
			p.Emptied = append(p.Emptied, *m.Emptied)
		}
		p.Kept.RevisionsTooRecent += m.RevisionsTooRecent
		p.Kept.RevisionsInDoubt += m.RevisionsInDoubt
		if m.Doubt != nil && p.Options.DeleteUntagged {
			p.Doubts = append(p.Doubts, *m.Doubt)
		}
		c := comps[i]
		p.History = append(p.History, c.History...)
		p.RevisionFolders = append(p.RevisionFolders, c.RevisionFolders...)
		p.Uploads = append(p.Uploads, c.Uploads...)
	}
}

// planErr is the error of a partial plan: the manifests that could not be
// read, the repositories left alone.
func planErr(inv *walker.Inventory, repos []*RepoMark) error {
	var graphErrs []string
	for _, m := range repos {
		for _, e := range m.GraphErrs {
			graphErrs = append(graphErrs, e.Repo+"@"+e.Digest+": "+e.Err)
		}
	}
	var out []error
	if len(graphErrs) > 0 {
		out = append(out, fmt.Errorf("%w; no blob swept: %s", ErrIncompleteGraph, strings.Join(graphErrs, "; ")))
	}
	for _, r := range inv.Repos {
		if r.Unreadable != nil {
			out = append(out, fmt.Errorf("repository %s left alone and no blob swept: %w", r.Name, r.Unreadable))
		}
	}
	return errors.Join(out...)
}

// Bitset is a set of IDs: a bit each, where a map would take 50 bytes.
type Bitset []uint64

// NewBitset returns a set for the IDs up to n; it grows past them on Set.
func NewBitset(n int) Bitset { return make(Bitset, n/64+1) }

// Set adds id.
func (b *Bitset) Set(id walker.ID) {
	i := int(id / 64)
	if i >= len(*b) {
		*b = append(*b, make(Bitset, i+1-len(*b))...)
	}
	(*b)[i] |= 1 << (id % 64)
}

// Unset removes id.
func (b Bitset) Unset(id walker.ID) {
	if i := int(id / 64); i < len(b) {
		b[i] &^= 1 << (id % 64)
	}
}

// Has reports whether id is in the set.
func (b Bitset) Has(id walker.ID) bool {
	i := int(id / 64)
	return i < len(b) && b[i]&(1<<(id%64)) != 0
}
