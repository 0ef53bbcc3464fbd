//go:build !linux

package storage

import (
	"io/fs"
	"time"
)

// noAtime: no such flag here (see withoutAtime).
const noAtime = 0

func openFastRoot(string) (int, bool) { return -1, false }
func closeFastRoot(int)               {}

func (f *FS) fastStat(string) (int64, time.Time, fs.FileMode, error) { panic("unreachable") }
func (f *FS) fastRead(string, int64) ([]byte, int64, time.Time, fs.FileMode, error) {
	panic("unreachable")
}
func (f *FS) fastList(string, bool) ([]Entry, time.Time, error) { panic("unreachable") }
func (f *FS) fastRemove(string, bool, dirFDs) error             { panic("unreachable") }

type dirFDs map[string]int

func (dirFDs) close() {}

func (f *FS) fastStatChildren(string, string, func(Entry, Object, error) error) error {
	panic("unreachable")
}

func (f *FS) fastModTimes(string, []string, func(int, time.Time, error)) error {
	panic("unreachable")
}

func (f *FS) fastStatNames(string, []string, func(int, Object, error)) error {
	panic("unreachable")
}

func (f *FS) fastTrash(string, string, string, dirFDs, map[string]int) error {
	panic("unreachable")
}

func closeTrashDirs(map[string]int) {}

func (f *FS) fastRestore(string, string, string, dirFDs, dirFDs) error {
	panic("unreachable")
}

func (f *FS) freeDir(dir string) error {
	if err := f.checkNoSymlinksSlow(dir); err != nil {
		return err
	}
	return f.root.RemoveAll(dir)
}
