package storage

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestPrivateDir(t *testing.T) {
	dir := func(uid uint32, perm uint32) *unix.Stat_t {
		return &unix.Stat_t{Uid: uid, Mode: unix.S_IFDIR | perm}
	}
	for _, c := range []struct {
		st   *unix.Stat_t
		euid int
		want bool
	}{
		{dir(0, 0o755), 0, true},
		{dir(1000, 0o700), 1000, true},
		{dir(1000, 0o755), 0, false}, // root over another user's registry
		{dir(0, 0o775), 0, false},    // the group may write
		{dir(0, 0o757), 0, false},    // others may write
		{dir(0, 0o1777), 0, false},   // sticky, still writable by all
		{&unix.Stat_t{Uid: 0, Mode: unix.S_IFLNK | 0o755}, 0, false},
	} {
		if got := privateDir(c.st, c.euid); got != c.want {
			t.Errorf("uid %d mode %o, euid %d: private %v, want %v", c.st.Uid, c.st.Mode, c.euid, got, c.want)
		}
	}
}
