package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/regsweep/regsweep/storage/storagetest"
)

var update = flag.Bool("update", false, "rewrite testdata/sample from the fixture")

const sampleDir = "../../testdata/sample"

// TestSampleRegistry keeps the README's sample registry honest: it is the
// gc fixture, written by distribution's storage code (go test ./cmd/regsweep
// -run TestSampleRegistry -update rewrites it), and gc on a copy of it
// deletes what the README says.
func TestSampleRegistry(t *testing.T) {
	if *update {
		f := newFixture(t)
		if err := os.RemoveAll(sampleDir); err != nil {
			t.Fatal(err)
		}
		storagetest.CopyTree(t, f.reg.Root, sampleDir)
	}
	root := filepath.Join(t.TempDir(), "sample")
	storagetest.CopyTree(t, sampleDir, root)

	code, _, dry := gc(t, "--dry-run", "--delete-untagged", root)
	if code != 0 {
		t.Fatalf("dry run: exit %d", code)
	}
	code, _, real := gc(t, "--delete-untagged", root)
	if code != 0 {
		t.Fatalf("gc: exit %d", code)
	}
	if dry.Counts != real.Counts {
		t.Errorf("dry run %+v, real run %+v", dry.Counts, real.Counts)
	}
	if real.Manifests != 5 || real.Blobs != 13 || real.LayerLinks != 9 || real.Tags != 0 {
		t.Errorf("sample: deleted %+v, want 5 manifests, 9 layer links, 13 blobs", real.Counts)
	}
	reg := storagetest.New(t, root)
	if err := reg.ServesAll(context.Background()); err != nil {
		t.Error(err)
	}
	if n := len(storagetest.Snapshot(t, root).Tags); n != 6 {
		t.Errorf("%d tags after gc, want 6", n)
	}
}
