package mark

import (
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// A sharded run (package shard) decides with the stages Compute composes,
// split where the data is: a mark shard holds some repositories (and every
// blob), a sweep shard a range of the blob store and the marks and layer
// links the mark shards routed to it.

// MarkShard is what one mark shard of a sharded run decides for the
// repositories of inv (only its own).
type MarkShard struct {
	// Plan is what the shard deletes itself: stages 1, 2 and 4 for its
	// repositories (tags, untagged revisions, history, uploads, revision
	// folders, and the repositories left empty with every layer link of
	// theirs), and the incomplete multipart uploads multipart selects. It
	// deletes no blob and no other layer link: those wait for the marks of
	// every shard (SweepShard).
	Plan *Plan
	// Marked are the blobs the shard's kept manifests reference (stage
	// 3's marking, aliases followed).
	Marked Bitset
	// Sweepable is false when the shard's graph is incomplete: then no
	// blob of the run may be swept.
	Sweepable bool
}

// ComputeMarkShard runs the stages of Compute that need no other
// repository than inv's. An empty repository goes only when every one of
// its layer links is old enough: the links a whole-registry run would
// delete regardless of their age (to blobs it deletes) are not known here.
func ComputeMarkShard(inv *walker.Inventory, opts Options, multipart func(storage.MultipartUpload) bool) *MarkShard {
	p := &Plan{Options: opts, Cutoff: opts.Cutoff(), Digests: inv.Digests}
	aliases := FindAliases(inv)
	repos, emptyCandidates, marked := p.repoStages(inv, aliases)
	for _, u := range CompactMultipart(inv, opts) {
		if multipart(u) {
			p.Multipart = append(p.Multipart, u)
		}
	}
	e := CompactEmptyRepos(inv, emptyCandidates, nil, opts.Cutoff())
	p.LayerLinks = e.LayerLinks
	p.EmptyRepos = e.Repos
	p.linkAgesWanted = e.LinkAgesWanted
	p.Err = planErr(inv, repos)
	return &MarkShard{Plan: p, Marked: marked, Sweepable: Sweepable(inv, repos)}
}

// ComputeSweepShard is stage 3's sweep for one sweep shard: inv holds the
// blobs of its range (Digests) and, as repositories holding only layer
// links, the links the mark shards routed to it; marked are the digests
// every mark shard marked, of its range and of other algorithms. sweepable
// is false when any mark shard found its graph incomplete.
func ComputeSweepShard(inv *walker.Inventory, marked Bitset, opts Options, sweepable bool) *Plan {
	p := &Plan{Options: opts, Cutoff: opts.Cutoff(), Digests: inv.Digests}
	for _, r := range inv.Repos {
		p.Repos = append(p.Repos, r.Name)
	}
	FindAliases(inv).Follow(&marked)
	bs := SweepBlobs(inv, marked, opts.Cutoff(), sweepable)
	p.Blobs = bs.Blobs
	p.Kept.BlobsTooRecent, p.Kept.BlobsUnswept = bs.TooRecent, bs.Unswept
	p.LayerLinks, p.Kept.LayerLinksTooRecent = SweepLayerLinks(inv, marked, bs.Deleted, opts.Cutoff())
	return p
}
