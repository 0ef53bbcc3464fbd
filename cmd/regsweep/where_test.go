package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/regsweep/regsweep/storage/storagetest"
)

// TestPlanAndArchiveActWhereTheyWereMade: a plan and an archive made on
// ./reg record the absolute folder. From another working directory that has
// a ./reg of its own, apply and restore without LOCATION act on the first
// one, and apply naming the other ./reg refuses.
func TestPlanAndArchiveActWhereTheyWereMade(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	storagetest.CopyTree(t, sampleDir, filepath.Join(first, "reg"))
	storagetest.CopyTree(t, sampleDir, filepath.Join(second, "reg"))
	untouched := storagetest.Snapshot(t, filepath.Join(second, "reg"))
	firstBefore := storagetest.Snapshot(t, filepath.Join(first, "reg"))
	plan := filepath.Join(t.TempDir(), "gc.plan")
	undo := filepath.Join(t.TempDir(), "undo.tar.zst")

	t.Chdir(first)
	if code, _ := regsweep(t, "plan", "-q", "-o", plan, "--delete-untagged", "--min-age", "0", "reg"); code != 0 {
		t.Fatal("plan failed")
	}
	if code, out := regsweep(t, "plan", "show", plan); !strings.Contains(out, filepath.Join(first, "reg")) {
		t.Errorf("plan show does not name the absolute folder: exit %d\n%s", code, out)
	}

	t.Chdir(second)
	if code, out := regsweep(t, "apply", "-q", plan, "reg"); code != exitUsage || !strings.Contains(out, "is for "+filepath.Join(first, "reg")) {
		t.Fatalf("apply to another ./reg: exit %d\n%s", code, out)
	}
	if code, _ := regsweep(t, "apply", "-q", "--archive", undo, plan); code != 0 {
		t.Fatal("apply without LOCATION failed")
	}
	if d := cmp.Diff(untouched, storagetest.Snapshot(t, filepath.Join(second, "reg"))); d != "" {
		t.Fatalf("apply from another folder changed its ./reg:\n%s", d)
	}
	if cmp.Equal(firstBefore, storagetest.Snapshot(t, filepath.Join(first, "reg"))) {
		t.Fatal("apply did not act on the plan's folder")
	}
	if code, _ := regsweep(t, "restore", "-q", undo); code != 0 {
		t.Fatal("restore without LOCATION failed")
	}
	if d := cmp.Diff(firstBefore, storagetest.Snapshot(t, filepath.Join(first, "reg"))); d != "" {
		t.Errorf("restore did not put the plan's folder back:\n%s", d)
	}
	if d := cmp.Diff(untouched, storagetest.Snapshot(t, filepath.Join(second, "reg"))); d != "" {
		t.Errorf("restore from another folder changed its ./reg:\n%s", d)
	}
	// Restore into another location is a choice made on the command line.
	elsewhere := t.TempDir()
	if code, _ := regsweep(t, "restore", "-q", undo, elsewhere); code != 0 {
		t.Error("restore into a named folder failed")
	}
}

// rewriteFile rewrites a zstd-compressed JSON file (a plan) through edit.
func rewriteFile(t *testing.T, name string, edit func(map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := zstd.NewReader(bytes.NewReader(raw))
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	b = editJSONBytes(t, b, edit)
	var out bytes.Buffer
	zw, _ := zstd.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	if err := os.WriteFile(name, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestApplyRefusesAPlanThatDoesNotSayWhere(t *testing.T) {
	root := filepath.Join(t.TempDir(), "reg")
	storagetest.CopyTree(t, sampleDir, root)
	before := storagetest.Snapshot(t, root)
	plan := filepath.Join(t.TempDir(), "gc.plan")
	if code, _ := regsweep(t, "plan", "-q", "-o", plan, "--delete-untagged", "--min-age", "0", root); code != 0 {
		t.Fatal("plan failed")
	}
	for name, edit := range map[string]func(map[string]any){
		"format 1":        func(m map[string]any) { m["version"] = 1; delete(m, "place"); m["location"] = "reg" },
		"format 2":        func(m map[string]any) { m["version"] = 2 },
		"relative folder": func(m map[string]any) { m["place"] = map[string]any{"kind": "filesystem", "dir": "reg"} },
		"unclean folder":  func(m map[string]any) { m["place"].(map[string]any)["dir"] = root + "/../reg" },
		"no place":        func(m map[string]any) { delete(m, "place") },
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "gc.plan")
			storagetest.CopyTree(t, filepath.Dir(plan), filepath.Dir(p))
			rewriteFile(t, p, edit)
			if code, out := regsweep(t, "apply", "-q", p, root); code == 0 || !strings.Contains(out, "read plan") {
				t.Errorf("apply: exit %d\n%s", code, out)
			}
		})
	}
	if d := cmp.Diff(before, storagetest.Snapshot(t, root)); d != "" {
		t.Errorf("a refused plan deleted:\n%s", d)
	}
}

// TestS3PlanAndArchiveKeepTheirEndpoint: a plan and an archive made on S3
// through an endpoint record it; apply and restore without --s3-* flags go
// there (the test server), never to AWS.
func TestS3PlanAndArchiveKeepTheirEndpoint(t *testing.T) {
	f := newFixtureOn(t, onS3)
	before := f.reg.State()
	plan := filepath.Join(t.TempDir(), "gc.plan")
	undo := filepath.Join(t.TempDir(), "undo.tar.zst")
	if code, _ := regsweep(t, append([]string{"plan", "-q", "-o", plan, "--delete-untagged", "--min-age", "0"}, f.where...)...); code != 0 {
		t.Fatal("plan failed")
	}
	// AWS would need credentials and a network: neither is here.
	t.Setenv("AWS_REGION", "eu-north-1")
	bucketURL := f.where[len(f.where)-1]
	if code, out := regsweep(t, "apply", "-q", plan, bucketURL, "--s3-endpoint", "http://127.0.0.1:1"); code != exitUsage || !strings.Contains(out, "is for") {
		t.Errorf("apply through another endpoint: exit %d\n%s", code, out)
	}
	if code, out := regsweep(t, "apply", "-q", "--archive", undo, plan, bucketURL); code != 0 {
		t.Fatalf("apply naming the bucket without --s3-* flags: exit %d\n%s", code, out)
	}
	if after := f.reg.State(); len(after.Blobs) == len(before.Blobs) {
		t.Fatal("apply deleted nothing")
	}
	if code, out := regsweep(t, "restore", "-q", undo); code != 0 {
		t.Fatalf("restore without --s3-* flags: exit %d\n%s", code, out)
	}
	if d := cmp.Diff(before, f.reg.State()); d != "" {
		t.Errorf("restore did not return the first state:\n%s", d)
	}
}

// TestRestoreAndApplyRefuseAFIFO: a plan or an archive that is a FIFO is
// refused at once, never waited on.
func TestRestoreAndApplyRefuseAFIFO(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "reg")
	storagetest.CopyTree(t, sampleDir, root)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"restore", "apply"} {
		if code, out := regsweep(t, cmd, fifo, root); code == 0 || !strings.Contains(out, "not a regular file") {
			t.Errorf("%s of a FIFO: exit %d\n%s", cmd, code, out)
		}
	}
}
