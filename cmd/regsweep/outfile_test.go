package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// TestOutputsAreCheckedBeforeTheWalk: every file a run would write is
// checked before the storage is read, and a bad one refuses the run with
// nothing deleted: a missing folder, a folder, a symlink into the layout
// (a blob's data), a path inside the layout, the lock, two outputs that are
// one file, a previous Prometheus file that does not parse.
func TestOutputsAreCheckedBeforeTheWalk(t *testing.T) {
	f := newFixture(t)
	blob := f.file(storage.BlobDataPath(sd(t, f.sharedWithKept)))
	blobBefore, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	link := filepath.Join(dir, "report.json")
	symlink(t, blob, link)
	linkedDir := filepath.Join(dir, "layout")
	symlink(t, filepath.Join(f.reg.Root, "docker", "registry"), linkedDir)
	garbage := filepath.Join(dir, "old.prom")
	if err := os.WriteFile(garbage, []byte("not { prometheus\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := f.reg.State()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gc", "--report", filepath.Join(dir, "missing", "r.json")}, "its folder"},
		{[]string{"gc", "--report", dir}, "is a folder"},
		{[]string{"gc", "--report", link}, "inside the registry's layout"},
		{[]string{"gc", "--report", link, "--report-format", "prometheus"}, "inside the registry's layout"},
		{[]string{"gc", "--report", filepath.Join(linkedDir, "r.json")}, "inside the registry's layout"},
		{[]string{"gc", "--archive", filepath.Join(f.reg.Root, "docker", "undo.tar.zst")}, "inside the registry's layout"},
		{[]string{"gc", "--report", filepath.Join(f.reg.Root, storage.LockKey)}, "lock"},
		{[]string{"gc", "--report", filepath.Join(dir, "a.json"), "--archive", filepath.Join(dir, "a.json")}, "the same file"},
		{[]string{"gc", "--report", garbage}, "last success"},
		{[]string{"plan", "-o", link}, "inside the registry's layout"},
		{[]string{"gc", "--dry-run", "--report", link}, "inside the registry's layout"},
	} {
		code, out := regsweep(t, append(append(tc.args, "--delete-untagged", "--min-age", "0"), f.reg.Root)...)
		if code != exitUsage || !strings.Contains(out, tc.want) || strings.Contains(out, "walk") {
			t.Errorf("%v: exit %d, want %d and %q before the walk\n%s", tc.args, code, exitUsage, tc.want, out)
		}
	}
	if d := cmp.Diff(before, f.reg.State()); d != "" {
		t.Errorf("a refused run changed the registry:\n%s", d)
	}
	if b, _ := os.ReadFile(blob); string(b) != string(blobBefore) {
		t.Error("the blob behind the symlinked report changed")
	}
	if target, err := os.Readlink(link); err != nil || target != blob {
		t.Errorf("the symlink changed: %s, %v", target, err)
	}
	f.assertServes(t)
}

// TestWriteFileAtomic: a write that fails leaves the previous file whole and
// no temporary file; one that succeeds replaces it (the file a symlink
// names, the symlink staying), keeping its mode.
func TestWriteFileAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := filepath.Join(dir, "undo.tar.zst")
	if err := os.WriteFile(name, []byte("the earlier archive"), 0o640); err != nil {
		t.Fatal(err)
	}
	full := errors.New("no space left on device")
	err := writeFileAtomic(name, 0o600, func(w io.Writer) error {
		fmt.Fprint(w, "half of it")
		return full
	})
	if !errors.Is(err, full) || !strings.Contains(err.Error(), "previous file is left as it was") {
		t.Fatalf("failed write: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if b, _ := os.ReadFile(name); string(b) != "the earlier archive" || len(entries) != 1 {
		t.Fatalf("after a failed write: %q, %d files", b, len(entries))
	}
	link := filepath.Join(dir, "latest")
	symlink(t, name, link)
	if err := writeFileAtomic(link, 0o600, func(w io.Writer) error { _, err := fmt.Fprint(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(link)
	if b, _ := os.ReadFile(name); string(b) != "new" || err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("write through a symlink: %q, %v, %v", b, fi.Mode(), err)
	}
	if fi, _ := os.Stat(name); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the previous 0640", fi.Mode())
	}
}

// TestPrometheusKeepsTheLastSuccess: a dry run keeps the previous file's
// time of the last complete real run, and a real run sets it.
func TestPrometheusKeepsTheLastSuccess(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sample")
	storagetest.CopyTree(t, sampleDir, root)
	prom := filepath.Join(t.TempDir(), "regsweep.prom")
	last := func() string {
		b, err := os.ReadFile(prom)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "regsweep_last_success_timestamp_seconds "); ok {
				return v
			}
		}
		return ""
	}
	if code, _ := regsweep(t, "gc", "-q", "--dry-run", "--report", prom, root); code != 0 || last() != "" {
		t.Fatalf("first dry run: exit %d, last success %q", code, last())
	}
	if err := os.WriteFile(prom, []byte("# TYPE regsweep_last_success_timestamp_seconds gauge\nregsweep_last_success_timestamp_seconds 1.7e+09\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := regsweep(t, "gc", "-q", "--dry-run", "--report", prom, root); code != 0 || last() != "1.7e+09" {
		t.Fatalf("dry run after a success: exit %d, last success %q", code, last())
	}
	if code, _ := regsweep(t, "gc", "-q", "--min-age", "0", "--report", prom, root); code != 0 || last() == "1.7e+09" || last() == "" {
		t.Fatalf("real run: exit %d, last success %q", code, last())
	}
}
