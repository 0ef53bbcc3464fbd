package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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

// TestFSSpecialFilesNeverBlock puts a FIFO, a socket and (as root) a
// terminal-like device where the layout has files (a tag's current link, a
// blob's data, the lock) and reads them through every read path, on the
// openat2 path and on os.Root's: each is refused at once as what it is,
// wrapping ErrNotRegular, and left in place. A FIFO opened for reading
// without O_NONBLOCK would wait for a writer forever; the open would never
// return and the test would time out.
func TestFSSpecialFilesNeverBlock(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, _ := ParseDigest("sha256:" + strings.Repeat("0a", 32))
	make := map[string]func(string) error{
		"a FIFO": func(p string) error { return unix.Mkfifo(p, 0o644) },
		"a socket": func(p string) error {
			// Bound at a short path (sun_path holds 108 bytes), then moved.
			short, err := os.MkdirTemp("", "sock")
			if err != nil {
				return err
			}
			defer os.RemoveAll(short)
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Bind(fd, &unix.SockaddrUnix{Name: short + "/s"}); err != nil {
				return err
			}
			return os.Rename(short+"/s", p)
		},
	}
	if os.Geteuid() == 0 {
		// /dev/tty (5,0): opened without O_NOCTTY by a process with no
		// terminal, it would become the run's controlling terminal.
		make["a device"] = func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(5, 0))) }
	}
	kinds := map[string]string{} // key -> kind
	var keys []string
	for kind, mk := range make {
		for _, key := range []string{TagCurrentPath("app-"+kind[2:], "v1"), BlobDataPath(d) + "-" + kind[2:]} {
			kinds[key] = kind
			p := filepath.Join(root, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := mk(p); err != nil {
				t.Fatalf("make %s at %s: %v", kind, key, err)
			}
			keys = append(keys, key)
		}
	}
	if err := unix.Mkfifo(filepath.Join(root, LockKey), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, fast := range []bool{true, false} {
		f, err := OpenFS(root)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.fast = f.fast && fast
		reads := map[string]func(string) error{
			"ReadFile": func(k string) error { _, _, err := f.ReadFile(ctx, k, 1<<20); return err },
			"Open": func(k string) error {
				rc, _, err := f.Open(ctx, k)
				if err == nil {
					rc.Close()
				}
				return err
			},
			"Stat": func(k string) error { _, err := f.Stat(ctx, k); return err },
		}
		for name, read := range reads {
			for _, key := range keys {
				kind := kinds[key]
				err := read(key)
				if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), kind) {
					t.Errorf("fast %v: %s(%s) = %v, want %s, not a regular file", fast, name, key, err, kind)
				}
			}
		}
		if _, err := ReadLock(ctx, f); !errors.Is(err, ErrNotRegular) {
			t.Errorf("fast %v: ReadLock of a FIFO = %v", fast, err)
		}
		if _, _, err := AcquireLock(ctx, f, LockInfo{RunID: "x"}, false); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "a FIFO") {
			t.Errorf("fast %v: AcquireLock over a FIFO = %v, want locked, naming the FIFO", fast, err)
		}
	}
	for _, key := range append(keys, LockKey) {
		if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(key))); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
}

// TestFSListsInodeNumbers lists a folder of files, folders, a symlink and
// a FIFO through the getdents64 path: names sorted, types as os.ReadDir
// gives them, and each entry's inode number that of the file.
func TestFSListsInodeNumbers(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, V2, "d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 300 { // more than one getdents64 buffer's worth of long names
		name := strings.Repeat("x", 150) + string(rune('a'+i%26)) + strings.Repeat("0", i%7) + string(rune('A'+i/26))
		names = append(names, name)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"sub", "zz"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("sub", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !f.fast {
		t.Skip("no openat2: the os.Root path lists")
	}
	got, err := f.ReadDir(context.Background(), V2+"/d")
	if err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := entriesOf(des)
	if len(got) != len(want) || len(got) != len(names)+4 {
		t.Fatalf("listed %d entries, os.ReadDir %d, made %d", len(got), len(want), len(names)+4)
	}
	for i, e := range got {
		if e.Name != want[i].Name || e.Type != want[i].Type {
			t.Errorf("entry %d: %q type %d, os.ReadDir %q type %d", i, e.Name, e.Type, want[i].Name, want[i].Type)
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, e.Name), &st); err != nil {
			t.Fatal(err)
		}
		if e.Ino != st.Ino {
			t.Errorf("%s: inode %d, lstat says %d", e.Name, e.Ino, st.Ino)
		}
	}
}

// TestFSReadsKeepAccessTimes reads a file and lists folders of the layout
// through every read path, with their access times made stale (relatime
// updates an access time older than the file's change): none is written.
// A plain read of a control file shows that this filesystem would have
// updated them; where it would not (noatime), there is nothing to check.
func TestFSReadsKeepAccessTimes(t *testing.T) {
	root := t.TempDir()
	link := "docker/registry/v2/repositories/r/_manifests/tags/t/current/link"
	for _, key := range []string{link, "control"} {
		p := filepath.Join(root, key)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("sha256:"+strings.Repeat("a", 64)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stale := time.Now().Add(-72 * time.Hour)
	atime := func(key string) time.Time {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, key), &st); err != nil {
			t.Fatal(err)
		}
		return time.Unix(st.Atim.Unix())
	}
	dirs := []string{"docker/registry/v2/repositories/r/_manifests/tags", "docker/registry/v2/repositories/r/_manifests/tags/t/current"}
	reset := func() {
		for _, key := range append([]string{link, "control"}, dirs...) {
			if err := os.Chtimes(filepath.Join(root, key), stale, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	reset()
	if _, err := os.ReadFile(filepath.Join(root, "control")); err != nil {
		t.Fatal(err)
	}
	if atime("control").Before(stale.Add(time.Hour)) {
		t.Skip("this filesystem does not update access times on read")
	}
	for _, fast := range []bool{true, false} {
		fs, err := OpenFS(root)
		if err != nil {
			t.Fatal(err)
		}
		fs.fast = fs.fast && fast
		ctx := context.Background()
		reset()
		if _, _, err := fs.ReadFile(ctx, link, 1024); err != nil {
			t.Fatal(err)
		}
		if _, _, err := fs.ReadDirTime(ctx, dirs[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := fs.ReadDir(ctx, dirs[1]); err != nil {
			t.Fatal(err)
		}
		for _, key := range append([]string{link}, dirs...) {
			if got := atime(key); got.After(stale.Add(time.Hour)) {
				t.Errorf("fast %v: %s: access time written by a read (%v)", fast, key, got)
			}
		}
		fs.Close()
	}
}

// TestWithoutAtimeFallsBack: where O_NOATIME is refused (a run whose user
// does not own the files), the open is made again without it, and the run
// stops asking.
func TestWithoutAtimeFallsBack(t *testing.T) {
	f := &FS{}
	var asked []int
	open := func(extra int) (int, error) {
		asked = append(asked, extra)
		if extra != 0 {
			return -1, unix.EPERM
		}
		return 7, nil
	}
	for range 2 {
		if fd, err := withoutAtime(f, open); fd != 7 || err != nil {
			t.Fatalf("got %d, %v; want the open without O_NOATIME", fd, err)
		}
	}
	if want := []int{noAtime, 0, 0}; !slices.Equal(asked, want) {
		t.Errorf("opened with %v, want %v", asked, want)
	}
}
