//go:build unix

package main

import (
	"os"
	"strings"
	"testing"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// TestBadInputSpecialFile puts a FIFO or a socket where the layout has a
// file that a run reads or stats: a tag's current link, a revision link, a
// manifest's data, an orphan blob's data, an upload's startedat. Opening a
// FIFO to read the usual way waits for a writer forever (a FIFO at a tag's
// current link hung gc); each must instead be a problem the output names,
// left in place with whatever it might keep, while the run collects the
// rest and exits 0. A manifest that cannot be read is an incomplete graph,
// as any unreadable manifest is: no blob goes, exit 3.
func TestBadInputSpecialFile(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{storagetest.FIFO, storagetest.Socket} {
		for _, c := range []struct {
			name string
			code int
			// place puts the special file and returns its key and the
			// repository whose collection it may hold back.
			place func(t *testing.T, f *fixture) (key, skip string)
			check func(t *testing.T, f *fixture, before storagetest.State)
		}{
			{"tag-current-link", exitOK, func(t *testing.T, f *fixture) (string, string) {
				return storage.TagCurrentPath("team/app", "latest"), "team/app"
			}, func(t *testing.T, f *fixture, before storagetest.State) {
				for _, img := range f.untagged {
					if img.Repo == "team/app" {
						assertKept(t, f, img)
					}
				}
			}},
			{"revision-link", exitOK, func(t *testing.T, f *fixture) (string, string) {
				img := f.untagged[0]
				return storage.RevisionLinkPath(img.Repo, sd(t, img.Digest)), img.Repo
			}, func(t *testing.T, f *fixture, before storagetest.State) { assertKept(t, f, f.untagged[0]) }},
			{"manifest-data", exitIncomplete, func(t *testing.T, f *fixture) (string, string) {
				img := f.untagged[0]
				return storage.BlobDataPath(sd(t, img.Digest)), img.Repo
			}, func(t *testing.T, f *fixture, before storagetest.State) {
				assertNoBlobSwept(t, f, before)
			}},
			{"orphan-blob-data", exitOK, func(t *testing.T, f *fixture) (string, string) {
				return storage.BlobDataPath(sd(t, f.orphan)), ""
			}, nil},
			{"upload-startedat", exitOK, func(t *testing.T, f *fixture) (string, string) {
				id := f.reg.StartUpload("mirror", 10)
				return storage.UploadStartedAtPath("mirror", id), ""
			}, func(t *testing.T, f *fixture, before storagetest.State) {
				if len(f.reg.State().Uploads) != 1 {
					t.Error("the upload whose startedat cannot be read was removed")
				}
			}},
		} {
			t.Run(strings.ReplaceAll(kind[2:], " ", "-")+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t)
				key, skip := c.place(t, f)
				storagetest.MakeSpecial(t, f.file(key), kind)
				before := f.reg.State()
				code, out, _ := gc(t, append([]string{"--delete-untagged", "--upload-max-age", "0s"}, f.where...)...)
				if code != c.code {
					t.Errorf("exit %d, want %d", code, c.code)
				}
				if !strings.Contains(out, key) || !strings.Contains(out, kind+": not a regular file") {
					t.Errorf("the output does not name %s as %s:\n%s", key, kind, out)
				}
				if fi, err := os.Lstat(f.file(key)); err != nil || fi.Mode().IsRegular() {
					t.Errorf("%s: %v, %v: want it left in place", key, fi, err)
				}
				if c.name == "orphan-blob-data" {
					// The orphan is the special file itself: it stays.
					f.orphan = ""
				}
				if c.code == exitOK {
					assertCollectedBut(t, f, skip)
				}
				if c.check != nil {
					c.check(t, f, before)
				}
			})
		}
	}
}

// assertCollectedBut is assertCollected, where f.orphan may be "" (the
// orphan is what the test damaged).
func assertCollectedBut(t *testing.T, f *fixture, skip string) {
	t.Helper()
	if f.orphan != "" {
		assertCollected(t, f, skip)
		return
	}
	after := f.reg.State()
	for _, img := range f.untagged {
		if img.Repo != skip && after.Revisions[img.Repo+"@"+img.Digest.String()] {
			t.Errorf("untagged %s@%s survived: one bad input stopped the whole run", img.Repo, img.Digest)
		}
	}
}

// TestLockIsASpecialFile: a FIFO where the lock belongs is a lock nobody
// can read, refused at once and named, never waited on.
func TestLockIsASpecialFile(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	lock := f.file(storage.LockKey)
	storagetest.MakeSpecial(t, lock, storagetest.FIFO)
	code, out, _ := gc(t, f.where...)
	if code != exitError || !strings.Contains(out, "cannot be read") || !strings.Contains(out, "a FIFO") {
		t.Errorf("exit %d, output %q: want %d, the lock cannot be read, a FIFO", code, out, exitError)
	}
	if fi, err := os.Lstat(lock); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO at the lock: %v, %v", fi, err)
	}
}
