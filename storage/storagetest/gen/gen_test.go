package gen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// tmp holds registries shared by tests that only read them.
var tmp string

func TestMain(m *testing.M) {
	// distribution logs every deletion at info level through logrus.
	logrus.SetOutput(io.Discard)
	var err error
	if tmp, err = os.MkdirTemp("", "regsweep-bench-gen-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

var shared struct {
	sync.Once
	g    *Registry
	root string
	err  error
}

// sharedLegacy returns a registry with every manifest kind, legacy ones
// included, written once for the tests that do not modify it.
func sharedLegacy(t *testing.T) (*Registry, string) {
	t.Helper()
	shared.Do(func() {
		opts := testOptions(true)
		shared.g = Build(opts)
		shared.root = filepath.Join(tmp, "legacy")
		_, shared.err = shared.g.Write(context.Background(), shared.root, 8)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	t.Logf("shared registry: seed %d, legacy and sha512", testOptions(true).Seed)
	return shared.g, shared.root
}

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// testOptions returns the options of a ~500-blob registry; exotic adds
// what upstream cannot collect: schema1 and OCI artifact manifests, and
// sha512-addressed layers.
func testOptions(exotic bool) Options {
	return Options{Blobs: 500, Seed: 42, Legacy: exotic, SHA512: exotic, Now: testNow}
}

// generate builds and writes a registry into a new temporary directory.
func generate(t *testing.T, opts Options) (*Registry, string) {
	t.Helper()
	t.Logf("seed %d, %d blobs, legacy %t, sha512 %t", opts.Seed, opts.Blobs, opts.Legacy, opts.SHA512)
	g := Build(opts)
	root := t.TempDir()
	if _, err := g.Write(context.Background(), root, 8); err != nil {
		t.Fatal(err)
	}
	return g, root
}

func TestBuildDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := Build(testOptions(true)).Expect(testOptions(true)).WriteJSON(&a); err != nil {
		t.Fatal(err)
	}
	if err := Build(testOptions(true)).Expect(testOptions(true)).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same seed, different expectation")
	}
	// The clock moves times only, never digests.
	later := testOptions(true)
	later.Now = later.Now.Add(96 * time.Hour)
	g1, g2 := Build(testOptions(true)), Build(later)
	if len(g1.Blobs) != len(g2.Blobs) {
		t.Fatal("the clock changed the number of blobs")
	}
	for i := range g1.Blobs {
		if g1.Blobs[i].Digest != g2.Blobs[i].Digest {
			t.Fatalf("the clock changed blob %d: %s, %s", i, g1.Blobs[i].Digest, g2.Blobs[i].Digest)
		}
	}
	o := testOptions(true)
	o.Seed++
	var c bytes.Buffer
	if err := Build(o).Expect(o).WriteJSON(&c); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("different seeds, same expectation")
	}
}

func TestBuildCoversEverything(t *testing.T) {
	opts := testOptions(true)
	g := Build(opts)
	kinds := map[Kind]int{}
	var noMediaType, foreign, sha512, chained, nested, shared int
	inRepos := map[string]int{}
	for _, r := range g.Repos {
		if r.Parent != "" {
			nested++
		}
		for _, d := range r.Revisions {
			inRepos[d]++
		}
	}
	for _, m := range g.Manifests {
		if inRepos[m.Digest] == 0 {
			continue // deleted through the API
		}
		if inRepos[m.Digest] > 1 {
			shared++
		}
		kinds[m.Kind]++
		if m.NoMediaType {
			noMediaType++
		}
		foreign += len(m.Foreign)
		for _, b := range m.Blobs {
			if b[:7] == "sha512:" {
				sha512++
			}
		}
		if m.Subject != "" && g.Manifest(m.Subject).Subject != "" {
			chained++
		}
		if got := Sha256(m.Data); got != m.Digest {
			t.Errorf("manifest %s has digest %s", m.Digest, got)
		}
	}
	for k := KindSchema2; k <= KindCosignFallback; k++ {
		if kinds[k] == 0 {
			t.Errorf("no %s manifest", k)
		}
	}
	for name, n := range map[string]int{"mediaType-less": noMediaType, "foreign layer": foreign, "sha512 layer": sha512,
		"referrer of a referrer": chained, "nested repository": nested, "manifest in two repositories": shared} {
		if n == 0 {
			t.Errorf("no %s", name)
		}
	}
	if g.Blob(EmptyDigest) == nil || !bytes.Equal(g.Blob(EmptyDigest).Data, EmptyJSON) || Sha256(EmptyJSON) != EmptyDigest {
		t.Error("empty descriptor blob missing or wrong")
	}
	tot := g.Totals()
	t.Logf("kinds %v; totals %+v", kinds, tot)
	if tot.Blobs < opts.Blobs || tot.Blobs > opts.Blobs*11/10 {
		t.Errorf("asked for %d blobs, got %d", opts.Blobs, tot.Blobs)
	}
	if tot.OrphanBlobs == 0 || tot.Untagged == 0 || tot.Uploads < 4 {
		t.Errorf("want orphans, untagged revisions and uploads: %+v", tot)
	}
	retagged := 0
	for _, r := range g.Repos {
		for _, tg := range r.Tags {
			if len(tg.History) > 1 {
				retagged++
			}
		}
	}
	if retagged == 0 {
		t.Error("no tag was re-pointed")
	}
}

func TestExpectDeleteUntagged(t *testing.T) {
	g := Build(testOptions(false))
	keep, del := g.Survivors(false), g.Survivors(true)
	if len(del.Blobs) >= len(keep.Blobs) {
		t.Fatalf("delete_untagged keeps %d blobs, keep_untagged %d", len(del.Blobs), len(keep.Blobs))
	}
	for _, r := range g.Repos {
		rs := del.Repos[r.Name]
		if r.UploadsOnly {
			if rs != nil {
				t.Errorf("%s holds only uploads, yet has an expectation", r.Name)
			}
			continue
		}
		kept := map[string]bool{}
		for _, d := range rs.Revisions {
			kept[d] = true
		}
		for _, tg := range r.Tags {
			if !kept[tg.Current()] {
				t.Errorf("%s:%s target not kept", r.Name, tg.Name)
			}
		}
		for _, d := range r.Revisions {
			m := g.Manifest(d)
			if kept[d] {
				for _, c := range m.Children {
					// A child the repository does not hold (deleted through
					// the API) cannot be kept.
					if !kept[c] && r.HasRevision(c) {
						t.Errorf("%s: child %s of kept %s dropped", r.Name, c, d)
					}
				}
			}
			if m.Subject != "" && kept[m.Subject] != kept[d] {
				t.Errorf("%s: referrer %s kept=%t but subject kept=%t", r.Name, d, kept[d], kept[m.Subject])
			}
		}
	}
}

func TestWriteAndScan(t *testing.T) {
	g, root := sharedLegacy(t)
	disk, err := Scan(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	// Before any collection the registry holds everything: against
	// keep_untagged only orphans (and their links) are extra.
	keep := g.Survivors(false)
	for _, d := range Compare(keep, disk, true) {
		if d.Missing {
			t.Errorf("fresh registry: %s", d)
		}
	}
	if len(disk.Blobs) != len(g.Blobs) {
		t.Errorf("scanned %d blobs, generated %d", len(disk.Blobs), len(g.Blobs))
	}
	// Files have their times: blobs Age old, tags at their push time,
	// uploads at their start.
	b := g.Blobs[0]
	alg, hx := SplitDigest(b.Digest)
	fi, err := os.Stat(filepath.Join(root, V2Path, "blobs", alg, hx[:2], hx, "data"))
	if err != nil {
		t.Fatal(err)
	}
	if want := testNow.Add(-DefaultAge); !fi.ModTime().Equal(want) {
		t.Errorf("blob mtime %v, want %v", fi.ModTime(), want)
	}
	var tagTimes []time.Time
	for _, r := range g.Repos {
		for _, tg := range r.Tags {
			fi, err := os.Stat(filepath.Join(root, V2Path, "repositories", r.Name, "_manifests/tags", tg.Name, "current/link"))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.ModTime().Equal(tg.PushedAt) {
				t.Errorf("%s:%s mtime %v, want %v", r.Name, tg.Name, fi.ModTime(), tg.PushedAt)
			}
			tagTimes = append(tagTimes, tg.PushedAt)
		}
	}
	if slices.MinFunc(tagTimes, time.Time.Compare).After(testNow.Add(-20 * 24 * time.Hour)) {
		t.Error("tag push times do not spread over weeks")
	}
	// Writing twice into the same root is refused.
	if _, err := g.Write(context.Background(), root, 2); err == nil {
		t.Error("second Write into the same root succeeded")
	}
}

func TestCompare(t *testing.T) {
	exp := &Survivors{Blobs: []string{"sha256:a", "sha256:b"}, Repos: map[string]*RepoSurvivors{
		"x": {Revisions: []string{"sha256:a"}, Layers: []string{"sha256:b"}},
	}}
	disk := &OnDisk{Blobs: map[string]bool{"sha256:a": true, "sha256:c": true}, Repos: map[string]*RepoOnDisk{
		"x": {Revisions: map[string]bool{"sha256:a": true}, Layers: map[string]bool{}},
		"y": {Revisions: map[string]bool{"sha256:c": true}, Layers: map[string]bool{}},
	}}
	var got []string
	for _, d := range Compare(exp, disk, true) {
		got = append(got, d.String())
	}
	want := []string{"missing blob sha256:b", "missing layer x@sha256:b", "extra blob sha256:c", "extra revision y@sha256:c"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
