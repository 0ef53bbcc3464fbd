//go:build !linux

package storagetest

// UseMemoryTempDir leaves $TMPDIR as it is: only Linux's tmpfs is looked
// for (see tmpdir_linux.go).
func UseMemoryTempDir() {}
