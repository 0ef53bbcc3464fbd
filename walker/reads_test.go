package walker_test

import (
	"context"
	"testing"
	"time"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/walker"
)

// TestWalkReadsWhatTheDecisionNeeds walks a generated registry through a
// store that records every call: the walk stats no blob's data and opens no
// layer link or tag history entry, and only stats revision links in sha256
// folders; the ages a plan then wants are the blobs it would delete, and
// those alone are stat'ed. With ReadLinks every revision link is read and
// every blob stat'ed, and the plan is the same.
func TestWalkReadsWhatTheDecisionNeeds(t *testing.T) {
	root := t.TempDir()
	storagetest.Generate(t, root, 1500)
	fs, err := storage.OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ctx := context.Background()
	// An hour from now, every generated file is old enough.
	opts := mark.Options{DeleteUntagged: true, StartedAt: time.Now().Add(time.Hour), Compact: mark.CompactAll}
	count := func(calls []storagetest.Call) map[storage.KeyKind]map[storagetest.Op]int {
		n := map[storage.KeyKind]map[storagetest.Op]int{}
		for _, c := range calls {
			k, err := storage.ParseKey(c.Key)
			if err != nil {
				continue // a folder
			}
			if n[k.Kind] == nil {
				n[k.Kind] = map[storagetest.Op]int{}
			}
			n[k.Kind][c.Op]++
		}
		return n
	}

	f := storagetest.NewFaulty(fs)
	f.Record = true
	inv, err := walker.Walk(ctx, f, walker.Options{Jobs: 4, StartedAt: time.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Revision folders: held, or without link (deleted through the API).
	folders := func(inv *walker.Inventory) int {
		n := inv.Stats.Revisions
		for _, r := range inv.Repos {
			n += len(r.Deleted)
		}
		return n
	}
	walked := count(f.Calls())
	if n := walked[storage.KeyBlobData][storagetest.OpStat]; n != 0 {
		t.Errorf("the walk stat'ed %d blobs' data, want none", n)
	}
	for _, k := range []storage.KeyKind{storage.KeyLayerLink, storage.KeyTagIndex} {
		if len(walked[k]) != 0 {
			t.Errorf("the walk opened %v links of kind %d, want none", walked[k], k)
		}
	}
	if r, s := walked[storage.KeyRevisionLink][storagetest.OpReadFile], walked[storage.KeyRevisionLink][storagetest.OpStat]; r != 0 || s != folders(inv) {
		t.Errorf("revision links: %d read, %d stat'ed; want 0 read, %d stat'ed", r, s, folders(inv))
	}

	before := len(f.Calls())
	plan, err := mark.ComputeAged(inv, opts, walker.Ages(ctx, f, inv, 4))
	if err != nil {
		t.Fatal(err)
	}
	aged := count(f.Calls()[before:])
	if len(plan.Blobs) == 0 || aged[storage.KeyBlobData][storagetest.OpStat] != len(plan.Blobs) {
		t.Errorf("stat'ed %d blobs after marking, want the plan's %d (and some)", aged[storage.KeyBlobData][storagetest.OpStat], len(plan.Blobs))
	}
	for _, b := range plan.Blobs {
		if blob, _ := inv.Digests.Blob(b.ID); blob.Size == 0 || blob.ModTime.IsZero() {
			t.Fatalf("blob %s to delete has no size or age: %+v", inv.Digests.Digest(b.ID), blob)
		}
	}

	g := storagetest.NewFaulty(fs)
	g.Record = true
	full, err := walker.Walk(ctx, g, walker.Options{Jobs: 4, ReadLinks: true, StartedAt: time.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	read := count(g.Calls())
	if r := read[storage.KeyRevisionLink][storagetest.OpReadFile]; r != folders(full) {
		t.Errorf("ReadLinks read %d revision links, want %d", r, folders(full))
	}
	if !full.Stats.BlobSizes || full.Stats.BlobBytes == 0 {
		t.Errorf("ReadLinks walk: blob sizes %v, %d bytes", full.Stats.BlobSizes, full.Stats.BlobBytes)
	}
	fullPlan := mark.Compute(full, opts)
	if len(fullPlan.BlobAgesWanted()) != 0 || len(fullPlan.Blobs) != len(plan.Blobs) || len(fullPlan.Revisions) != len(plan.Revisions) || len(fullPlan.LayerLinks) != len(plan.LayerLinks) {
		t.Errorf("plans differ: with ReadLinks %d blobs, %d revisions, %d layer links (%d ages wanted); without %d, %d, %d",
			len(fullPlan.Blobs), len(fullPlan.Revisions), len(fullPlan.LayerLinks), len(fullPlan.BlobAgesWanted()), len(plan.Blobs), len(plan.Revisions), len(plan.LayerLinks))
	}
}
