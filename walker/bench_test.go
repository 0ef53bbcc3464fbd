package walker_test

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/walker"
)

// BenchmarkWalk walks a generated registry (20,000 blobs unless
// REGSWEEP_BENCH_BLOBS or REGSWEEP_BENCH_REGISTRY say otherwise; see
// storagetest.Generated) with a warm page cache. Besides time it reports
// per stored object the time and the heap the inventory keeps: the figure
// the peak RSS of a run follows. Run with -cpuprofile/-memprofile to see
// where either goes.
func BenchmarkWalk(b *testing.B) {
	root := storagetest.Generated(b, 20000)
	store, err := storage.OpenFS(root)
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	var inv *walker.Inventory
	var retained uint64
	for b.Loop() {
		inv = nil
		inv, retained = storagetest.RetainedHeap(func() *walker.Inventory {
			inv, err := walker.Walk(ctx, store, walker.Options{Jobs: 8}, nil)
			if err != nil {
				b.Fatal(err)
			}
			return inv
		})
	}
	n := float64(inv.Objects())
	b.ReportMetric(n, "objects")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/object")
	b.ReportMetric(float64(retained)/n, "heap-B/object")
	heapProfile(b)
	runtime.KeepAlive(inv)
}

// heapProfile writes the live heap to $REGSWEEP_BENCH_HEAPPROFILE, if set,
// while what the benchmark built is still alive (-memprofile is written
// after it is gone).
func heapProfile(b *testing.B) {
	p := os.Getenv("REGSWEEP_BENCH_HEAPPROFILE")
	if p == "" {
		return
	}
	runtime.GC()
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// TestInventoryHeapPerObject guards the inventory's size: the peak RSS of
// a run on a large registry follows it (125 bytes an object at 1M blobs,
// with 52 of them the inventory's heap; 57 at 3,000 blobs). The bound leaves room for noise,
// not for a per-object string or map entry creeping back.
func TestInventoryHeapPerObject(t *testing.T) {
	root := t.TempDir()
	storagetest.Generate(t, root, 3000)
	store, err := storage.OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	inv, retained := storagetest.RetainedHeap(func() *walker.Inventory {
		inv, err := walker.Walk(context.Background(), store, walker.Options{Jobs: 4}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return inv
	})
	n := inv.Objects()
	perObject := float64(retained) / float64(n)
	t.Logf("%d objects, %.1f bytes of heap each", n, perObject)
	if perObject > 80 {
		t.Errorf("the inventory takes %.1f bytes of heap per stored object, want at most 80", perObject)
	}
}
