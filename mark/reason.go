package mark

// Mark says why as data: a kind and the names and digests concerned.
// Package report turns them into sentences; their JSON form is the kind
// and its fields.

// Why is the kind of a tag decision's reason.
type Why string

// The reasons of tag decisions.
const (
	// Kept.
	NoRuleMatches  Why = "no-rule-matches"   // no policy rule matches the repository
	MatchesTags    Why = "matches-tags"      // Pattern is the keep.tags regex it matches
	KeptNewest     Why = "newest"            // among the Newest most recently pushed
	KeptYounger    Why = "younger-than"      // pushed within YoungerThan
	OutsideGrammar Why = "outside-grammar"   // a name the registry would not write: kept as it is
	SubjectKept    Why = "subject-kept"      // a subject tag (What) whose Subject is kept
	LeftAlone      Why = "left-alone"        // its repository is left alone (Doubt)
	NotFirstPlan   Why = "not-in-first-plan" // a recheck's deletion the first plan did not make (First)
	// Deleted.
	NoRuleKeeps    Why = "no-rule-keeps"   // Rules match the repository, none keeps the tag
	NoCurrentLink  Why = "no-current-link" // an interrupted tag delete
	SubjectDeleted Why = "subject-deleted" // a subject tag (What) whose Subject is deleted
)

// Reason is why a tag is kept or deleted: Kind, and the Details it
// concerns (nil when it concerns nothing more). A plan holds one per tag:
// 24 bytes, the Details shared by every tag decided alike (the decisions
// of one rule, of one repository's rules). Details are read-only.
type Reason struct {
	Kind Why `json:"kind"`
	*Details
}

// Details are what a Reason concerns; JSON lists them beside its kind.
type Details struct {
	// Rules are the rules (1-based) that match the repository.
	Rules []int `json:"rules,omitempty"`
	// Pattern is a keep.tags regex as the policy file spelled it.
	Pattern string `json:"pattern,omitempty"`
	// Newest is keep.newest; YoungerThan keep.younger_than as spelled.
	Newest      int    `json:"newest,omitempty"`
	YoungerThan string `json:"younger_than,omitempty"`
	// What is "signature" (cosign's signature, attestation and SBOM
	// tags) or "referrers" (OCI's referrers tag); Subject the digest the
	// tag names.
	What    string `json:"what,omitempty"`
	Subject string `json:"subject,omitempty"`
	// Doubt is why the repository is left alone.
	Doubt *Doubt `json:"doubt,omitempty"`
	// First is the first plan's reason to delete the tag.
	First *Reason `json:"first,omitempty"`
}

// Detail returns r's details, or none.
func (r Reason) Detail() Details {
	if r.Details == nil {
		return Details{}
	}
	return *r.Details
}

// DoubtKind is the kind of a Doubt.
type DoubtKind string

// Why a repository's untagged manifests are all kept, or a repository left
// alone.
const (
	RepoUnreadable   DoubtKind = "repository-unreadable"   // part of it could not be listed (Err)
	RepoNameForeign  DoubtKind = "repository-name-foreign" // a name the registry would not write (Err)
	TagUnreadable    DoubtKind = "tag-unreadable"          // Tag's current link could not be read (Err)
	ManifestUnparsed DoubtKind = "manifest-unreadable"     // manifest Digest could not be read or parsed (Err)
)

// Doubt is why mark keeps every untagged manifest of a repository.
type Doubt struct {
	Repo   string    `json:"repository"`
	Kind   DoubtKind `json:"kind"`
	Tag    string    `json:"tag,omitempty"`
	Digest string    `json:"manifest,omitempty"`
	Err    string    `json:"error,omitempty"`
}

// BrokenKind is the kind of a Broken image's problem.
type BrokenKind string

// What keeps a kept image from being served whole. The manifest kinds
// concern Broken.Digest, or the child manifest Missing names when set; the
// blob kinds the blob Missing names.
const (
	ManifestMissing     BrokenKind = "manifest-missing"      // its blob is not in the blob store
	ManifestNotLinked   BrokenKind = "manifest-not-linked"   // the repository holds no revision link of it
	ManifestUnreadable  BrokenKind = "manifest-unreadable"   // it could not be read or parsed (Err)
	RevisionLinkCorrupt BrokenKind = "revision-link-corrupt" // its revision link is corrupt
	BlobMissing         BrokenKind = "blob-missing"          // a blob it references is not stored
	BlobNotLinked       BrokenKind = "blob-not-linked"       // the repository has no layer link of a blob it references
	LayerLinkCorrupt    BrokenKind = "layer-link-corrupt"    // the layer link of a blob it references is corrupt
	CurrentUnreadable   BrokenKind = "current-unreadable"    // the tag's current link could not be read (Err)
)
