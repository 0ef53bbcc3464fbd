package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// layoutFiles lists the files under root/docker, sorted, as find prints
// them from root.
func layoutFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(root, "docker"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// noTrash fails unless root holds no trash folder.
func noTrash(t *testing.T, root, when string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(root, storage.TrashDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: %s is still there (%v)", when, storage.TrashDir, err)
	}
}

// regsweepT runs any command in-process, with runT's stores.
func regsweepT(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runT(context.Background(), args, &out, &errOut)
	t.Logf("regsweep %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String() + errOut.String()
}

// TestGCWindowClosesBeforeTheTrashIsFreed runs gc on a registry written by
// distribution with an --after-window command that records what it sees:
// when it runs, the layout is already what the run leaves and everything
// the run deleted is in the trash, not yet freed. The kept trash then
// restores the registry exactly as it was, every tag served; a trash kept
// again is freed by trash purge.
func TestGCWindowClosesBeforeTheTrashIsFreed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	root := f.reg.Root
	before := storagetest.Snapshot(t, root)
	seen := t.TempDir()
	hook := fmt.Sprintf(`cd %q && find docker -type f | LC_ALL=C sort > %q/layout && find %s -type f | wc -l > %q/trashed && echo "$REGSWEEP_RUN_ID" > %q/run`,
		root, seen, storage.TrashDir, seen, seen)
	start := time.Now()
	code, out, rep := gc(t, "--delete-untagged", "--keep-trash", "--after-window", hook, root)
	wall := time.Since(start).Seconds()
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(seen, name))
		if err != nil {
			t.Fatalf("the --after-window command did not run: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	after := storagetest.Snapshot(t, root)
	if got, want := read("layout"), strings.Join(layoutFiles(t, root), "\n"); got != want {
		t.Errorf("the layout when --after-window ran is not what the run left:\n%s\nwant\n%s", got, want)
	}
	trashed, _ := strconv.Atoi(read("trashed"))
	if rep.Trashed == 0 || trashed != rep.Trashed {
		t.Errorf("--after-window saw %d files in the trash, the report says %d keys trashed: want the same, not 0", trashed, rep.Trashed)
	}
	if rep.Trashed != rep.Tags+rep.TagIndexEntries+rep.Manifests+rep.LayerLinks+rep.Blobs {
		t.Errorf("%d keys trashed, %d deleted", rep.Trashed, rep.Tags+rep.TagIndexEntries+rep.Manifests+rep.LayerLinks+rep.Blobs)
	}
	run := read("run")
	if rep.TrashKept != run || rep.AfterWindow == nil || rep.AfterWindow.Error != "" {
		t.Errorf("report: trash kept %q, after window %+v; want %q, a command that exited 0", rep.TrashKept, rep.AfterWindow, run)
	}
	if rep.WindowSeconds <= 0 || rep.WindowSeconds+rep.AfterWindow.Seconds > wall {
		t.Errorf("window_seconds %v, after window %v s, the whole run %v s", rep.WindowSeconds, rep.AfterWindow.Seconds, wall)
	}
	if !strings.Contains(out, "the registry could leave read-only mode") || !strings.Contains(out, "trash kept: "+run) {
		t.Errorf("the output does not say the window closed and the trash was kept:\n%s", out)
	}
	if code, out := regsweepT(t, "trash", "list", root); code != 0 || strings.TrimSpace(out) != run {
		t.Errorf("trash list: exit %d, %q; want %q", code, out, run)
	}

	if code, _ := regsweepT(t, "trash", "restore", "--registry-stopped", run, root); code != 0 {
		t.Fatalf("trash restore: exit %d", code)
	}
	if diff := cmp.Diff(before, storagetest.Snapshot(t, root)); diff != "" {
		t.Errorf("the restored registry differs from the one before gc (-before +restored):\n%s", diff)
	}
	for _, rt := range f.keptTags {
		i := strings.LastIndexByte(rt, ':')
		if err := f.reg.Serves(context.Background(), rt[:i], rt[i+1:]); err != nil {
			t.Errorf("after restore: %v", err)
		}
	}
	noTrash(t, root, "after restore")

	code, _, rep = gc(t, "--delete-untagged", "--keep-trash", root)
	if code != 0 || rep.TrashKept == "" {
		t.Fatalf("second gc: exit %d, trash kept %q", code, rep.TrashKept)
	}
	if diff := cmp.Diff(after, storagetest.Snapshot(t, root)); diff != "" {
		t.Errorf("gc after restore does not do what the first did (-first +second):\n%s", diff)
	}
	if code, out := regsweepT(t, "trash", "purge", root); code != 0 || !strings.Contains(out, rep.TrashKept) {
		t.Errorf("trash purge: exit %d, %q", code, out)
	}
	noTrash(t, root, "after purge")
}

// TestGCTrashOnAnotherFilesystem: the trash refuses a key (as a rename
// across filesystems does, EXDEV): that key and every later one are deleted
// in place, the run says so and ends where a clean run ends.
func TestGCTrashOnAnotherFilesystem(t *testing.T) {
	t.Parallel()
	fc := newFaultCase(t, "--jobs", "1")
	if fc.cleanRep.Trashed != fc.deletes {
		t.Fatalf("clean run: %d keys trashed, %d deletes counted", fc.cleanRep.Trashed, fc.deletes)
	}
	root := fc.copy(t)
	fy := storagetest.NewFaulty(nil, storagetest.Fault{Op: storagetest.OpDelete, N: 3, Err: fmt.Errorf("rename: %w (EXDEV)", storage.ErrNoTrash)})
	fy.Counted = storagetest.UnderV2
	withFaulty(t, root, fy)
	code, out, rep := gc(t, "--delete-untagged", "--jobs", "1", root)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if rep.TrashFallback == "" || !strings.Contains(out, "deleted in place, not moved into the trash") {
		t.Errorf("the run does not say it deleted in place: trash_fallback %q", rep.TrashFallback)
	}
	if rep.Trashed == 0 || rep.Trashed >= fc.deletes {
		t.Errorf("%d keys trashed of %d: want those before the refusal's batch was done, then none", rep.Trashed, fc.deletes)
	}
	if got := fy.Count(storagetest.OpDelete); got != fc.deletes+1 {
		t.Errorf("%d deletes and moves counted, want %d (the refused key twice)", got, fc.deletes+1)
	}
	if diff := cmp.Diff(fc.clean, storagetest.Snapshot(t, root)); diff != "" {
		t.Errorf("the run does not reach the clean run's state (-clean +got):\n%s", diff)
	}
	noTrash(t, root, "after the run")
}

// TestAfterWindowFailureAndTimeout: a failing --after-window makes the run
// exit 1 saying the registry may still be read-only, and the trash is
// freed all the same; one that runs too long is stopped, with the
// processes it started.
func TestAfterWindowFailureAndTimeout(t *testing.T) {
	t.Parallel()
	template := newFixture(t).reg.Root
	for _, c := range []struct {
		name, hook string
		extra      []string
		says       string
	}{
		{"exit-3", "exit 3", nil, "exit status 3"},
		{"timeout", "sleep 60 & sleep 60; wait", []string{"--after-window-timeout", "200ms"}, "--after-window-timeout 200ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "registry")
			storagetest.CopyTree(t, template, root)
			start := time.Now()
			code, out, rep := gc(t, append(append([]string{"--delete-untagged", "--after-window", c.hook}, c.extra...), root)...)
			if code != exitError || !strings.Contains(out, "the registry may still be read-only") {
				t.Errorf("exit %d: want %d and a message that the registry may still be read-only", code, exitError)
			}
			if rep.AfterWindow == nil || !strings.Contains(rep.AfterWindow.Error, c.says) {
				t.Errorf("report after_window %+v: want an error saying %q", rep.AfterWindow, c.says)
			}
			if rep.Trashed == 0 {
				t.Error("nothing trashed")
			}
			noTrash(t, root, "after the run")
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("the run took %s: the command was not stopped", d)
			}
		})
	}
}
