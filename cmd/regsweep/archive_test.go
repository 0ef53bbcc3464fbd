package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

func TestArchiveThenRestoreReturnsTheFirstState(t *testing.T) {
	forBackends(t, func(t *testing.T, b backend) {
		f := newFixtureOn(t, b)
		// A policy deletes a tag, so tag files are archived too.
		f.reg.Tag("team/app", "old", f.untagged[0])
		policy := filepath.Join(t.TempDir(), "p.yaml")
		if err := os.WriteFile(policy, []byte("rules:\n  - repositories: [team/app]\n    keep: {tags: [latest]}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := f.reg.State()
		archive := filepath.Join(t.TempDir(), "undo.tar.zst")
		code, out, rep := gc(t, append([]string{"--delete-untagged", "--policy", policy, "--archive", archive}, f.where...)...)
		if code != 0 || rep.Blobs == 0 || !strings.Contains(out, "archived ") {
			t.Fatalf("gc --archive: exit %d, %d blobs\n%s", code, rep.Blobs, out)
		}
		if after := f.reg.State(); len(after.Blobs) == len(before.Blobs) {
			t.Fatal("gc deleted nothing")
		}
		code, out = regsweep(t, append([]string{"restore", "-q", archive}, f.where[:len(f.where)-1]...)...)
		if code != 0 || !strings.Contains(out, "restored ") {
			t.Fatalf("restore: exit %d\n%s", code, out)
		}
		restored := f.reg.State()
		if d := cmp.Diff(before, restored); d != "" {
			t.Errorf("restore did not return the first state (-before +restored):\n%s", d)
		}
		f.reg.Reopen()
		if err := f.reg.ServesAll(context.Background()); err != nil {
			t.Errorf("after restore: %v", err)
		}
		if rep.Tags != 1 {
			t.Errorf("%d tags deleted, want 1", rep.Tags)
		}
		if err := f.reg.Serves(context.Background(), "team/app", "old"); err != nil {
			t.Errorf("a tag the run deleted does not serve after restore: %v", err)
		}
	})
}

func TestRestoreIntoAnotherLocationChecksDigests(t *testing.T) {
	f := newFixture(t)
	archive := filepath.Join(t.TempDir(), "undo.tar.zst")
	if code, _, _ := gc(t, "--delete-untagged", "--archive", archive, f.reg.Root); code != 0 {
		t.Fatal("gc failed")
	}
	elsewhere := t.TempDir()
	if code, _ := regsweep(t, "restore", "-q", archive, elsewhere); code != 0 {
		t.Fatal("restore into an empty folder failed")
	}
	st := storagetest.Snapshot(t, elsewhere)
	for _, img := range f.untagged {
		if !st.Blobs[img.Digest] || !st.Revisions[img.Repo+"@"+img.Digest.String()] {
			t.Errorf("%s@%s not restored elsewhere", img.Repo, img.Digest)
		}
	}
}

// evilArchive is an undo archive whose index lists every entry it holds,
// made by hand as an attacker would.
func evilArchive(t *testing.T, entries map[string]string) string {
	t.Helper()
	var keys []string
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	idx, _ := json.Marshal(storage.ArchiveIndex{Version: storage.ArchiveVersion, Location: "/nowhere", Place: &storage.Place{Kind: storage.KindFilesystem, Dir: "/nowhere"}, Keys: keys})
	for _, e := range append([][2]string{{"regsweep-archive.json", string(idx)}}, func() (out [][2]string) {
		for _, k := range keys {
			out = append(out, [2]string{k, entries[k]})
		}
		return out
	}()...) {
		if err := tw.WriteHeader(&tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e[1]))
	}
	tw.Close()
	zw.Close()
	name := filepath.Join(t.TempDir(), "evil.tar.zst")
	if err := os.WriteFile(name, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestRestoreRefusesAnArchiveThatEscapesItsKeys is the attack of issue 13:
// an entry under an existing upload that climbs out of it onto a live
// blob's data, or to the root. The archive is refused whole, nothing is
// written, and every tag still serves.
func TestRestoreRefusesAnArchiveThatEscapesItsKeys(t *testing.T) {
	f := newFixture(t)
	id := f.reg.StartUpload("team/app", 100)
	blob := storage.BlobDataPath(sd(t, f.sharedWithKept))
	up := storage.UploadDir("team/app", id)
	orphan := storage.BlobDataPath(sd(t, f.orphan))
	for name, entries := range map[string]map[string]string{
		"onto a live blob":         {up + "/../../../../../" + strings.TrimPrefix(blob, storage.V2+"/"): "evil"},
		"onto the root":            {up + "/../../../../../../../../regsweep.lock": "evil"},
		"id ..":                    {storage.RepoDir("team/app") + "/_uploads/../_layers/sha256/" + f.sharedWithKept.Encoded() + "/link": "evil"},
		"good then bad":            {orphan: "x", up + "/./data": "evil"},
		"live blob, other content": {blob: "evil"},
		"tag pointed elsewhere":    {storage.TagCurrentPath("team/app", "latest"): f.orphan.String()},
	} {
		t.Run(name, func(t *testing.T) {
			// The lock, taken and released at the root, moves the root's time.
			state := func() map[string]string {
				m := treeState(t, f.reg.Root)
				delete(m, f.reg.Root)
				return m
			}
			before := state()
			code, out := regsweep(t, "restore", "-q", evilArchive(t, entries), f.reg.Root)
			if code == 0 || !strings.Contains(out, "nothing restored") {
				t.Fatalf("restore of a hostile archive: exit %d\n%s", code, out)
			}
			if d := cmp.Diff(before, state()); d != "" {
				t.Errorf("a refused restore changed the registry:\n%s", d)
			}
		})
	}
	f.assertServes(t)
}

// TestRestoreAsRootKeepsTheRegistrysOwner restores, as root, into a
// registry another user owns: what it writes belongs to that user, who can
// then tag over it and delete it.
func TestRestoreAsRootKeepsTheRegistrysOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	f := newFixture(t)
	const uid, gid = 4321, 4321
	chownTree := func() {
		filepath.WalkDir(f.reg.Root, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				err = os.Lchown(p, uid, gid)
			}
			if err != nil {
				t.Fatal(err)
			}
			return nil
		})
	}
	chownTree()
	archive := filepath.Join(t.TempDir(), "undo.tar.zst")
	if code, _, _ := gc(t, "--delete-untagged", "--archive", archive, f.reg.Root); code != 0 {
		t.Fatal("gc failed")
	}
	if code, out := regsweep(t, "restore", "-q", archive); code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	var wrong []string
	filepath.WalkDir(f.reg.Root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
			wrong = append(wrong, p)
		}
		return nil
	})
	if len(wrong) > 0 {
		t.Errorf("%d files and folders not owned by the registry's user, e.g. %s", len(wrong), wrong[0])
	}
	f.assertServes(t)
}
