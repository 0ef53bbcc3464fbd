//go:build linux

package storage

import (
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// fastTrash moves unit into run's trash with one renameat2, from its
// folder resolved without symlinks (src, as fastRemove does) to the same
// folder under the trash (dst, made on first use). RENAME_NOREPLACE: a
// unit already in the trash (a second plan naming it) is never replaced.
// The unit must be what the layout has there: a folder for a folder unit,
// a regular file for an upload's file; a symlink or anything else is left
// alone.
func (f *FS) fastTrash(run, unit string, wantDir bool, src dirFDs, dst map[string]int) error {
	parent, name := keyDir(unit), keyBase(unit)
	p, err := src.open(f, parent)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(p.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return osErr(err)
	}
	switch m := modeOf(&st); {
	case wantDir && m != fs.ModeDir, !wantDir && m != 0:
		return fmt.Errorf("%s where the layout has a %s: left alone", typeNameOr(m), map[bool]string{true: "folder", false: "file"}[wantDir])
	}
	d, ok := dst[parent]
	if !ok {
		tdir := trashRoot(run) + "/" + parent
		if err := f.root.MkdirAll(tdir, 0o700); err != nil {
			return fmt.Errorf("make trash folder: %w", unwrapPathError(err))
		}
		if d, err = beneath(f.dirfd, tdir, unix.O_PATH|unix.O_DIRECTORY); err != nil {
			return fmt.Errorf("open trash folder: %w", osErr(err))
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

func closeTrashDirs(dst map[string]int) {
	for _, fd := range dst {
		unix.Close(fd)
	}
}

// checkNoSymlinks checks that dir resolves to a folder without a symlink
// anywhere in its path.
func (f *FS) checkNoSymlinks(dir string) error {
	if !f.fast {
		return f.checkNoSymlinksSlow(dir)
	}
	fd, err := beneath(f.dirfd, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return readErr(err)
	}
	unix.Close(fd)
	return nil
}
