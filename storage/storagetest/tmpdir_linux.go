//go:build linux

package storagetest

import (
	"flag"
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
// and ran in 85 s instead of 150 s with /dev/shm. A $TMPDIR that is set is
// used as it is: TMPDIR=/var/tmp runs the tests on the disk. Benchmarks
// (-test.bench) measure the disk: with one asked for, $TMPDIR is left
// alone too (the flags are parsed here for that).
func UseMemoryTempDir() {
	_, set := os.LookupEnv("TMPDIR")
	if !flag.Parsed() {
		flag.Parse()
	}
	b := flag.Lookup("test.bench")
	bench := b != nil && b.Value.String() != ""
	var st unix.Statfs_t
	ok := unix.Statfs(memoryTempDir, &st) == nil
	if tempInMemory(set, bench, ok, &st, unix.Access(memoryTempDir, unix.W_OK) == nil) {
		os.Setenv("TMPDIR", memoryTempDir)
	}
}

// tempInMemory is UseMemoryTempDir's decision: TMPDIR unset, no benchmark,
// and /dev/shm (statfs ok, st) a tmpfs with room that may be written.
func tempInMemory(tmpdirSet, bench, statOK bool, st *unix.Statfs_t, writable bool) bool {
	return !tmpdirSet && !bench && statOK && st.Type == unix.TMPFS_MAGIC &&
		st.Bavail*uint64(st.Bsize) >= minMemoryTemp && writable
}
