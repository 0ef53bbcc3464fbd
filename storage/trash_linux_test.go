//go:build linux

package storage

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// trashFixture writes a blob, a layer link and an upload file, and opens
// the store.
func trashFixture(t *testing.T) (string, *FS, []string) {
	t.Helper()
	root := t.TempDir()
	d := mustDigest(t, strings.Repeat("ab", 32))
	keys := []string{BlobDataPath(d), LayerLinkPath("team/app", d), UploadDir("team/app", "u1") + "/data"}
	for _, k := range keys {
		writeFile(t, root, k, "x")
	}
	f, err := OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return root, f, keys
}

func mustDigest(t *testing.T, hex string) Digest {
	t.Helper()
	d, err := DigestFromHex("sha256", hex)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// trash moves keys into run's trash and returns the errors by key.
func trash(f *FS, run string, keys []string) map[string]error {
	errs := map[string]error{}
	f.Trash(context.Background(), run, keys, func(k string, err error) { errs[k] = err })
	return errs
}

// restore renames run's trash back as sweep.RestoreTrash does, one job.
func restore(f *FS, run string, fn func(string, error)) error {
	ctx := context.Background()
	ranks, err := f.TrashUnits(ctx, run, fn)
	if err != nil {
		return err
	}
	for _, units := range ranks {
		f.RestoreTrash(ctx, run, units, fn)
	}
	return f.PruneTrash(ctx, run)
}

// TestTrashAcrossFilesystemsIsRefused mounts a tmpfs on the trash folder:
// the rename fails with EXDEV, which Trash reports as ErrNoTrash, leaving
// every key where it was (the sweep then deletes it in place).
func TestTrashAcrossFilesystemsIsRefused(t *testing.T) {
	root, f, keys := trashFixture(t)
	mnt := filepath.Join(root, TrashDir)
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): needs root", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	for k, err := range trash(f, "run1", keys) {
		if !errors.Is(err, ErrNoTrash) || !strings.Contains(err.Error(), "EXDEV") {
			t.Errorf("%s: %v, want ErrNoTrash saying EXDEV", k, err)
		}
	}
	for _, k := range keys {
		if _, err := os.Stat(filepath.Join(root, k)); err != nil {
			t.Errorf("%s moved or lost: %v", k, err)
		}
	}
}

// TestTrashRestoreTakesOnlyLayoutKeys: a restore renames back what parses
// as a key of the layout, into a free place; a name that is no key, a
// symlink planted in the trash, and a place taken again are left in the
// trash, reported (the symlink is not followed, not even listed).
func TestTrashRestoreTakesOnlyLayoutKeys(t *testing.T) {
	root, f, keys := trashFixture(t)
	for k, err := range trash(f, "run1", keys) {
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	for _, k := range keys {
		if _, err := os.Lstat(filepath.Join(root, k)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s still in the layout: %v", k, err)
		}
		if _, err := os.Stat(filepath.Join(root, TrashDir, "run1", k)); err != nil {
			t.Fatalf("%s not in the trash: %v", k, err)
		}
	}
	tr := filepath.Join(root, TrashDir, "run1")
	writeFile(t, tr, V2+"/blobs/sha256/zz/nothex/data", "evil")
	writeFile(t, tr, V2+"/notalayout/x", "evil")
	hashstate := UploadDir("team/app", "u1") + "/hashstates/sha256/0"
	writeFile(t, tr, hashstate, "state") // a file in a folder that parses as an upload's file
	secret := filepath.Join(t.TempDir(), "secret")
	writeFile(t, filepath.Dir(secret), "secret/data", "secret")
	other := mustDigest(t, strings.Repeat("cd", 32))
	link := filepath.Join(tr, filepath.FromSlash(BlobDir(other)))
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, LayerLinkPath("team/app", mustDigest(t, strings.Repeat("ab", 32))), "pushed again")

	got := map[string]error{}
	if err := restore(f, "run1", func(u string, err error) { got[u] = err }); err != nil {
		t.Fatal(err)
	}
	if err := got[BlobDir(mustDigest(t, strings.Repeat("ab", 32)))]; err != nil {
		t.Errorf("blob not restored: %v", err)
	}
	for _, k := range []string{UploadDir("team/app", "u1") + "/data", hashstate} {
		if err := got[k]; err != nil {
			t.Errorf("%s: upload not restored: %v", k, err)
		}
		if _, err := os.Lstat(filepath.Join(root, k)); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	if err := got[keyDir(keys[1])]; !errors.Is(err, ErrExists) {
		t.Errorf("layer link over a taken place: %v, want ErrExists", err)
	}
	for _, bad := range []string{V2 + "/blobs/sha256/zz/nothex/data", V2 + "/notalayout/x"} {
		if err := got[bad]; err == nil {
			t.Errorf("%s: restored, want it refused", bad)
		}
	}
	if err := got[BlobDir(other)]; err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("the symlink planted as a blob folder: %v, want it refused as a symlink", err)
	}
	if len(got) != 7 {
		t.Errorf("restore reported %d units, want 7: %v", len(got), got)
	}
	// Units given to RestoreTrash directly are checked again: the
	// symlink, names that are no unit of the layout, a folder where the
	// layout has a file.
	evil := []string{BlobDir(other), V2 + "/blobs/sha256/zz/nothex", "../../etc", V2 + "/../" + BlobDir(other), BlobDir(other) + "/data"}
	writeFile(t, tr, UploadDir("team/app", "u2")+"/data/x", "a folder where the layout has a file")
	evil = append(evil, UploadDir("team/app", "u2")+"/data")
	empty := BlobDir(mustDigest(t, strings.Repeat("ef", 32)))
	if err := os.MkdirAll(filepath.Join(tr, filepath.FromSlash(empty)), 0o700); err != nil {
		t.Fatal(err)
	}
	evil = append(evil, empty)                 // a blob folder without its data
	for _, fast := range []bool{false, true} { // os.Root without openat2, and openat2
		f.fast = fast
		f.RestoreTrash(context.Background(), "run1", evil, func(u string, err error) {
			if err == nil {
				t.Errorf("RestoreTrash(%q), fast %v: restored, want it refused", u, fast)
			}
		})
	}
	f.fast = true
	if _, err := os.Lstat(filepath.Join(root, BlobDir(other))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the symlink planted in the trash reached the layout: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, empty)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a blob folder without its data reached the layout: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, UploadDir("team/app", "u2"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a folder in the trash reached the layout as an upload's file: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(root, keys[1]))
	if err != nil || string(b) != "pushed again" {
		t.Errorf("the taken place was replaced: %q, %v", b, err)
	}
	if runs, err := f.Trashes(context.Background()); err != nil || len(runs) != 1 {
		t.Errorf("trashes %v, %v: want run1, still holding what was refused", runs, err)
	}
	if err := f.RemoveTrash(context.Background(), "run1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(secret); err != nil {
		t.Errorf("freeing the trash followed its symlink: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, TrashDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the trash folder stays after its last run is freed: %v", err)
	}
	for _, bad := range []string{"", "..", ".x", "a/b", strings.Repeat("a", 65)} {
		if err := f.RemoveTrash(context.Background(), bad, ""); err == nil {
			t.Errorf("RemoveTrash(%q) accepted", bad)
		}
	}
}

// TestFreeTrashRefusesASymlinkedPath: a run folder whose path goes through
// a symlink (planted to point into the layout) is refused, and the layout
// keeps its files.
func TestFreeTrashRefusesASymlinkedPath(t *testing.T) {
	root, f, keys := trashFixture(t)
	run := filepath.Join(root, TrashDir, "run1")
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	// regsweep-trash/run1/docker -> the layout's docker folder.
	if err := os.Symlink(filepath.Join(root, "docker"), filepath.Join(run, "docker")); err != nil {
		t.Fatal(err)
	}
	if parts, err := f.TrashParts(context.Background(), "run1"); err == nil {
		t.Errorf("TrashParts through a symlink: %v, no error", parts)
	}
	for _, p := range []string{BlobPrefixDir(SHA256, "ab"), LayersDir("team/app"), UploadsDir("team/app")} {
		if err := f.RemoveTrash(context.Background(), "run1", p); err == nil {
			t.Errorf("RemoveTrash(%s) through a symlink: no error", p)
		}
	}
	if err := f.RemoveTrash(context.Background(), "run1", ""); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if _, err := os.Stat(filepath.Join(root, k)); err != nil {
			t.Errorf("%s lost through a symlink in the trash: %v", k, err)
		}
	}
}

// TestTrashPrunesWhatItEmptied moves keys in batches that empty folders at
// several levels at once, or only in a later batch: every folder a batch
// left empty goes (once a level), up to the layout's fixed folders, and a
// folder still holding anything stays.
func TestTrashPrunesWhatItEmptied(t *testing.T) {
	root := t.TempDir()
	a, b, c := mustDigest(t, strings.Repeat("0a", 32)), mustDigest(t, strings.Repeat("0b", 32)), mustDigest(t, strings.Repeat("0c", 32))
	first := []string{TagCurrentPath("app", "v1"), TagIndexLinkPath("app", "v1", a), TagIndexLinkPath("app", "v1", b), LayerLinkPath("app", a), LayerLinkPath("app", b), TagIndexLinkPath("app", "v3", a)}
	second := []string{TagCurrentPath("app", "v3"), TagIndexLinkPath("app", "v3", b)}
	kept := []string{TagCurrentPath("app", "v2"), TagIndexLinkPath("app", "v2", c), RevisionLinkPath("app", c), BlobDataPath(c), LayerLinkPath("app", c)}
	for _, k := range append(append(append([]string{}, first...), second...), kept...) {
		writeFile(t, root, k, "x")
	}
	f, err := OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exists := func(dir string) bool {
		_, err := os.Lstat(filepath.Join(root, dir))
		return err == nil
	}
	for i, batch := range [][]string{first, second} {
		for k, err := range trash(f, "run1", batch) {
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
		}
		if got, want := exists(TagDir("app", "v3")), i == 0; got != want {
			t.Errorf("after batch %d: %s exists=%v, want %v", i+1, TagDir("app", "v3"), got, want)
		}
	}
	for dir, want := range map[string]bool{
		TagDir("app", "v1"):                false, // current, index/sha256/{a,b}: every level emptied
		TagDir("app", "v2"):                true,
		TagsDir("app"):                     true, // fixed
		keyDir(LayerLinkPath("app", a)):    false,
		keyDir(LayerLinkPath("app", c)):    true,
		LayersDir("app") + "/sha256":       true, // fixed
		keyDir(RevisionLinkPath("app", c)): true,
	} {
		if exists(dir) != want {
			t.Errorf("%s: exists=%v, want %v", dir, !want, want)
		}
	}
	for _, k := range append(first, second...) {
		if _, err := os.Lstat(filepath.Join(root, trashRoot("run1"), k)); err != nil {
			t.Errorf("%s not in the trash: %v", k, err)
		}
	}
}

// TestTrashTakesOnlyWhatTheLayoutHas plants, where the layout has a unit
// folder, a symlink to a folder outside the root that looks like the unit
// (a blob folder holding data), a regular file, and nothing: the symlink
// and the file are refused and left where they are (the symlink is moved
// neither itself nor through), the missing unit counts as moved, and a
// true unit beside them goes.
func TestTrashTakesOnlyWhatTheLayoutHas(t *testing.T) {
	root, f, keys := trashFixture(t)
	outside := t.TempDir()
	writeFile(t, outside, "looks-like-a-blob/data", "precious")
	linked := mustDigest(t, strings.Repeat("cd", 32))
	file := mustDigest(t, strings.Repeat("ef", 32))
	gone := mustDigest(t, strings.Repeat("12", 32))
	if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(keyDir(BlobDir(linked)))), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "looks-like-a-blob"), filepath.Join(root, filepath.FromSlash(BlobDir(linked)))); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, keyDir(LayerLinkPath("team/app", file)), "a file where the layout has a folder")
	got := trash(f, "run1", []string{BlobDataPath(linked), LayerLinkPath("team/app", file), BlobDataPath(gone), keys[0]})
	if err := got[BlobDataPath(linked)]; err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("a symlink where a blob folder belongs: %v, want it refused as a symlink", err)
	}
	if fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(BlobDir(linked)))); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("the symlink left the layout: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "looks-like-a-blob", "data")); err != nil || string(b) != "precious" {
		t.Errorf("the folder the symlink points at: %q, %v", b, err)
	}
	if err := got[LayerLinkPath("team/app", file)]; err == nil || !strings.Contains(err.Error(), "a file where the layout has a folder") {
		t.Errorf("a file where a layer link folder belongs: %v, want it refused", err)
	}
	if _, err := os.Lstat(filepath.Join(root, filepath.FromSlash(keyDir(LayerLinkPath("team/app", file))))); err != nil {
		t.Errorf("the file left the layout: %v", err)
	}
	if err := got[BlobDataPath(gone)]; err != nil {
		t.Errorf("a unit already gone: %v, want it counted as moved", err)
	}
	if err := got[keys[0]]; err != nil {
		t.Errorf("the true blob: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, TrashDir, "run1", filepath.FromSlash(keys[0]))); err != nil {
		t.Errorf("the true blob is not in the trash: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, TrashDir, "run1", filepath.FromSlash(keyDir(BlobDir(linked)))))
	for _, e := range entries {
		if e.Name() == linked.Hex() {
			t.Errorf("the symlink reached the trash")
		}
	}
}

// TestTrashFoldersAreMadeNotFollowed: the trash's folders are made one by
// one below the run's; one already there as a symlink to an outside folder
// (planted before the run) is refused, never moved into, and a unit then
// stays in the layout.
func TestTrashFoldersAreMadeNotFollowed(t *testing.T) {
	root, f, keys := trashFixture(t)
	outside := t.TempDir()
	// The blob's parent in the trash, made a symlink below folders the run
	// made itself.
	parent := filepath.Join(root, TrashDir, "run1", filepath.FromSlash(keyDir(keyDir(keys[0]))))
	if err := os.MkdirAll(filepath.Dir(parent), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, parent); err != nil {
		t.Fatal(err)
	}
	got := trash(f, "run1", keys)
	if err := got[keys[0]]; err == nil {
		t.Errorf("a symlink in the trash's path: the blob moved")
	}
	if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(keys[0]))); err != nil {
		t.Errorf("the blob left the layout: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("the outside folder got %d entries through the symlink", len(entries))
	}
	// The others' folders were made as folders, the units moved into them.
	for _, k := range keys[1:] {
		if err := got[k]; err != nil {
			t.Errorf("%s: %v", k, err)
		}
		fi, err := os.Lstat(filepath.Join(root, TrashDir, "run1", filepath.FromSlash(keyDir(k))))
		if err != nil || !fi.IsDir() {
			t.Errorf("%s: its trash folder: %v", k, err)
		}
	}
}
