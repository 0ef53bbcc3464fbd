package mark

import (
	"errors"
	"fmt"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/walker"
)

// ErrIncompleteGraph is wrapped by Plan.Err when a manifest that a kept root
// reaches could not be read or parsed: what it references is unknown, so no
// blob is swept.
var ErrIncompleteGraph = errors.New("incomplete graph: a kept manifest could not be read")

// Options are the decisions and safety margins of one run.
type Options struct {
	// DeleteUntagged deletes manifests no kept tag reaches (their revision
	// links and tag history entries), except children of kept indexes and
	// referrers of kept manifests.
	DeleteUntagged bool
	// MinAge keeps unreferenced blobs, revisions and orphan links modified
	// less than MinAge before StartedAt.
	MinAge time.Duration
	// StartedAt is when the run started; mark never reads the clock.
	StartedAt time.Time
	// Policy decides which tags to delete; nil keeps every tag. A plan
	// file keeps the policy's text instead (PlanFile.PolicyText).
	Policy *Policy `json:"-"`
	// Compact selects the compaction done by the same run.
	Compact Compact
}

// Compact selects compaction: the cleaning of what the registry left
// behind, beside garbage collection proper.
type Compact struct {
	// Uploads removes _uploads/<id> started more than UploadMaxAge before
	// the run (a missing or unreadable startedat counts as young), and on
	// S3 aborts the incomplete multipart uploads under the layout that
	// began more than UploadMaxAge before it.
	Uploads      bool
	UploadMaxAge time.Duration
	// Repos removes repositories left with no tags, no manifests and no
	// young upload (their _manifests, _layers, _uploads; never a nested
	// repository).
	Repos bool
	// Links removes tag history entries of manifests the repository no
	// longer holds, and the history of tags whose current link is gone (an
	// interrupted tag delete).
	Links bool
}

// CompactAll is every compaction, with the registry's own upload purge age.
var CompactAll = Compact{Uploads: true, UploadMaxAge: 7 * 24 * time.Hour, Repos: true, Links: true}

// Plan is what a run deletes, in the order sweep deletes it, and what it
// keeps and why. A Plan is consumed by one sweep.
type Plan struct {
	Options Options
	// Cutoff is StartedAt - MinAge: objects modified after it are kept.
	Cutoff time.Time
	// Repos names every repository walked, sorted: a RepoIndex indexes it.
	Repos []string
	// Digests resolves the IDs of Revisions, LayerLinks and Blobs: the
	// inventory's table, or one read from a plan file.
	Digests *walker.Digests `json:"-"`

	// The deletions, every one addressed the same way: a repository by
	// its RepoIndex, a digest by its ID in Digests, a tag or an upload by
	// its name within its repository.
	Tags       []Tag
	History    []HistoryEntry
	Revisions  []Revision
	LayerLinks []LayerLink
	Blobs      []Blob

	// Compaction.
	Uploads   []Upload
	Multipart []storage.MultipartUpload
	// EmptyRepos are the repositories removed whole, once their keys are
	// gone.
	EmptyRepos []RepoIndex
	// RevisionFolders are the empty folders of manifests deleted through
	// the registry's API (walker.Repo.Deleted), removed on stores with
	// folders.
	RevisionFolders []Revision

	// Kept counts what was kept for a reason other than being reachable.
	Kept Kept
	// Broken lists the kept images that cannot be served whole.
	Broken []Broken
	// Doubts say why repositories kept their untagged manifests (with
	// DeleteUntagged).
	Doubts []Doubt
	// Decisions are the policy's verdicts on every tag, in repository
	// order; empty without a policy.
	Decisions []TagDecision
	// PolicyEffect is what the policy does that it may not seem to, such
	// as deleting every tag of a repository: report warns of it.
	PolicyEffect PolicyEffect
	// Emptied are the repositories that had tags and that the plan leaves
	// with none (cmd refuses such a run unless --allow-delete-all).
	Emptied []Emptied
	// Err is non-nil when the plan is partial: blobs are not swept
	// (ErrIncompleteGraph) or a repository was left alone. It lists every
	// path concerned.
	Err error `json:"-"`

	used bool
	// linkAgesWanted are the repositories this run empties but keeps, only
	// because the ages of their layer links are unknown.
	linkAgesWanted []string
	// blobAgesWanted are the unreferenced blobs kept only because their
	// age is unknown.
	blobAgesWanted []walker.ID
}

// BlobAgesWanted are the blobs that nothing keeps but whose age (and size)
// is unknown: a filesystem walk lists blobs by their folder names and
// leaves their data unread. The plan keeps them. Read them with
// walker.StatBlobs and compute the plan again: the blobs old enough are then
// deleted. A plan wanting nothing more is the run's plan.
func (p *Plan) BlobAgesWanted() []walker.ID { return p.blobAgesWanted }

// LinkAgesWanted names the repositories that the run empties (no tag left,
// every manifest deleted) but does not remove, only because the walk did not
// read the ages of their layer links (a filesystem walk reads them only where
// it must). Read them with walker.AgeLayerLinks and compute the plan again,
// and the same run removes these repositories, subject to MinAge.
func (p *Plan) LinkAgesWanted() []string { return p.linkAgesWanted }

// Tag is a tag to delete: its current link, if it has one (its history
// entries are in Plan.History, with Of set to HistoryOfTag).
type Tag struct {
	Repo       RepoIndex
	Name       string
	HasCurrent bool
	Why        Reason
}

// RepoIndex is a repository's index in Plan.Repos; -1 is none. The lists
// of a plan hold a million items on a large registry: an index and an ID
// take 8 bytes where a name and a digest take 72.
type RepoIndex int32

// NoRepo is the RepoIndex of no repository.
const NoRepo RepoIndex = -1

// HistoryOf says why a tag history entry is deleted.
type HistoryOf uint8

// Why tag history entries go.
const (
	// HistoryOfTag: the entry's tag is deleted, its whole history with it.
	HistoryOfTag HistoryOf = iota
	// HistoryOfRevision: the manifest it names is deleted by this plan.
	HistoryOfRevision
	// HistoryOfAbsent: the manifest it names is no longer in the
	// repository (compaction).
	HistoryOfAbsent
	numHistoryOf
)

var historyOfNames = [numHistoryOf]string{"tag", "revision", "absent"}

// String names o as plan files write it.
func (o HistoryOf) String() string {
	if o < numHistoryOf {
		return historyOfNames[o]
	}
	return fmt.Sprintf("HistoryOf(%d)", uint8(o))
}

// MarshalText writes o by name.
func (o HistoryOf) MarshalText() ([]byte, error) {
	if o >= numHistoryOf {
		return nil, fmt.Errorf("unknown history reason %d", uint8(o))
	}
	return []byte(o.String()), nil
}

// UnmarshalText reads a name MarshalText wrote; another is an error.
func (o *HistoryOf) UnmarshalText(b []byte) error {
	for i, n := range historyOfNames {
		if string(b) == n {
			*o = HistoryOf(i)
			return nil
		}
	}
	return fmt.Errorf("unknown history reason %q", b)
}

// HistoryEntry is a tag history entry to delete: the link
// _manifests/tags/<Tag>/index/<digest>/link of repository Repo, which says
// that the tag once pointed at manifest ID. Every entry a plan deletes is
// one, whatever the reason (Of). The entries of one deleted tag follow each
// other.
type HistoryEntry struct {
	Repo RepoIndex
	Tag  string
	ID   walker.ID
	Of   HistoryOf
}

// Revision is a manifest revision of a repository: in Plan.Revisions, a
// revision link to delete; in Plan.RevisionFolders, an empty revision
// folder to remove.
type Revision struct {
	Repo RepoIndex
	ID   walker.ID
}

// Upload is an abandoned upload to delete: the files of
// _uploads/<ID>/ of repository Repo, named relative to that folder
// ("data", "startedat", "hashstates/sha256/0").
type Upload struct {
	Repo  RepoIndex
	ID    string
	Files []string
	Size  int64
}

// LayerLink is a layer link to delete.
type LayerLink struct {
	Repo RepoIndex
	ID   walker.ID
}

// Blob is a blob to delete; Plan.Digests has its size. Repo is the first
// repository (by name) that linked it, for per-repository reports; NoRepo
// for a blob nothing linked.
type Blob struct {
	ID   walker.ID
	Repo RepoIndex
}

// Repo returns the name of repository i, "" for NoRepo.
func (p *Plan) Repo(i RepoIndex) string {
	if i < 0 || int(i) >= len(p.Repos) {
		return ""
	}
	return p.Repos[i]
}

// Digest returns the digest id names.
func (p *Plan) Digest(id walker.ID) storage.Digest { return p.Digests.Digest(id) }

// Size returns the size of the blob id names, 0 if it is not stored.
func (p *Plan) Size(id walker.ID) int64 {
	b, _ := p.Digests.Blob(id)
	return b.Size
}

// Kept counts objects that were kept though nothing reaches them.
type Kept struct {
	RevisionsTooRecent  int `json:"revisions_too_recent"`
	BlobsTooRecent      int `json:"blobs_too_recent"`
	LayerLinksTooRecent int `json:"layer_links_too_recent"`
	// BlobsUnswept are unreferenced blobs kept because the graph is
	// incomplete.
	BlobsUnswept int `json:"blobs_unswept"`
	// RevisionsInDoubt are untagged revisions kept because their repository
	// has an unreadable part, a corrupt tag, or an unparsable manifest.
	RevisionsInDoubt int `json:"revisions_in_doubt"`
	// ChangedDuringRun are deletions dropped because a recheck just before
	// the sweep found them reachable again (a push during the run).
	ChangedDuringRun int `json:"changed_during_run"`
}

// Broken is a kept tag or manifest that cannot be served whole: Problem
// says why, Missing names the child manifest or blob concerned, Err the
// error read, More how many other problems the image has.
type Broken struct {
	Repo    string     `json:"repository"`
	Tag     string     `json:"tag,omitempty"`
	Digest  string     `json:"manifest"`
	Problem BrokenKind `json:"problem"`
	Missing string     `json:"missing,omitempty"`
	Err     string     `json:"error,omitempty"`
	More    int        `json:"more,omitempty"`
}

// Use marks the plan consumed. It returns false if it already was: a plan
// is valid against the storage it was made from, once.
func (p *Plan) Use() bool {
	if p.used {
		return false
	}
	p.used = true
	return true
}
