//go:build linux

package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// fastTrash moves unit into run's trash with one renameat2, from its
// folder resolved without symlinks (src, as fastRemove does) to the same
// folder under the trash (dst, made on first use). RENAME_NOREPLACE: a
// unit already in the trash (a second plan naming it) is never replaced.
// The unit must be what the layout has there: a folder for a folder unit,
// a regular file for an upload's file; a symlink or anything else is left
// alone.
//
// file is the name of the file a folder unit holds ("data", "link"), ""
// for a file unit. A folder unit's first block is read before the rename,
// by the open that checks it is a folder (checkUnit).
func (f *FS) fastTrash(run, unit, file string, src dirFDs, dst map[string]int) error {
	wantDir := file != ""
	parent, name := keyDir(unit), keyBase(unit)
	p, err := src.open(f, parent)
	if err != nil {
		return err
	}
	if err := checkUnit(p.fd, name, wantDir); err != nil {
		return err
	}
	d, ok := dst[parent]
	if !ok {
		tdir := trashRoot(run) + "/" + parent
		if d, err = f.openTrashDir(tdir); err != nil {
			// Not wrapped: a trash folder missing, or a symlink or a file
			// in its place (ENOTDIR), is no sign that the unit is gone.
			return fmt.Errorf("open trash folder %s: %v", tdir, err)
		}
		dst[parent] = d
	}
	switch err := unix.Renameat2(p.fd, name, d, name, unix.RENAME_NOREPLACE); err {
	case nil:
		return nil
	case unix.EXDEV:
		return fmt.Errorf("%w: the trash is on another filesystem (EXDEV)", ErrNoTrash)
	case unix.EINVAL, unix.ENOSYS:
		return fmt.Errorf("%w: renameat2 without replacing is not supported here (%v)", ErrNoTrash, err)
	default:
		return osErr(err)
	}
}

// openTrashDir opens the trash folder tdir (O_PATH), making it, and the
// folders above it that are missing, each with one mkdirat relative to its
// parent. Another batch of the run made it most of the time: it is opened
// first (one openat2). os.Root's MkdirAll resolved every folder on the way
// from the root for each folder it made, a dozen calls: a tenth of a
// sweep's CPU samples at 300k blobs, whose tag history entries alone have
// 16,000 parents.
func (f *FS) openTrashDir(tdir string) (int, error) {
	d, err := beneath(f.dirfd, tdir, unix.O_PATH|unix.O_DIRECTORY)
	if err != unix.ENOENT {
		return d, err
	}
	p := f.dirfd
	if strings.Contains(tdir, "/") {
		if p, err = f.openTrashDir(keyDir(tdir)); err != nil {
			return -1, err
		}
		defer unix.Close(p)
	}
	// EEXIST: another batch made it meanwhile. What is there is opened
	// as a folder, never through a symlink.
	if err := unix.Mkdirat(p, keyBase(tdir), 0o700); err != nil && err != unix.EEXIST {
		return -1, err
	}
	return unix.Openat(p, keyBase(tdir), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// checkUnit checks that name in the folder fd is what the layout has for a
// unit (checkUnitType), and lists a folder unit, the result unused: ext4, renaming a folder into another parent, rewrites the folder's ".."
// entry, reading its first block for that, and its inode, reading the
// inode's table block, under the filesystem's one cross-folder rename
// lock. Listed first (getdents reads the block, and, updating the access
// time, the inode's), the blocks are read here, by many jobs at once,
// instead of one synchronous disk read after another inside the lock. A
// lookup would not do: a name stays cached once a walk has seen it
// (dentries outlive the page cache), and a cached lookup reads nothing; a
// lookup of a name the folder does not hold, one system call where this is
// three, left the renames waiting (sweeps of 50-53 s against 30-34 s,
// page cache dropped): it reads the folder's block, not its inode's.
// Measured at 300k blobs with the page cache dropped (dentries kept, as
// memory pressure leaves them), the sweep's renames took 26-36 s with the
// folder listed first against 63-73 s without. The open (O_DIRECTORY,
// O_NOFOLLOW) is the check that the unit is a folder: a stat before it was
// a tenth of a warm sweep's CPU samples.
func checkUnit(fd int, name string, wantDir bool) error {
	if !wantDir {
		return checkUnitType(fd, name, false)
	}
	d, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		// Not a folder, gone, or a folder we may not list (then the
		// rename goes on without the read): say which.
		return checkUnitType(fd, name, true)
	}
	var buf [512]byte
	_, _ = unix.Getdents(d, buf[:])
	unix.Close(d)
	return nil
}

// checkUnitType checks that name in the folder fd is what the layout has
// for a unit: a folder for a folder unit (wantDir), a regular file for an
// upload's file. A symlink or anything else is left alone.
func checkUnitType(fd int, name string, wantDir bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return osErr(err)
	}
	return checkUnitMode(modeOf(&st), wantDir)
}

// fastRestore renames unit from run's trash back to its place in the
// layout with one renameat2, from its folder in the trash (src) to its
// folder in the layout (dst), both resolved without symlinks; a missing
// layout folder is made as Put makes one (mkdirLike). RENAME_NOREPLACE: a
// place taken again since the sweep (a push) is never replaced, and is
// ErrExists. The unit must be what the layout has there (checkUnitType):
// a folder holding its file (file: "data", "link"), or, file "", a regular
// file.
func (f *FS) fastRestore(run, unit, file string, src, dst dirFDs) error {
	parent, name := keyDir(unit), keyBase(unit)
	p, err := src.open(f, trashRoot(run)+"/"+parent)
	if err != nil {
		return err
	}
	if err := checkUnit(p.fd, name, file != ""); err != nil {
		return err
	}
	if file != "" {
		// The folder must hold its file, a regular one.
		if err := checkUnitType(p.fd, name+"/"+file, false); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	d, err := dst.open(f, parent)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := f.mkdirLike(parent, new([]string)); err != nil {
			return err
		}
		d, err = dst.open(f, parent)
	}
	if err != nil {
		return err
	}
	switch err := unix.Renameat2(p.fd, name, d.fd, name, unix.RENAME_NOREPLACE); err {
	case nil:
		return nil
	case unix.EEXIST:
		return ErrExists
	case unix.EINVAL, unix.ENOSYS:
		return f.restoreUnit(trashRoot(run), unit, file)
	default:
		return osErr(err)
	}
}

func closeTrashDirs(dst map[string]int) {
	for _, fd := range dst {
		unix.Close(fd)
	}
}

// fastFree removes everything under the folder fd (opened without
// symlinks), then nothing else: the caller removes the folder. In a
// private folder (see privateDir: only the run's user can swap an entry
// for a symlink, and would gain nothing) a child folder holding the one
// file of a trash unit ("data" or "link") goes with two unlinks, its file
// through the child's name and then the child; anything else, and every
// child of a folder that is not private, is opened without following a
// symlink and emptied the same way. A blob folder is then two system
// calls, where os.RemoveAll makes some eight.
func (f *FS) fastFree(fd int) error {
	var st unix.Stat_t
	private := unix.Fstat(fd, &st) == nil && privateDir(&st, f.euid)
	d := os.NewFile(uintptr(fd), "")
	// d owns fd from here; the caller's fd is closed with it.
	defer d.Close()
	for {
		entries, err := d.ReadDir(1024)
		for _, e := range entries {
			name := e.Name()
			if !e.IsDir() {
				if err := unix.Unlinkat(fd, name, 0); err != nil && err != unix.ENOENT {
					return err
				}
				continue
			}
			if private {
				if unix.Unlinkat(fd, name+"/data", 0) == nil || unix.Unlinkat(fd, name+"/link", 0) == nil {
					if unix.Unlinkat(fd, name, unix.AT_REMOVEDIR) == nil {
						continue
					}
				}
			}
			child, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				if err == unix.ENOENT {
					continue
				}
				return err
			}
			if err := f.fastFree(child); err != nil {
				return err
			}
			if err := unix.Unlinkat(fd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
				return err
			}
		}
		if err == io.EOF || len(entries) == 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// freeDir removes dir and everything under it, resolved without symlinks.
func (f *FS) freeDir(dir string) error {
	if !f.fast {
		if err := f.checkNoSymlinksSlow(dir); err != nil {
			return err
		}
		return f.root.RemoveAll(dir)
	}
	fd, err := beneath(f.dirfd, dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return readErr(err)
	}
	if err := f.fastFree(fd); err != nil {
		return err
	}
	parent, err := beneath(f.dirfd, keyDir(dir), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return readErr(err)
	}
	defer unix.Close(parent)
	if err := unix.Unlinkat(parent, keyBase(dir), unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return err
	}
	return nil
}
