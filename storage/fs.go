package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// FS is a Store over a local folder, the filesystem driver's rootdirectory.
// It never follows a symlink out of the root (os.Root), never follows one
// inside it while listing, and removes folders left empty by its deletes.
type FS struct {
	dir  string
	root *os.Root
	// dirfd is the root's descriptor for openat2 (Linux); fast says it works.
	dirfd int
	fast  bool
	// euid is the run's user, for Delete (see fastRemove).
	euid int
	// atimeRefused is set once an open without access time update was
	// refused (see withoutAtime).
	atimeRefused atomic.Bool
}

var _ Store = (*FS)(nil)

// OpenFS opens the filesystem store rooted at dir. It fails when dir holds
// no docker/registry/v2 tree: the caller pointed at the wrong folder.
func OpenFS(dir string) (*FS, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open registry root: %w", err)
	}
	fi, err := root.Lstat(V2)
	if err != nil || !fi.IsDir() {
		root.Close()
		return nil, fmt.Errorf("%s: no %s folder here: not a registry rootdirectory", dir, V2)
	}
	fsys := &FS{dir: dir, root: root, euid: os.Geteuid()}
	fsys.dirfd, fsys.fast = openFastRoot(dir)
	return fsys, nil
}

// Close releases the root.
func (f *FS) Close() error {
	closeFastRoot(f.dirfd)
	return f.root.Close()
}

// withoutAtime opens with open(noAtime): a file to read or a folder to
// list, without updating its access time (O_NOATIME, Linux). A collection
// is not a client's read, and the update is a write: with relatime, the
// first read of a file or listing of a folder since it changed, or in the
// last day, writes its inode (a journal update each), which on a registry
// collected weekly is every file and folder a walk reads (a dry run at
// 300k blobs wrote 460,000 sectors). O_NOATIME is the owner's (or
// CAP_FOWNER's): once refused (EPERM), the run opens as before, open(0).
func withoutAtime[T any](f *FS, open func(extra int) (T, error)) (T, error) {
	if noAtime != 0 && !f.atimeRefused.Load() {
		v, err := open(noAtime)
		if !errors.Is(err, syscall.EPERM) {
			return v, err
		}
		f.atimeRefused.Store(true)
	}
	return open(0)
}

func (f *FS) remove(key string, dir bool, cache dirFDs) error {
	if f.fast {
		return f.fastRemove(key, dir, cache)
	}
	return f.root.Remove(key)
}

// String returns the root folder.
func (f *FS) String() string { return f.dir }

// FlatListing is false: listing a folder costs a system call, so walkers
// should list only the folders whose names carry the digests.
func (f *FS) FlatListing() bool { return false }

// BatchSize: file deletes are one system call each, so small batches keep
// many in flight.
func (f *FS) BatchSize() int { return 64 }

func (f *FS) wrap(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s: %w", op, path.Join(f.dir, key), ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", op, path.Join(f.dir, key), unwrapPathError(err))
}

// unwrapPathError drops the *PathError's own path, which os.Root reports
// relative to the root: our messages name the full path already.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ReadDir lists a folder without a stat per entry.
func (f *FS) ReadDir(ctx context.Context, dir string) ([]Entry, error) {
	entries, _, err := f.list(ctx, dir, false)
	return entries, err
}

// ReadDirTime implements DirTimer: the folder's time comes from the open
// folder, before it is listed.
func (f *FS) ReadDirTime(ctx context.Context, dir string) ([]Entry, time.Time, error) {
	return f.list(ctx, dir, true)
}

// list lists dir, with its modification time first when timed.
func (f *FS) list(ctx context.Context, dir string, timed bool) ([]Entry, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err
	}
	if f.fast {
		return f.fastList(dir, timed)
	}
	d, err := withoutAtime(f, func(extra int) (*os.File, error) { return f.root.OpenFile(dir, os.O_RDONLY|extra, 0) })
	if err != nil {
		return nil, time.Time{}, f.wrap("list", dir, err)
	}
	defer d.Close()
	var at time.Time
	if timed {
		fi, err := d.Stat()
		if err != nil {
			return nil, time.Time{}, f.wrap("stat", dir, err)
		}
		at = fi.ModTime()
	}
	des, err := d.ReadDir(-1)
	if err != nil {
		return nil, time.Time{}, f.wrap("list", dir, err)
	}
	return entriesOf(des), at, nil
}

// ModTimes implements DirTimer: one fstatat a name, relative to dir opened
// once, where Stat would open, stat and close from the root.
func (f *FS) ModTimes(ctx context.Context, dir string, names []string, fn func(int, time.Time, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.fast {
		return f.fastModTimes(dir, names, fn)
	}
	for i, name := range names {
		fi, err := f.root.Lstat(dir + "/" + name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fn(i, time.Time{}, nil)
		case err != nil:
			fn(i, time.Time{}, f.wrap("stat", dir+"/"+name, err))
		default:
			fn(i, fi.ModTime(), nil)
		}
	}
	return nil
}

// entriesOf converts a listing, sorted by name.
func entriesOf(des []fs.DirEntry) []Entry {
	out := make([]Entry, len(des))
	for i, de := range des {
		t := TypeOther
		switch {
		case de.Type().IsRegular():
			t = TypeFile
		case de.IsDir():
			t = TypeDir
		}
		out[i] = Entry{Name: de.Name(), Type: t}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// StatChildren implements ChildStatter.
func (f *FS) StatChildren(ctx context.Context, dir, name string, fn func(Entry, Object, error) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.fast {
		return f.fastStatChildren(dir, name, fn)
	}
	entries, err := f.ReadDir(ctx, dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		var o Object
		var err error
		if e.Type == TypeDir {
			o, err = f.Stat(ctx, dir+"/"+e.Name+"/"+name)
		}
		if err := fn(e, o, err); err != nil {
			return err
		}
	}
	return nil
}

// StatNames implements NameStatter.
func (f *FS) StatNames(ctx context.Context, dir string, names []string, fn func(int, Object, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.fast {
		return f.fastStatNames(dir, names, fn)
	}
	for i, name := range names {
		o, err := f.Stat(ctx, dir+"/"+name)
		fn(i, o, err)
	}
	return nil
}

// Walk lists every regular file under prefix, depth first, in name order.
// Symlinks and other special files are skipped.
func (f *FS) Walk(ctx context.Context, prefix string, fn func(Object) error) error {
	entries, err := f.ReadDir(ctx, prefix)
	if err != nil {
		return err
	}
	for _, e := range entries {
		key := prefix + "/" + e.Name
		switch e.Type {
		case TypeDir:
			if err := f.Walk(ctx, key, fn); err != nil && !IsNotFound(err) {
				return err
			}
		case TypeFile:
			o, err := f.Stat(ctx, key)
			if IsNotFound(err) {
				continue // deleted since the listing
			}
			if err != nil {
				return err
			}
			if err := fn(o); err != nil {
				return err
			}
		}
	}
	return nil
}

// Stat returns a regular file's size and modification time. A symlink or a
// folder is an error: it is not a file of the layout.
func (f *FS) Stat(ctx context.Context, key string) (Object, error) {
	if err := ctx.Err(); err != nil {
		return Object{}, err
	}
	if f.fast {
		size, mtime, mode, err := f.fastStat(key)
		if err != nil {
			return Object{}, f.wrap("stat", key, err)
		}
		if mode != 0 {
			return Object{}, f.notRegular("stat", key, mode)
		}
		return Object{Key: key, Size: size, ModTime: mtime}, nil
	}
	fi, err := f.root.Lstat(key)
	if err != nil {
		return Object{}, f.wrap("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Object{}, f.notRegular("stat", key, fi.Mode())
	}
	return Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// ReadFile reads a regular file of at most limit bytes. Anything else (a
// FIFO, a socket, a device, a folder, a symlink) is an error wrapping
// ErrNotRegular, found without waiting: the file is opened without
// blocking or following a symlink (see openRead) and its type checked
// before a byte is read.
func (f *FS) ReadFile(ctx context.Context, key string, limit int64) ([]byte, Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, Object{}, err
	}
	if f.fast {
		b, size, mtime, mode, err := f.fastRead(key, limit)
		o := Object{Key: key, Size: size, ModTime: mtime}
		switch {
		case err != nil:
			return nil, o, f.wrap("read", key, err)
		case mode != 0:
			return nil, o, f.notRegular("read", key, mode)
		case size > limit:
			return nil, o, fmt.Errorf("read %s: %d bytes, limit %d: %w", path.Join(f.dir, key), size, limit, ErrTooLarge)
		}
		return b, o, nil
	}
	file, o, err := f.openRead("read", key)
	if err != nil {
		return nil, o, err
	}
	defer file.Close()
	if o.Size > limit {
		return nil, o, fmt.Errorf("read %s: %d bytes, limit %d: %w", path.Join(f.dir, key), o.Size, limit, ErrTooLarge)
	}
	b := make([]byte, o.Size)
	if _, err := io.ReadFull(file, b); err != nil {
		return nil, o, f.wrap("read", key, err)
	}
	return b, o, nil
}

// openRead opens a regular file to read through os.Root (the fallback of
// the openat2 path): without blocking (a FIFO opens without waiting for a
// writer), without following a symlink, without taking a terminal as the
// run's controlling terminal; anything but a regular file is closed unread.
// Reads of a regular file block as usual: O_NONBLOCK means nothing to them.
func (f *FS) openRead(op, key string) (*os.File, Object, error) {
	file, err := withoutAtime(f, func(extra int) (*os.File, error) {
		return f.root.OpenFile(key, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY|extra, 0)
	})
	if err != nil {
		// A socket, or a device without a driver, cannot be opened at all.
		if fi, serr := f.root.Lstat(key); serr == nil && !fi.Mode().IsRegular() {
			return nil, Object{}, f.notRegular(op, key, fi.Mode())
		}
		return nil, Object{}, f.wrap(op, key, err)
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, Object{}, f.wrap(op, key, err)
	}
	if !fi.Mode().IsRegular() {
		file.Close()
		return nil, Object{}, f.notRegular(op, key, fi.Mode())
	}
	return file, Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// ErrNotRegular is wrapped by the errors of FS reads and stats of a key
// that is no regular file: a folder, a symlink, a FIFO, a socket or a
// device where the layout has a file. Such a key is damage to report and
// leave alone.
var ErrNotRegular = errors.New("not a regular file")

// notRegular is the error for key, which is of type mode.
func (f *FS) notRegular(op, key string, mode fs.FileMode) error {
	return fmt.Errorf("%s %s: %s: %w", op, path.Join(f.dir, key), typeName(mode), ErrNotRegular)
}

// typeName names the type of a file that is not regular, for messages.
func typeName(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeDevice != 0:
		return "a device"
	case mode&fs.ModeSymlink != 0:
		return "a symlink"
	case mode.IsDir():
		return "a folder"
	}
	return "a special file"
}

// Delete removes each file, then the folders above it that are left empty,
// stopping at the layout's fixed folders.
func (f *FS) Delete(ctx context.Context, keys []string, done func(string, error)) {
	cache := dirFDs{}
	defer cache.close()
	var emptied []string
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			done(key, err)
			continue
		}
		err := f.remove(key, false, cache)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			done(key, f.wrap("delete", key, err))
			continue
		}
		emptied = addDir(emptied, keyDir(key))
		done(key, nil)
	}
	f.pruneAll(emptied, cache)
}

// addDir adds dir to dirs unless it is there already. A batch's keys are
// sorted: their folders are few, and most often the last one added.
func addDir(dirs []string, dir string) []string {
	if slices.Contains(dirs, dir) {
		return dirs
	}
	return append(dirs, dir)
}

// keyDir is path.Dir for the clean keys the sweep makes, without path.Clean's
// work (a sweep calls it several times a key).
func keyDir(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return "."
}

// keyBase is path.Base for clean keys.
func keyBase(key string) string {
	return key[strings.LastIndexByte(key, '/')+1:]
}

// pruneEmpty removes dir and its parents while they are empty and not fixed
// folders of the layout. A folder that is not empty stays: rmdir refuses it.
func (f *FS) pruneEmpty(dir string, cache dirFDs) {
	f.pruneAll([]string{dir}, cache)
}

// pruneAll is pruneEmpty for the folders a batch of deletes or renames left
// behind, once each, a level at a time: a folder's parent is tried once
// however many of its children went, where trying it after every key
// costs an rmdir a key that fails (ENOTEMPTY) under the parent's lock;
// 30% of a sweep's renames into the trash, measured.
func (f *FS) pruneAll(dirs []string, cache dirFDs) {
	for len(dirs) > 0 {
		var parents []string
		for _, dir := range dirs {
			if !IsFixedDir(dir) && f.remove(dir, true, cache) == nil {
				parents = addDir(parents, keyDir(dir))
			}
		}
		dirs = parents
	}
}

// PutIfAbsent creates key exclusively (O_EXCL) and writes data to it.
func (f *FS) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file, err := f.root.OpenFile(key, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", path.Join(f.dir, key), ErrExists)
	}
	if err != nil {
		return f.wrap("create", key, err)
	}
	_, werr := file.Write(data)
	cerr := file.Close()
	if err := errors.Join(werr, cerr); err != nil {
		f.root.Remove(key)
		return f.wrap("write", key, err)
	}
	return nil
}

var _ DirRemover = (*FS)(nil)

// RemoveEmptyDirs removes the empty folders of dir, deepest first, then dir
// and its parents while empty. It never removes a file.
func (f *FS) RemoveEmptyDirs(ctx context.Context, dir string) error {
	entries, err := f.ReadDir(ctx, dir)
	if IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type == TypeDir {
			if err := f.removeEmptyBelow(ctx, dir+"/"+e.Name); err != nil {
				return err
			}
		}
	}
	if err := f.remove(dir, true, nil); err != nil {
		return nil // not empty: a file or a nested repository stays
	}
	f.pruneEmpty(keyDir(dir), nil)
	return nil
}

func (f *FS) removeEmptyBelow(ctx context.Context, dir string) error {
	entries, err := f.ReadDir(ctx, dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type == TypeDir {
			if err := f.removeEmptyBelow(ctx, dir+"/"+e.Name); err != nil {
				return err
			}
		}
	}
	_ = f.remove(dir, true, nil) // fails, harmlessly, when not empty
	return nil
}
