package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is wrapped by every Store error about a key or folder that does
// not exist.
var ErrNotFound = errors.New("not found")

// ErrTooLarge is returned by ReadFile for a file over its limit.
var ErrTooLarge = errors.New("file too large")

// ErrExists is wrapped by PutIfAbsent when the key already exists.
var ErrExists = errors.New("already exists")

// ErrReadOnly is returned by the deletes of a ReadOnly store.
var ErrReadOnly = errors.New("read-only store: nothing may be deleted")

// IsNotFound reports whether err says a key or folder does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// EntryType tells what a folder entry is.
type EntryType uint8

// Entry types. Other covers symlinks, devices and sockets: the layout never
// holds them, and regsweep never follows or deletes them.
const (
	TypeFile EntryType = iota
	TypeDir
	TypeOther
)

// Entry is a child of a listed folder.
type Entry struct {
	Name string
	Type EntryType
	// Ino is the entry's inode number where the backend lists one (a
	// filesystem on Linux), else 0. It is an order hint only: reading many
	// files of a cold filesystem in inode order reads its inode tables and
	// the blocks allocated with them in order, a quarter faster than in
	// name order on ext4.
	Ino uint64
}

// Object is a stored file and what the backend knows of it.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
	// ETag is the object's entity tag where the backend has one (S3: the
	// MD5 of the content for plain uploads), quoted as the server sent it.
	ETag string
}

// Store is a registry's storage backend. Keys are slash-separated paths
// relative to the registry's rootdirectory (see paths.go). Every method may be
// called from many goroutines at once.
type Store interface {
	// String names the location in messages, e.g. "/var/lib/registry".
	String() string

	// FlatListing reports whether Walk over a prefix costs about one request
	// per thousand files whatever their depth (S3), so that a walker should
	// prefer it to ReadDir at every level (a filesystem).
	FlatListing() bool

	// ReadDir lists the immediate children of dir, sorted by name. A missing
	// dir is an error wrapping ErrNotFound.
	ReadDir(ctx context.Context, dir string) ([]Entry, error)

	// Walk calls fn for every file under prefix, at any depth, with its size
	// and modification time. Walk stops at the first error fn returns.
	Walk(ctx context.Context, prefix string, fn func(Object) error) error

	// Stat returns what the backend knows of one file.
	Stat(ctx context.Context, key string) (Object, error)

	// ReadFile returns the content of a file of at most limit bytes, and
	// its metadata; a larger file is an error wrapping ErrTooLarge.
	ReadFile(ctx context.Context, key string, limit int64) ([]byte, Object, error)

	// Delete removes files, as one batch where the backend has batches, and
	// calls done once per key with nil or the error that key met. A key
	// already gone counts as deleted. Backends with real folders remove the
	// folders a deletion leaves empty, up to the layout's fixed folders.
	Delete(ctx context.Context, keys []string, done func(key string, err error))

	// BatchSize is the number of keys one Delete call handles best.
	BatchSize() int

	// PutIfAbsent writes a small file only if no file has that key, as one
	// atomic step (a filesystem's O_EXCL, S3's If-None-Match: *). It is for
	// regsweep's own lock; the registry's files are never written.
	PutIfAbsent(ctx context.Context, key string, data []byte) error
}

// readOnly is a Store whose writes fail: dry runs and audits walk and
// sweep through it, so that even a bug cannot delete anything.
type readOnly struct{ Store }

// ReadOnly wraps s so that every write fails with ErrReadOnly: Delete for
// every key, PutIfAbsent, and the writes of its capabilities (removing
// folders, aborting multipart uploads; it creates no file). Every read
// capability of s passes through: a walk through ReadOnly(s) is the walk of
// s (folder times, child stats, key and multipart listings, streams).
func ReadOnly(s Store) Store { return readOnly{s} }

var (
	_ Wrapper        = readOnly{}
	_ DirRemover     = readOnly{}
	_ MultipartStore = readOnly{}
)

// Capabilities are those of the wrapped store, its reads as they are, its
// writes failing with ErrReadOnly; creating and flushing files and moving
// them into a trash are none.
func (r readOnly) Capabilities() Capabilities {
	c := CapabilitiesOf(r.Store)
	if c.Multipart != nil {
		c.Multipart = r
	}
	if c.DirRemover != nil {
		c.DirRemover = r
	}
	c.Creator, c.Syncer, c.Trasher = nil, nil, nil
	return c
}

func (r readOnly) PutIfAbsent(_ context.Context, key string, _ []byte) error {
	return fmt.Errorf("write %s: %w", key, ErrReadOnly)
}

func (r readOnly) Delete(_ context.Context, keys []string, done func(string, error)) {
	for _, k := range keys {
		done(k, fmt.Errorf("delete %s: %w", k, ErrReadOnly))
	}
}

// RemoveEmptyDirs fails with ErrReadOnly.
func (r readOnly) RemoveEmptyDirs(_ context.Context, dir string) error {
	return fmt.Errorf("remove folders %s: %w", dir, ErrReadOnly)
}

// WalkMultipartUploads lists the multipart uploads of the wrapped store: a
// dry run's walk finds what a real run's does (an audit through ReadOnly
// listed none, and estimated no abort where gc --dry-run aborted them).
func (r readOnly) WalkMultipartUploads(ctx context.Context, prefix string, fn func(MultipartUpload) error) error {
	ms := CapabilitiesOf(r.Store).Multipart
	if ms == nil {
		return fmt.Errorf("list multipart uploads of %s: %w", r.Store, errors.ErrUnsupported)
	}
	return ms.WalkMultipartUploads(ctx, prefix, fn)
}

// AbortMultipartUpload fails with ErrReadOnly.
func (r readOnly) AbortMultipartUpload(_ context.Context, u MultipartUpload) error {
	return fmt.Errorf("abort multipart upload %s of %s: %w", u.ID, u.Key, ErrReadOnly)
}

// DirRemover is implemented by stores with real folders (a filesystem),
// where a repository stays listed by the registry's catalog as long as its
// _manifests folder exists, even empty.
type DirRemover interface {
	// RemoveEmptyDirs removes dir and every folder below it that holds no
	// file, deepest first, and then the folders above dir while they are
	// empty and not fixed folders of the layout. A folder holding a file
	// stays, and so do the folders above it.
	RemoveEmptyDirs(ctx context.Context, dir string) error
}

// MultipartStore is implemented by stores with multipart uploads (S3): the
// registry's S3 driver writes _uploads/<id>/data as one, invisible to
// listings and billed until aborted.
type MultipartStore interface {
	// WalkMultipartUploads calls fn for every incomplete multipart upload
	// whose key starts with prefix.
	WalkMultipartUploads(ctx context.Context, prefix string, fn func(MultipartUpload) error) error
	// AbortMultipartUpload aborts one; an upload already gone is no error.
	AbortMultipartUpload(ctx context.Context, u MultipartUpload) error
}

var _ MultipartStore = (*S3)(nil)

// KeyWalker is implemented by stores that list by plain key prefix (S3),
// so that a walker can split a listing however it likes.
type KeyWalker interface {
	// WalkKeys calls fn for every file whose key starts with prefix, with
	// its size, modification time and ETag. No file is not an error.
	WalkKeys(ctx context.Context, prefix string, fn func(Object) error) error
}

var _ KeyWalker = (*S3)(nil)

// ChildStatter is implemented by stores that stat a file in each folder of
// a listing for less than a Stat each (a filesystem: one fstatat relative
// to the open folder, where Stat opens, stats and closes from the root). A
// walk stats the data file of every blob: a million system calls saved
// twice over on a large registry.
type ChildStatter interface {
	// StatChildren lists dir as ReadDir does and calls fn with each entry
	// in name order; for a folder entry, o is the stat of the regular file
	// name in it, or err says why there is none (a missing file, a folder
	// or symlink in its place). Other entries come with neither.
	StatChildren(ctx context.Context, dir, name string, fn func(e Entry, o Object, err error) error) error
}

var _ ChildStatter = (*FS)(nil)

// NameStatter is implemented by stores that stat several files below one
// folder for less than a Stat each (a filesystem: one fstatat relative to
// the folder opened once, where Stat opens, stats and closes from the
// root). A walk stats every revision link of a repository this way, and the
// blobs a plan would delete prefix folder by prefix folder.
type NameStatter interface {
	// StatNames calls fn with the stat of the regular file dir/names[i]
	// for each i, in order, or the error saying why there is none (a
	// missing file, IsNotFound; a folder or symlink in its place). The
	// folders inside a name are the caller's to have checked (a listing's
	// entry types). It is called from many goroutines at once.
	StatNames(ctx context.Context, dir string, names []string, fn func(i int, o Object, err error)) error
}

var _ NameStatter = (*FS)(nil)

// DirTimer is implemented by stores with real folders, whose modification
// time changes whenever an entry is added to or removed from them (a
// filesystem). A recheck walk compares the times the first walk saw with
// one stat each, and lists again only what changed, instead of listing and
// reading every link of every repository twice.
type DirTimer interface {
	// ReadDirTime is ReadDir, with dir's modification time as it was just
	// before the listing: a change after that time is not in the listing,
	// and moves the time.
	ReadDirTime(ctx context.Context, dir string) ([]Entry, time.Time, error)
	// ModTimes calls fn with the modification time of each of names
	// (relative to dir; files or folders, a final symlink not followed),
	// in order; a missing name has the zero time and no error.
	ModTimes(ctx context.Context, dir string, names []string, fn func(i int, t time.Time, err error)) error
}

var _ DirTimer = (*FS)(nil)
