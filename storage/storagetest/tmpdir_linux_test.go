//go:build linux

package storagetest

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestTempInMemory(t *testing.T) {
	roomy := unix.Statfs_t{Type: unix.TMPFS_MAGIC, Bsize: 4096, Bavail: 1 << 20} // 4 GiB
	small := roomy
	small.Bavail = 1 << 10
	disk := roomy
	disk.Type = unix.EXT4_SUPER_MAGIC
	for _, c := range []struct {
		name                               string
		tmpdirSet, bench, statOK, writable bool
		st                                 unix.Statfs_t
		want                               bool
	}{
		{"tmpfs with room", false, false, true, true, roomy, true},
		{"TMPDIR set", true, false, true, true, roomy, false},
		{"a benchmark", false, true, true, true, roomy, false},
		{"no /dev/shm", false, false, false, true, unix.Statfs_t{}, false},
		{"not a tmpfs", false, false, true, true, disk, false},
		{"under 2 GiB free", false, false, true, true, small, false},
		{"not writable", false, false, true, false, roomy, false},
	} {
		if got := tempInMemory(c.tmpdirSet, c.bench, c.statOK, &c.st, c.writable); got != c.want {
			t.Errorf("%s: in memory %v, want %v", c.name, got, c.want)
		}
	}
}
