//go:build !linux

package storage

import "syscall"

// Sync flushes every write of every filesystem (sync): a restore writes its
// files without an fsync each, then calls this once.
func (f *FS) Sync() error {
	syscall.Sync()
	return nil
}
