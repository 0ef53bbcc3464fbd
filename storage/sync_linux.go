//go:build linux

package storage

import "golang.org/x/sys/unix"

// Sync flushes every write of the filesystem holding the root (syncfs): a
// restore writes its files without an fsync each, then calls this once.
func (f *FS) Sync() error {
	d, err := f.root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}
