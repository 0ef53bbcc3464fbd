package mark_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"syscall"
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
	inv, err := walker.Walk(context.Background(), store, walker.Options{Jobs: 8, ReadLinks: true}, nil)
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

// BenchmarkComputeRepos plans a policy over registries of many small
// repositories: each has 20 tags on 20 images sharing a config and a layer,
// the policy keeps the newest tag of each, --delete-untagged deletes the 19
// others' images. Mark's work is per repository and per tag: ns/repo must
// stay flat from 1,000 to 50,000 repositories.
func BenchmarkComputeRepos(b *testing.B) {
	pol, err := mark.ParsePolicy("bench", []byte("rules:\n  - repositories: [\"**\"]\n    keep: {newest: 1}\n"), false)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range []int{1000, 5000, 20000, 50000} {
		b.Run(fmt.Sprintf("repos=%d", n), func(b *testing.B) {
			inv := manyRepos(n, 20, start.Add(-30*24*time.Hour))
			opts := mark.Options{DeleteUntagged: true, StartedAt: start, Policy: pol, Compact: mark.CompactAll}
			var plan *mark.Plan
			var ms0, ms1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			cpu0 := cpuTime()
			for b.Loop() {
				plan = mark.Compute(inv, opts)
			}
			cpu := cpuTime() - cpu0
			runtime.ReadMemStats(&ms1)
			if plan.Err != nil || len(plan.Tags) != 19*n || len(plan.Revisions) != 19*n {
				b.Fatalf("plan deletes %d tags, %d revisions: %v", len(plan.Tags), len(plan.Revisions), plan.Err)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/repo")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(n), "cpu-ns/repo")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N)/float64(n), "allocs/repo")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/float64(n), "B/repo")
		})
	}
}

// cpuTime is the CPU time the process has used, the garbage collector's
// included: on a loaded machine it varies less than the elapsed time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// manyRepos builds by hand the inventory of n repositories of tags tags
// each (see BenchmarkComputeRepos), every file modified at old.
func manyRepos(n, tags int, old time.Time) *walker.Inventory {
	digest := func(i int) storage.Digest {
		sum := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		d, _ := storage.DigestFromHex("sha256", hex.EncodeToString(sum[:]))
		return d
	}
	perRepo := tags + 2
	blobs := make(map[storage.Digest]walker.Blob, n*perRepo)
	for i := range n * perRepo {
		blobs[digest(i)] = walker.Blob{Size: 1000, ModTime: walker.TimeOf(old)}
	}
	t := walker.NewDigests(blobs)
	inv := &walker.Inventory{Digests: t, Manifests: make(map[walker.ID]*walker.Manifest, n*tags)}
	for r := range n {
		base := r * perRepo
		config, layer := digest(base), digest(base+1)
		repo := &walker.Repo{Name: fmt.Sprintf("team%03d/app%06d", r%1000, r)}
		for _, d := range []storage.Digest{config, layer} {
			repo.Layers = append(repo.Layers, walker.Link{ID: t.Lookup(d), ModTime: walker.TimeOf(old)})
		}
		for i := range tags {
			id := t.Lookup(digest(base + 2 + i))
			inv.Manifests[id] = walker.NewManifest(t, storage.Refs{MediaType: storage.MediaTypeOCIManifest, Blobs: []storage.Digest{config, layer}}, 500)
			repo.Revisions = append(repo.Revisions, walker.Link{ID: id, ModTime: walker.TimeOf(old)})
			repo.Tags = append(repo.Tags, walker.Tag{Name: fmt.Sprintf("v%d", i), Current: id, Index: []walker.ID{id}, PushedAt: old.Add(time.Duration(i) * time.Minute)})
		}
		inv.Repos = append(inv.Repos, repo)
	}
	slices.SortFunc(inv.Repos, func(a, b *walker.Repo) int { return strings.Compare(a.Name, b.Name) })
	return inv
}
