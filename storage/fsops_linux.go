//go:build linux

package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux the filesystem store resolves every key with one openat2 call
// confined to the root (RESOLVE_BENEATH) and refusing symlinks anywhere in
// the path (RESOLVE_NO_SYMLINKS): the kernel enforces what os.Root does
// component by component, at a fraction of the system calls. Kernels
// without openat2 (before 5.6) fall back to os.Root.

// beneath opens key relative to the root directory fd.
func beneath(dirfd int, key string, flags uint64) (int, error) {
	for try := 0; ; try++ {
		fd, err := unix.Openat2(dirfd, key, &unix.OpenHow{
			Flags:   flags | unix.O_CLOEXEC | unix.O_NOFOLLOW,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
		})
		// EAGAIN is a rename racing the resolution, or, opening without
		// blocking, a lease another process holds: retry a few times, never
		// spin.
		if err == unix.EINTR || err == unix.EAGAIN && try < 8 {
			continue
		}
		if err == unix.ELOOP || err == unix.EXDEV {
			return -1, errors.New("symlink in path: not followed")
		}
		return fd, err
	}
}

// fastOps reports whether openat2 works here, opening the root's fd.
func openFastRoot(dir string) (int, bool) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false
	}
	if t, err := beneath(fd, ".", unix.O_PATH|unix.O_DIRECTORY); err != nil {
		unix.Close(fd)
		return -1, false
	} else {
		unix.Close(t)
	}
	return fd, true
}

func closeFastRoot(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// readFlags open a file to read: a FIFO opens without waiting for a writer,
// a terminal never becomes the run's controlling terminal. Reads of a
// regular file block as usual: O_NONBLOCK means nothing to them.
const readFlags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY

// fastOpenRead opens key to read (readFlags), confined to the root.
func (f *FS) fastOpenRead(key string) (int, error) {
	return f.readBeneath(key, readFlags)
}

// noAtime is O_NOATIME (see withoutAtime).
const noAtime = unix.O_NOATIME

// readBeneath opens key (beneath) to read or list it, withoutAtime.
func (f *FS) readBeneath(key string, flags uint64) (int, error) {
	return withoutAtime(f, func(extra int) (int, error) { return beneath(f.dirfd, key, flags|uint64(extra)) })
}

// fastSpecial names the type of what key is when opening it to read failed
// with err as opening a socket or a device without a driver fails (ENXIO,
// ENODEV): ok is false for any other error or a regular file.
func (f *FS) fastSpecial(key string, err error) (fs.FileMode, bool) {
	if err != unix.ENXIO && err != unix.ENODEV {
		return 0, false
	}
	_, _, mode, serr := f.fastStat(key)
	return mode, serr == nil && mode != 0
}

func modeOf(st *unix.Stat_t) fs.FileMode {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

func (f *FS) fastStat(key string) (size int64, mtime time.Time, mode fs.FileMode, err error) {
	fd, err := beneath(f.dirfd, key, unix.O_PATH)
	if err != nil {
		return 0, time.Time{}, 0, readErr(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, time.Time{}, 0, osErr(err)
	}
	return st.Size, time.Unix(st.Mtim.Unix()), modeOf(&st), nil
}

// fastStatChildren lists dir from an open descriptor and stats name in each
// child folder with fstatat relative to it. The child is a folder by the
// listing's d_type; the final component is not followed (a symlink there is
// reported, not stat'ed through).
func (f *FS) fastStatChildren(dir, name string, fn func(Entry, Object, error) error) error {
	fd, err := f.readBeneath(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return f.wrap("list", dir, readErr(err))
	}
	defer unix.Close(fd)
	entries, err := readDirents(fd)
	if err != nil {
		return f.wrap("list", dir, err)
	}
	for _, e := range entries {
		var o Object
		var err error
		if e.Type == TypeDir {
			rel := e.Name + "/" + name
			key := dir + "/" + rel
			var st unix.Stat_t
			switch serr := unix.Fstatat(fd, rel, &st, unix.AT_SYMLINK_NOFOLLOW); {
			case serr != nil:
				err = f.wrap("stat", key, readErr(serr))
			case modeOf(&st) != 0:
				err = f.notRegular("stat", key, modeOf(&st))
			default:
				o = Object{Key: key, Size: st.Size, ModTime: time.Unix(st.Mtim.Unix())}
			}
		}
		if err := fn(e, o, err); err != nil {
			return err
		}
	}
	return nil
}

// fastStatNames stats names relative to dir, resolved once without
// symlinks; the final component is not followed and must be a regular file.
func (f *FS) fastStatNames(dir string, names []string, fn func(int, Object, error)) error {
	fd, err := beneath(f.dirfd, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return f.wrap("stat", dir, readErr(err))
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	for i, name := range names {
		key := dir + "/" + name
		switch serr := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); {
		case serr != nil:
			fn(i, Object{}, f.wrap("stat", key, readErr(serr)))
		case modeOf(&st) != 0:
			fn(i, Object{}, f.notRegular("stat", key, modeOf(&st)))
		default:
			fn(i, Object{Key: key, Size: st.Size, ModTime: time.Unix(st.Mtim.Unix())}, nil)
		}
	}
	return nil
}

// fastModTimes stats names relative to dir, resolved once without symlinks.
// A name's inner folders are not checked for symlinks: a recheck only
// compares times, and a wrong time only makes it list again.
func (f *FS) fastModTimes(dir string, names []string, fn func(int, time.Time, error)) error {
	fd, err := beneath(f.dirfd, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return f.wrap("stat", dir, readErr(err))
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	for i, name := range names {
		switch err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err {
		case nil:
			fn(i, time.Unix(st.Mtim.Unix()), nil)
		case unix.ENOENT, unix.ENOTDIR:
			fn(i, time.Time{}, nil)
		default:
			fn(i, time.Time{}, f.wrap("stat", dir+"/"+name, osErr(err)))
		}
	}
	return nil
}

// fastRead reads a regular file of at most limit bytes; size and mtime come
// back even when the file is too large. A file of another type (mode) is
// opened without blocking (see readFlags) and not read.
func (f *FS) fastRead(key string, limit int64) (b []byte, size int64, mtime time.Time, mode fs.FileMode, err error) {
	fd, err := f.fastOpenRead(key)
	if err != nil {
		if m, ok := f.fastSpecial(key, err); ok {
			return nil, 0, time.Time{}, m, nil
		}
		return nil, 0, time.Time{}, 0, readErr(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, 0, time.Time{}, 0, osErr(err)
	}
	size, mtime, mode = st.Size, time.Unix(st.Mtim.Unix()), modeOf(&st)
	if mode != 0 || size > limit {
		return nil, size, mtime, mode, nil
	}
	b = make([]byte, size)
	for n := 0; n < len(b); {
		m, err := unix.Read(fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, size, mtime, mode, osErr(err)
		}
		if m == 0 {
			return b[:n], size, mtime, mode, nil // shrank since fstat
		}
		n += m
	}
	return b, size, mtime, mode, nil
}

// fastList lists the folder key, with its modification time if timed.
// The folder stays a bare descriptor: an os.File would cost a fcntl (its
// blocking mode) and a cleanup to register and run, for each of the
// ~90,000 folders a walk lists at 300k blobs.
func (f *FS) fastList(key string, timed bool) ([]Entry, time.Time, error) {
	fd, err := f.readBeneath(key, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, time.Time{}, f.wrap("list", key, readErr(err))
	}
	defer unix.Close(fd)
	var at time.Time
	if timed {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, time.Time{}, f.wrap("stat", key, osErr(err))
		}
		at = time.Unix(st.Mtim.Unix())
	}
	entries, err := readDirents(fd)
	if err != nil {
		return nil, time.Time{}, f.wrap("list", key, err)
	}
	return entries, at, nil
}

// readDirents lists the open folder fd with getdents64, keeping each
// entry's inode number (Entry.Ino), which os.File.ReadDir drops. An entry
// whose type the filesystem does not store (DT_UNKNOWN) is lstat'ed, as
// os.File.ReadDir does. Entries come sorted by name.
func readDirents(fd int) ([]Entry, error) {
	var out []Entry
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, osErr(err)
		}
		if n <= 0 {
			break
		}
		for b := buf[:n]; len(b) > 0; {
			// struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16,
			// d_type u8, d_name NUL-terminated.
			if len(b) < 19 {
				return nil, errors.New("getdents64: short record")
			}
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return nil, errors.New("getdents64: bad record length")
			}
			ino := binary.NativeEndian.Uint64(b[0:8])
			typ := b[18]
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			if string(name) == "." || string(name) == ".." {
				continue
			}
			e := Entry{Name: string(name), Ino: ino, Type: TypeOther}
			switch typ {
			case unix.DT_REG:
				e.Type = TypeFile
			case unix.DT_DIR:
				e.Type = TypeDir
			case unix.DT_UNKNOWN:
				var st unix.Stat_t
				if err := unix.Fstatat(fd, e.Name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					if err == unix.ENOENT {
						continue // gone since it was listed
					}
					return nil, osErr(err)
				}
				switch st.Mode & unix.S_IFMT {
				case unix.S_IFREG:
					e.Type = TypeFile
				case unix.S_IFDIR:
					e.Type = TypeDir
				}
			}
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// dirFDs holds the folders one Delete call resolved, so that the keys of a
// batch sharing a folder (a blob's data and folder share the prefix folder;
// a sorted batch shares most of them) resolve it once. An unlink is the
// slow part on a journaling filesystem; each openat2 saved is still ~10%.
type dirFDs map[string]dirFD

// dirFD is an open folder; private says that no user but the run's own can
// add, remove or rename an entry in it (it is the run's user's, and neither
// group nor others may write to it; an ACL granting write shows in the
// group bits).
type dirFD struct {
	fd      int
	private bool
}

func (c dirFDs) close() {
	for _, d := range c {
		unix.Close(d.fd)
	}
}

// fastRemove removes a file, or an empty folder when dir is set. With a
// cache, the folder above the file's folder stays open in it for the next
// key, and the file's folder is resolved from it, one name without
// following a symlink:
//   - in a private folder (see dirFD), the file's folder is checked with one
//     fstatat to be a folder, and the file unlinked through its name
//     ("hex/data"). Only the run's own user could swap the folder for a
//     symlink in between, and would gain nothing it does not have.
//   - otherwise (a run as root over a registry another user owns), the
//     folder is opened (O_PATH, no symlinks) and the file unlinked from the
//     open folder: no swap can redirect it.
//
// A blob is then three system calls (fstatat, unlink, rmdir) or four.
func (f *FS) fastRemove(key string, dir bool, cache dirFDs) error {
	parent := keyDir(key)
	if _, ok := cache[parent]; !ok && !dir && cache != nil && !IsFixedDir(parent) {
		g, err := cache.open(f, keyDir(parent))
		if err != nil {
			return err
		}
		name := keyBase(parent)
		if !g.private {
			pfd, err := beneath(g.fd, name, unix.O_PATH|unix.O_DIRECTORY)
			var st unix.Stat_t
			if err == unix.ENOTDIR && unix.Fstatat(g.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && modeOf(&st) == fs.ModeSymlink {
				return errors.New("symlink in path: not followed") // O_PATH opens it, O_DIRECTORY refuses it
			}
			if err != nil {
				return osErr(err)
			}
			defer unix.Close(pfd)
			return osErr(unix.Unlinkat(pfd, keyBase(key), 0))
		}
		var st unix.Stat_t
		if err := unix.Fstatat(g.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return osErr(err)
		}
		switch modeOf(&st) {
		case fs.ModeDir:
		case fs.ModeSymlink:
			return errors.New("symlink in path: not followed")
		default:
			return fs.ErrNotExist // a file where the folder was: as openat2 says
		}
		return osErr(unix.Unlinkat(g.fd, name+"/"+keyBase(key), 0))
	}
	p, err := cache.open(f, parent)
	if err != nil {
		return err
	}
	if cache == nil {
		defer unix.Close(p.fd)
	}
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	err = unix.Unlinkat(p.fd, keyBase(key), flags)
	if d, ok := cache[key]; ok && dir && err == nil {
		unix.Close(d.fd) // the folder is gone
		delete(cache, key)
	}
	return osErr(err)
}

// open returns the folder dir (O_PATH), from the cache or resolved without
// symlinks, stat'ed and then cached; with a nil cache the caller closes it.
func (c dirFDs) open(f *FS, dir string) (dirFD, error) {
	if d, ok := c[dir]; ok {
		return d, nil
	}
	fd, err := beneath(f.dirfd, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return dirFD{}, osErr(err)
	}
	d := dirFD{fd: fd}
	if c != nil {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil {
			d.private = privateDir(&st, f.euid)
		}
		c[dir] = d
	}
	return d, nil
}

// privateDir reports whether only user euid can change the entries of the
// folder st describes (root aside, who can do anything anyway).
func privateDir(st *unix.Stat_t, euid int) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && int(st.Uid) == euid && st.Mode&0o022 == 0
}

// readErr is osErr for reads and listings, where a file in place of a
// folder of the path (ENOTDIR) is damage, not a missing key: a tags folder
// replaced by a file must not read as "no tags". os.Root, the fallback,
// does not map ENOTDIR to fs.ErrNotExist either.
func readErr(err error) error {
	if err == unix.ENOTDIR {
		return errors.New("a file where the layout has a folder")
	}
	return osErr(err)
}

// osErr maps errno values to the fs errors callers test for.
func osErr(err error) error {
	switch err {
	case nil:
		return nil
	case unix.ENOENT, unix.ENOTDIR:
		return fs.ErrNotExist
	case unix.EACCES, unix.EPERM:
		return fs.ErrPermission
	}
	return err
}
