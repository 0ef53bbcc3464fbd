package mark

import (
	"errors"
	"time"

	"github.com/regsweep/regsweep/storage"
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
	// Policy decides which tags to delete; nil keeps every tag.
	Policy *Policy
}

// Plan is what a run deletes, in the order sweep deletes it, and what it
// keeps and why. A Plan is consumed by one sweep.
type Plan struct {
	Options Options
	// Cutoff is StartedAt - MinAge: objects modified after it are kept.
	Cutoff time.Time
	// Repos names every repository walked, sorted.
	Repos []string

	Tags       []Tag
	Revisions  []Revision
	LayerLinks []LayerLink
	Blobs      []Blob

	// Kept counts what was kept for a reason other than being reachable.
	Kept Kept
	// Broken lists the kept images that cannot be served whole.
	Broken []Broken
	// Doubts say why repositories kept their untagged manifests.
	Doubts []string
	// Decisions are the policy's verdicts on every tag, in repository
	// order; empty without a policy.
	Decisions []TagDecision
	// Warnings are what an admin should see before trusting the run, such
	// as a policy deleting every tag of a repository.
	Warnings []string
	// Err is non-nil when the plan is partial: blobs are not swept
	// (ErrIncompleteGraph) or a repository was left alone. It lists every
	// path concerned.
	Err error

	used bool
}

// Tag is a tag to delete: its current link and its whole history.
type Tag struct {
	Repo, Name string
	HasCurrent bool
	Index      []storage.Digest
	Reason     string
}

// Revision is a manifest revision link to delete, with the history entries
// of the tags that once pointed at it.
type Revision struct {
	Repo     string
	Digest   storage.Digest
	TagIndex []string
}

// LayerLink is a layer link to delete.
type LayerLink struct {
	Repo   string
	Digest storage.Digest
}

// Blob is a blob to delete. Repo is the first repository (by name) that
// linked it, for per-repository reports; empty for a blob nothing linked.
type Blob struct {
	Digest storage.Digest
	Size   int64
	Repo   string
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

// Broken is a kept tag or manifest that references something missing.
type Broken struct {
	Repo   string `json:"repository"`
	Tag    string `json:"tag,omitempty"`
	Digest string `json:"manifest"`
	Reason string `json:"reason"`
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
