package walker

import (
	"sort"
	"time"

	"github.com/regsweep/regsweep/storage"
)

// Inventory is everything a walk found. It is built by Walk and read-only
// afterwards, with two exceptions, each by a function that says so:
// StatBlobs and AgeLayerLinks add ages a plan wants, and Recheck consumes
// it (takes or empties its repositories, adds to its digest table and
// manifests).
type Inventory struct {
	// Location names the store walked.
	Location string
	// Repos are the repositories, sorted by name.
	Repos []*Repo
	// Digests are the blob store's blobs with the size and age of their
	// data, and every digest the walk met: links, tags and manifests refer
	// to digests by their ID in this table.
	Digests *Digests
	// Manifests holds the parsed references of every manifest read: the
	// revisions of every repository, tag targets, and index children.
	Manifests map[ID]*Manifest
	// Multipart are the incomplete multipart uploads under the layout, on
	// stores that have them.
	Multipart []storage.MultipartUpload
	// Problems are what the walk could not make sense of: foreign names,
	// corrupt links, unreadable folders. Nothing they concern is deleted.
	Problems []Problem
	// Stats counts what was listed and read.
	Stats Stats
	// StartedAt is when the walk began.
	StartedAt time.Time
}

// Stats counts the walk's work.
type Stats struct {
	Repos, Tags, Revisions, LayerLinks, TagIndexEntries, Blobs, Uploads int
	ManifestsRead                                                       int
	// BlobBytes is the size of every blob, when BlobSizes says the walk
	// read them (S3 listings, Options.ReadLinks); a filesystem walk lists
	// blobs by name only.
	BlobBytes int64
	BlobSizes bool
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

// Manifest is a manifest the walk read: what it references, by ID.
type Manifest struct {
	MediaType string
	// refs are the children, then the blobs, then the foreign layers.
	refs              []ID
	nChildren, nBlobs uint32
	// Subject is the manifest this one is a referrer of, or 0.
	Subject ID
	Size    int64
	// Err says why the manifest could not be read or parsed; it then
	// references nothing.
	Err error
}

// NewManifest converts what a manifest references into IDs of t, adding
// the digests t lacks.
func NewManifest(t *Digests, refs storage.Refs, size int64) *Manifest {
	m := &Manifest{MediaType: mediaType(refs.MediaType), Size: size, Subject: t.Intern(refs.Subject)}
	m.refs = make([]ID, 0, len(refs.Manifests)+len(refs.Blobs)+len(refs.Foreign))
	for _, list := range [][]storage.Digest{refs.Manifests, refs.Blobs, refs.Foreign} {
		for _, d := range list {
			m.refs = append(m.refs, t.Intern(d))
		}
	}
	m.nChildren, m.nBlobs = uint32(len(refs.Manifests)), uint32(len(refs.Blobs))
	return m
}

// mediaType returns the package constant equal to s, so that a hundred
// thousand manifests share a handful of strings.
func mediaType(s string) string {
	for _, k := range [...]string{storage.MediaTypeDockerManifest, storage.MediaTypeDockerManifestList, storage.MediaTypeOCIManifest,
		storage.MediaTypeOCIIndex, storage.MediaTypeOCIArtifact, storage.MediaTypeSchema1, storage.MediaTypeSchema1Signed} {
		if s == k {
			return k
		}
	}
	return s
}

// Children are the manifests of an index or manifest list.
func (m *Manifest) Children() []ID { return m.refs[:m.nChildren:m.nChildren] }

// Blobs are the config, layers or artifact blobs, foreign layers aside.
func (m *Manifest) Blobs() []ID {
	return m.refs[m.nChildren : m.nChildren+m.nBlobs : m.nChildren+m.nBlobs]
}

// Foreign are the layers with urls: kept when present, fine when absent.
func (m *Manifest) Foreign() []ID { return m.refs[m.nChildren+m.nBlobs:] }

// Repo is one repository.
type Repo struct {
	Name      string
	Tags      []Tag
	Revisions []Link
	Layers    []Link
	Uploads   []Upload
	// Deleted are the revision folders that hold no link file: manifests
	// deleted through the registry's API (DELETE /v2/<name>/manifests/
	// <digest> removes the link and leaves its folder). The repository
	// does not hold them. Link.ModTime is the folder's. Stores without
	// folders (S3) have none.
	Deleted []Link
	// Unreadable says why part of the repository could not be listed. Its
	// references are unknown: nothing may be swept on its account.
	Unreadable error
	// times are the modification times of its link folders as the walk
	// listed them, for a recheck to tell whether anything changed; nil
	// when the store has none or the repository is not plain (a problem,
	// a digest algorithm other than sha256).
	times *repoTimes
}

// repoTimes are the times of a repository's folders when they were listed,
// absent for a missing one.
type repoTimes struct {
	revisions, revisions256, layers, layers256, tags, uploads Time
}

// absent stands for the time of a folder that does not exist.
const absent Time = -1

// Tag is one tag of a repository.
type Tag struct {
	Name string
	// Current is the manifest the tag points at, 0 when current/link is
	// missing (a half-deleted tag) or unreadable (then Err says why).
	Current ID
	// PushedAt is the modification time of current/link.
	PushedAt time.Time
	// Index is the tag's history: every manifest it ever pointed at.
	Index []ID
	Err   error
	// indexTimes are the times of index and index/sha256 (see Repo.times).
	indexTimes [2]Time
}

// Link is a revision or layer link, 16 bytes with no pointer: an inventory
// holds one per link file (1.5 million at a million blobs).
type Link struct {
	// ModTime is the link file's, or zero where the walk did not need it.
	ModTime Time
	// ID is the digest of the link's path.
	ID ID
	// target is Target, with corruptBit set for a corrupt link.
	target ID
}

// corruptBit marks a corrupt link in Link.target. IDs stay below it: a
// table of 2^31 digests would hold 64 GiB of sums alone.
const corruptBit ID = 1 << 31

// NewLink returns the link of digest id: target is the digest it names when
// that is not id (a sha512 layer link naming a sha256 blob, or a corrupt
// link naming another digest), or 0; corrupt says it is empty, garbage, or
// names another digest than its path.
func NewLink(id ID, modTime Time, target ID, corrupt bool) Link {
	l := Link{ModTime: modTime, ID: id, target: target}
	if corrupt {
		l.target |= corruptBit
	}
	return l
}

// Target is the digest the link names when that is not its path's, or 0. A
// layer link of a sha512 digest naming a sha256 blob is an alias, not
// corrupt: Target is that blob.
func (l Link) Target() ID { return l.target &^ corruptBit }

// Corrupt reports a link that is empty, garbage, or names another digest
// than its path; Target is the digest it names, if any.
func (l Link) Corrupt() bool { return l.target&corruptBit != 0 }

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

// Objects counts the stored objects the inventory accounts for: blobs,
// links, tags and upload files (the unit of the benchmarks' per-object
// figures).
func (inv *Inventory) Objects() int {
	s := inv.Stats
	n := s.Blobs + s.Revisions + s.LayerLinks + s.TagIndexEntries + s.Tags
	for _, r := range inv.Repos {
		for _, u := range r.Uploads {
			n += len(u.Keys)
		}
	}
	return n
}

// Repo returns the repository of that name, or nil.
func (inv *Inventory) Repo(name string) *Repo {
	i := sort.Search(len(inv.Repos), func(i int) bool { return inv.Repos[i].Name >= name })
	if i < len(inv.Repos) && inv.Repos[i].Name == name {
		return inv.Repos[i]
	}
	return nil
}
