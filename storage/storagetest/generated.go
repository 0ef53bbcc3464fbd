package storagetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

// Generated returns the root of a registry of about blobs blobs written by
// regsweep-bench's generator (seed 1), for benchmarks. It is written once
// into $TMPDIR/regsweep-bench-<blobs> and reused by later runs, since
// writing it costs far more than walking it. REGSWEEP_BENCH_REGISTRY names a
// registry root to use instead (e.g. one 'regsweep-bench generate' wrote);
// REGSWEEP_BENCH_BLOBS overrides blobs.
func Generated(tb testing.TB, blobs int) string {
	tb.Helper()
	if root := os.Getenv("REGSWEEP_BENCH_REGISTRY"); root != "" {
		return root
	}
	if s := os.Getenv("REGSWEEP_BENCH_BLOBS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			tb.Fatalf("REGSWEEP_BENCH_BLOBS=%q: want a positive number", s)
		}
		blobs = n
	}
	root := filepath.Join(os.TempDir(), fmt.Sprintf("regsweep-bench-%d", blobs))
	done := filepath.Join(root, "complete")
	if _, err := os.Stat(done); err == nil {
		return root
	}
	if err := os.RemoveAll(root); err != nil {
		tb.Fatal(err)
	}
	Generate(tb, root, blobs)
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	return root
}

// Generate writes a registry of about blobs blobs into root with
// regsweep-bench's generator (seed 1).
func Generate(tb testing.TB, root string, blobs int) {
	tb.Helper()
	reg := gen.Build(gen.Options{Blobs: blobs, Seed: 1})
	if _, err := reg.Write(context.Background(), root, 4); err != nil {
		tb.Fatalf("generate %d blobs into %s: %v", blobs, root, err)
	}
}

// RetainedHeap runs f and returns what it returns with the bytes of heap
// that keeps alive, measured between two collections: the figure a
// process's peak RSS follows when what f builds lives long.
func RetainedHeap[T any](f func() T) (T, uint64) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	v := f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	return v, after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc)
}
