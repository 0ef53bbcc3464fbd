package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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
