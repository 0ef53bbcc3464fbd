package mark_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/walker"
)

// BenchmarkCompute plans --delete-untagged on the inventory of a generated
// registry (see storagetest.Generated for its size), reporting per stored
// object the time and the heap the plan keeps beside the inventory.
func BenchmarkCompute(b *testing.B) {
	store, err := storage.OpenFS(storagetest.Generated(b, 20000))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	inv, err := walker.Walk(context.Background(), store, walker.Options{Jobs: 8}, nil)
	if err != nil {
		b.Fatal(err)
	}
	n := float64(inv.Objects())
	opts := mark.Options{DeleteUntagged: true, StartedAt: time.Now(), Compact: mark.CompactAll}
	var plan *mark.Plan
	var retained uint64
	for b.Loop() {
		plan = nil
		plan, retained = storagetest.RetainedHeap(func() *mark.Plan { return mark.Compute(inv, opts) })
	}
	if plan.Err != nil || len(plan.Blobs) == 0 {
		b.Fatalf("plan deletes %d blobs: %v", len(plan.Blobs), plan.Err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/object")
	b.ReportMetric(float64(retained)/n, "heap-B/object")
	runtime.KeepAlive(inv)
}
