package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

// TestGCOnGeneratedRegistry runs gc on a registry of every kind, including
// what upstream cannot collect (schema1, OCI artifact manifests, blobs
// pushed under sha512 digests), and checks the result against the
// generator's own account of what must survive: no blob or revision too
// many or too few, and no layer link lost.
func TestGCOnGeneratedRegistry(t *testing.T) {
	const seed = 7
	for _, deleteUntagged := range []bool{false, true} {
		t.Run(map[bool]string{false: "keep-untagged", true: "delete-untagged"}[deleteUntagged], func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "reg")
			g := gen.Build(gen.Options{Blobs: 3000, Seed: seed, Legacy: true, SHA512: true})
			if _, err := g.Write(context.Background(), root, 4); err != nil {
				t.Fatal(err)
			}
			args := []string{root}
			if deleteUntagged {
				args = append([]string{"--delete-untagged"}, args...)
			}
			code, _, rep := gc(t, append([]string{"--min-age", "1h"}, args...)...)
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			if rep.Blobs == 0 {
				t.Fatal("nothing deleted")
			}
			disk, err := gen.Scan(context.Background(), root)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range gen.Compare(g.Survivors(deleteUntagged), disk, true) {
				// Layer links of blobs that stay are kept, as upstream keeps
				// them: a repository may still serve that blob by digest.
				if !d.Missing && d.What == "layer" {
					continue
				}
				t.Error(d)
			}
		})
	}
}
