package walker

import (
	"sort"
	"time"

	"github.com/regsweep/regsweep/storage"
)

// Inventory is everything a walk found. It is built by Walk and read-only
// afterwards.
type Inventory struct {
	// Location names the store walked.
	Location string
	// Repos are the repositories, sorted by name.
	Repos []*Repo
	// Blobs are the blob store's blobs with the size and age of their data.
	Blobs map[storage.Digest]Blob
	// Manifests holds the parsed references of every manifest read: the
	// revisions of every repository, tag targets, and index children.
	Manifests map[storage.Digest]*Manifest
	// Multipart are the incomplete multipart uploads under the layout, on
	// stores that have them.
	Multipart []storage.MultipartUpload
	// Problems are what the walk could not make sense of: foreign names,
	// corrupt links, unreadable folders. Nothing they concern is deleted.
	Problems []Problem
	// Stats counts what was listed and read.
	Stats Stats
}

// Stats counts the walk's work.
type Stats struct {
	Repos, Tags, Revisions, LayerLinks, TagIndexEntries, Blobs, Uploads int
	ManifestsRead                                                       int
	BlobBytes                                                           int64
}

// Blob is a blob's data file.
type Blob struct {
	Size    int64
	ModTime Time
}

// Time is a modification time in Unix nanoseconds, 8 bytes where a
// time.Time takes 24: an inventory holds one per object.
type Time int64

// TimeOf converts t; the zero time.Time gives the zero Time (unknown).
func TimeOf(t time.Time) Time {
	if t.IsZero() {
		return 0
	}
	return Time(t.UnixNano())
}

// IsZero reports whether the time is unknown.
func (t Time) IsZero() bool { return t == 0 }

// After reports whether t is after u.
func (t Time) After(u time.Time) bool { return t != 0 && time.Unix(0, int64(t)).After(u) }

// Time returns t as a time.Time.
func (t Time) Time() time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(t))
}

// Manifest is a manifest the walk read.
type Manifest struct {
	Refs storage.Refs
	Size int64
	// Err says why the manifest could not be read or parsed; Refs is empty.
	Err error
}

// Repo is one repository.
type Repo struct {
	Name      string
	Tags      []Tag
	Revisions []Link
	Layers    []Link
	Uploads   []Upload
	// Unreadable says why part of the repository could not be listed. Its
	// references are unknown: nothing may be swept on its account.
	Unreadable error
}

// Tag is one tag of a repository.
type Tag struct {
	Name string
	// Current is the manifest the tag points at, zero when current/link is
	// missing (a half-deleted tag) or unreadable (then Err says why).
	Current storage.Digest
	// PushedAt is the modification time of current/link.
	PushedAt time.Time
	// Index is the tag's history: every manifest it ever pointed at.
	Index []storage.Digest
	Err   error
}

// Link is a revision or layer link.
type Link struct {
	Digest storage.Digest
	// ModTime is the link file's, or zero where the walk did not need it.
	ModTime Time
	// Corrupt is set for a link that is empty, garbage, or names another
	// digest than its path; Target is the digest it names, if any. A layer
	// link of a sha512 digest naming a sha256 blob is an alias, not corrupt:
	// Target is that blob. Both are rare, so Target is a pointer.
	Corrupt bool
	Target  *storage.Digest
}

// Upload is an upload folder in _uploads.
type Upload struct {
	ID string
	// StartedAt is the time in startedat, or zero when it is missing or
	// unreadable (such an upload counts as young).
	StartedAt time.Time
	// Keys are the upload's files, Size their total size.
	Keys []string
	Size int64
}

// Problem is something the walk found wrong, with the path it concerns.
type Problem struct {
	Path string
	Err  error
}

// Repo returns the repository of that name, or nil.
func (inv *Inventory) Repo(name string) *Repo {
	i := sort.Search(len(inv.Repos), func(i int) bool { return inv.Repos[i].Name >= name })
	if i < len(inv.Repos) && inv.Repos[i].Name == name {
		return inv.Repos[i]
	}
	return nil
}
