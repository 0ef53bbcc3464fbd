//go:build linux

package storagetest

import (
	"os"

	"golang.org/x/sys/unix"
)

// memoryTempDir is where the tests' temporary folders go when nothing else
// is asked for (see UseMemoryTempDir), and minMemoryTemp the room it must
// have free.
const (
	memoryTempDir = "/dev/shm"
	minMemoryTemp = 2 << 30
)

// UseMemoryTempDir points $TMPDIR, when it is unset, at /dev/shm if that
// is a tmpfs with 2 GiB free that this process may write, so that the
// scratch registries of t.TempDir (and the caches the tests keep under
// os.TempDir) live in memory. Call it from TestMain, before m.Run.
//
// Why: the tests make and remove hundreds of thousands of small files, and
// on an ext4 without a journal (as on the 2-core CI machine) every inode
// allocation skips the inodes freed in the last 30 seconds, reading their
// inode table blocks one by one (ext4's recently_deleted): the package
// cmd/regsweep spent 145 s of system time in 159 s of wall time there,
// 42 s and 116 s with /dev/shm. A $TMPDIR that is set is used as it is:
// TMPDIR=/var/tmp runs the tests on the disk.
func UseMemoryTempDir() {
	if _, set := os.LookupEnv("TMPDIR"); set {
		return
	}
	var st unix.Statfs_t
	if err := unix.Statfs(memoryTempDir, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		return
	}
	if st.Bavail*uint64(st.Bsize) < minMemoryTemp || unix.Access(memoryTempDir, unix.W_OK) != nil {
		return
	}
	os.Setenv("TMPDIR", memoryTempDir)
}
