package gen

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func openRegistry(t *testing.T, root string) (distribution.Namespace, context.Context) {
	t.Helper()
	ctx := context.Background()
	d, err := filesystem.FromParameters(map[string]any{"rootdirectory": root})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		t.Fatal(err)
	}
	return reg, ctx
}

func repository(t *testing.T, ctx context.Context, reg distribution.Namespace, name string) distribution.Repository {
	t.Helper()
	named, err := reference.WithName(name)
	if err != nil {
		t.Fatalf("repository name %q: %v", name, err)
	}
	repo, err := reg.Repository(ctx, named)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// TestDistributionReadsRegistry opens a generated registry with
// distribution's own storage code: the catalog lists every repository,
// every tag resolves, every manifest distribution v3 understands Gets with
// its exact bytes, and every blob it references Stats through the
// repository's blob store. Schema1 and OCI artifact manifests are refused.
func TestDistributionReadsRegistry(t *testing.T) {
	g, root := sharedLegacy(t)
	reg, ctx := openRegistry(t, root)

	var catalog []string
	if err := reg.(distribution.RepositoryEnumerator).Enumerate(ctx, func(name string) error {
		catalog = append(catalog, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range g.Repos {
		if !r.UploadsOnly {
			want = append(want, r.Name)
		}
	}
	slices.Sort(catalog)
	slices.Sort(want)
	if !slices.Equal(catalog, want) {
		t.Errorf("catalog %q, want %q", catalog, want)
	}

	read := map[Kind]int{}
	refused := map[Kind]string{}
	for _, r := range g.Repos {
		if r.UploadsOnly {
			continue
		}
		repo := repository(t, ctx, reg, r.Name)
		ms, err := repo.Manifests(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tags, err := repo.Tags(ctx).All(ctx)
		if err != nil && !r.Empty {
			t.Errorf("%s: tags: %v", r.Name, err)
		}
		if len(tags) != len(r.Tags) {
			t.Errorf("%s: distribution lists %d tags, generated %d", r.Name, len(tags), len(r.Tags))
		}
		for _, tg := range r.Tags {
			desc, err := repo.Tags(ctx).Get(ctx, tg.Name)
			if err != nil || desc.Digest.String() != tg.Current() {
				t.Errorf("%s:%s resolves to %s, %v; want %s", r.Name, tg.Name, desc.Digest, err, tg.Current())
			}
		}
		for _, d := range r.Revisions {
			m := g.Manifest(d)
			got, err := ms.Get(ctx, digest.Digest(d))
			if err != nil {
				refused[m.Kind] = err.Error()
			} else {
				read[m.Kind]++
				_, payload, err := got.Payload()
				if err != nil || !bytes.Equal(payload, m.Data) {
					t.Errorf("%s@%s: payload differs (%v)", r.Name, d, err)
				}
				var refs []string
				for _, desc := range got.References() {
					refs = append(refs, desc.Digest.String())
				}
				for _, x := range slices.Concat(m.Blobs, m.Foreign, m.Children) {
					if !slices.Contains(refs, x) {
						t.Errorf("%s@%s (%s): distribution does not see reference %s", r.Name, d, m.Kind, x)
					}
				}
			}
			for _, b := range m.Blobs {
				if _, err := repo.Blobs(ctx).Stat(ctx, digest.Digest(b)); err != nil {
					t.Errorf("%s@%s: blob %s: %v", r.Name, d, b, err)
				}
			}
			for _, c := range m.Children {
				ok, err := ms.Exists(ctx, digest.Digest(c))
				switch {
				case !r.HasRevision(c) && (ok || err != nil):
					t.Errorf("%s@%s: child %s, deleted through the API, exists (%v)", r.Name, d, c, err)
				case r.HasRevision(c) && (!ok || err != nil):
					t.Errorf("%s@%s: child %s does not exist (%v)", r.Name, d, c, err)
				}
			}
		}
	}
	t.Logf("distribution v3 read: %v", read)
	for k, e := range refused {
		t.Logf("distribution v3 refuses %s manifests: %s", k, e)
	}
	var refusedKinds []Kind
	for k := range refused {
		refusedKinds = append(refusedKinds, k)
	}
	slices.Sort(refusedKinds)
	if !slices.Equal(refusedKinds, []Kind{KindOCIArtifact, KindSchema1}) {
		t.Errorf("refused kinds %v, want [oci-artifact schema1]", refusedKinds)
	}
}

// TestUpstreamAbortsOnLegacy documents that upstream's collector stops at
// the first manifest it cannot read.
func TestUpstreamAbortsOnLegacy(t *testing.T) {
	_, root := sharedLegacy(t)
	err := UpstreamGC(context.Background(), root, storage.GCOpts{DryRun: true, Quiet: true})
	if err == nil || !strings.Contains(err.Error(), "unrecognized manifest schema version") {
		t.Fatalf("upstream on schema1/artifact manifests: %v", err)
	}
	t.Logf("upstream gc on a registry with legacy manifests: %v", err)
}

// TestUpstreamKeepUntagged: a dry run deletes nothing; upstream without
// --delete-untagged leaves exactly what the keep_untagged expectation says.
func TestUpstreamKeepUntagged(t *testing.T) {
	t.Parallel()
	g, root := generate(t, testOptions(false))
	if err := UpstreamGC(context.Background(), root, storage.GCOpts{DryRun: true, RemoveUntagged: true, Quiet: true}); err != nil {
		t.Fatal(err)
	}
	before, err := Scan(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Blobs) != len(g.Blobs) {
		t.Errorf("dry run left %d of %d blobs", len(before.Blobs), len(g.Blobs))
	}
	if err := UpstreamGC(context.Background(), root, storage.GCOpts{Quiet: true}); err != nil {
		t.Fatal(err)
	}
	disk, err := Scan(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	// Blobs and revisions match exactly. Layer links may not: upstream
	// keeps a repository's link to a blob that no manifest of the
	// repository uses when a repository enumerated before it marked the blob.
	classes, examples, unexplained := explain(g, g.Survivors(false), disk)
	for _, d := range unexplained {
		t.Errorf("difference: %s", d)
	}
	for c := range classes {
		if c != classCrossRepoLayer && c != classAbsentChild {
			t.Errorf("unexpected %s", c)
		}
	}
	t.Logf("upstream keep_untagged vs expectation (orphans deleted: %d):\n%s", g.Totals().OrphanBlobs, describe(classes, examples))
}

// TestUpstreamDeleteUntagged runs upstream with --delete-untagged and
// explains every way it differs from the delete_untagged expectation; a
// difference no known upstream behaviour explains fails the test.
func TestUpstreamDeleteUntagged(t *testing.T) {
	t.Parallel()
	g, root := generate(t, testOptions(false))
	if err := UpstreamGC(context.Background(), root, storage.GCOpts{RemoveUntagged: true, Quiet: true}); err != nil {
		t.Fatal(err)
	}
	disk, err := Scan(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	classes, examples, unexplained := explain(g, g.Survivors(true), disk)
	for _, d := range unexplained {
		t.Errorf("unexplained difference: %s", d)
	}
	t.Logf("upstream --delete-untagged vs delete_untagged expectation:\n%s", describe(classes, examples))
	for _, c := range []string{classReferrer, classCrossRepoRevision, classAbsentChild} {
		if classes[c] == 0 {
			t.Errorf("no %q difference: has upstream changed, or the generator?", c)
		}
	}
}

// The ways upstream's collector is known to differ from an expectation.
const (
	classReferrer          = "missing revision: untagged referrer (signature/SBOM) of a kept manifest deleted"
	classReferrerBlob      = "missing blob: manifest, config or layer only kept referrers use"
	classReferrerLayer     = "missing layer link: of a kept referrer"
	classCrossRepoRevision = "extra revision: untagged here, but the same digest is kept in another repository (markSet is global)"
	classCrossRepoLayer    = "extra layer link: no kept manifest of this repository uses the blob, another repository's does (markSet is global)"
	classAbsentChild       = "extra blob: manifest of an index child its repository does not hold (deleted through the API; upstream marks every descriptor, not what the child references)"
)

// explain sorts the differences between disk and exp into the classes
// above; what fits none is returned as unexplained.
func explain(g *Registry, exp *Survivors, disk *OnDisk) (classes map[string]int, examples map[string]string, unexplained []Diff) {
	keptSomewhere := map[string]bool{}
	for _, b := range exp.Blobs {
		keptSomewhere[b] = true
	}
	// What kept referrers own, per repository and overall.
	referrerBlobs := map[string]bool{}
	referrerLayers := map[string]map[string]bool{}
	nonReferrerBlobs := map[string]bool{}
	for name, rs := range exp.Repos {
		referrerLayers[name] = map[string]bool{}
		for _, d := range rs.Revisions {
			m := g.Manifest(d)
			for _, b := range append([]string{d}, m.Blobs...) {
				if m.Subject != "" {
					referrerBlobs[b] = true
					referrerLayers[name][b] = true
				} else {
					nonReferrerBlobs[b] = true
				}
			}
		}
	}
	absentChild := absentChildren(g)
	classes, examples = map[string]int{}, map[string]string{}
	for _, d := range Compare(exp, disk, true) {
		var class string
		switch {
		case d.Missing && d.What == "revision" && g.Manifest(d.Digest).Subject != "":
			class = classReferrer
		case d.Missing && d.What == "blob" && referrerBlobs[d.Digest] && !nonReferrerBlobs[d.Digest]:
			class = classReferrerBlob
		case d.Missing && d.What == "layer" && referrerLayers[d.Repo][d.Digest]:
			class = classReferrerLayer
		case !d.Missing && d.What == "revision" && keptSomewhere[d.Digest]:
			class = classCrossRepoRevision
		case !d.Missing && d.What == "layer" && keptSomewhere[d.Digest]:
			class = classCrossRepoLayer
		case !d.Missing && d.What == "blob" && absentChild[d.Digest] && !keptSomewhere[d.Digest]:
			class = classAbsentChild
		default:
			unexplained = append(unexplained, d)
			continue
		}
		classes[class]++
		if examples[class] == "" {
			examples[class] = d.String()
		}
	}
	return classes, examples, unexplained
}

// absentChildren are the manifests that indexes of a repository list but
// the repository does not hold.
func absentChildren(g *Registry) map[string]bool {
	out := map[string]bool{}
	for _, r := range g.Repos {
		for _, d := range r.Revisions {
			for _, c := range g.Manifest(d).Children {
				if !r.HasRevision(c) {
					out[c] = true
				}
			}
		}
	}
	return out
}

func describe(classes map[string]int, examples map[string]string) string {
	if len(classes) == 0 {
		return "      no difference"
	}
	var lines []string
	for c, n := range classes {
		lines = append(lines, fmt.Sprintf("%6d  %s\n        e.g. %s", n, c, examples[c]))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestExplainRegistry explains how a registry made by 'generate --expect'
// and then collected (by upstream or anything else) differs from its
// expectation, at any size. It runs only when asked:
//
//	REGSWEEP_BENCH_ROOT=/tmp/gen50k REGSWEEP_BENCH_EXPECT=/tmp/gen50k.json \
//	REGSWEEP_BENCH_MODE=delete_untagged go test -run TestExplainRegistry -v ./storage/storagetest/gen
func TestExplainRegistry(t *testing.T) {
	root, expect, mode := os.Getenv("REGSWEEP_BENCH_ROOT"), os.Getenv("REGSWEEP_BENCH_EXPECT"), os.Getenv("REGSWEEP_BENCH_MODE")
	if root == "" || expect == "" || mode == "" {
		t.Skip("set REGSWEEP_BENCH_ROOT, REGSWEEP_BENCH_EXPECT and REGSWEEP_BENCH_MODE")
	}
	e, err := ReadExpectation(expect)
	if err != nil {
		t.Fatal(err)
	}
	gi := e.Generator
	g := Build(Options{Blobs: gi.Blobs, Seed: gi.Seed, Repos: gi.Repos, Legacy: gi.Legacy, SHA512: gi.SHA512, Now: gi.Now})
	if !slices.Equal(g.Survivors(mode == ModeDeleteUntagged).Blobs, e.Modes[mode].Blobs) {
		t.Fatal("rebuilding the model from the expectation's generator fields gives other blobs (made by another version?)")
	}
	disk, err := Scan(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	classes, examples, unexplained := explain(g, e.Modes[mode], disk)
	for i, d := range unexplained {
		if i == 50 {
			t.Errorf("… %d more", len(unexplained)-50)
			break
		}
		t.Errorf("unexplained difference: %s", d)
	}
	t.Logf("%s vs %s:\n%s", root, mode, describe(classes, examples))
}

// tree maps each path below root to "dir", or "file <mode> <content>".
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[rel] = fmt.Sprintf("dir %v", fi.Mode())
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("file %v %q", fi.Mode(), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestByteForByte pushes the same content through distribution's storage
// API (uploads, manifest Put, Tag) and through the generator, and compares
// every path, mode and byte.
func TestByteForByte(t *testing.T) {
	src := Build(testOptions(true))
	hasSHA512 := func(m *Manifest) bool {
		return slices.ContainsFunc(m.Blobs, func(b string) bool { return strings.HasPrefix(b, "sha512:") })
	}
	var img, idx, sig *Manifest
	for _, m := range src.Manifests {
		switch {
		case img == nil && m.Kind == KindSchema2 && len(m.Foreign) == 0:
			img = m
		case idx == nil && m.Kind == KindOCIIndex:
			idx = m
		case m.Kind == KindOCIReferrer && src.Manifest(m.Subject).Kind == KindOCIManifest:
			if sig == nil || !hasSHA512(src.Manifest(sig.Subject)) {
				sig = m
			}
		}
	}
	if img == nil || idx == nil || sig == nil {
		t.Fatal("source registry lacks a schema2 image, an OCI index or a signature")
	}
	subject := src.Manifest(sig.Subject)
	const name = "team-1/app-2/debug"
	pushes := []struct {
		m   *Manifest
		tag string
	}{{img, "v1"}, {idx, "v1"}, {subject, ""}, {sig, ""}, {img, "latest"}}

	// Through the generator.
	g := NewRegistry(testNow, DefaultAge)
	repo := g.AddRepo(name, "")
	var copyIn func(m *Manifest)
	copyIn = func(m *Manifest) {
		for _, c := range m.Children {
			copyIn(src.Manifest(c))
		}
		for _, b := range m.Blobs {
			if c := src.Canonical(b); c != b {
				g.AddBlobSHA512(src.Blob(c).Data)
			} else {
				g.AddBlob(src.Blob(b).Data)
			}
		}
		c := *m
		g.AddManifest(&c)
	}
	for _, p := range pushes {
		copyIn(p.m)
		g.Push(repo, g.Manifest(p.m.Digest))
		if p.tag != "" {
			repo.SetTag(p.tag, p.m.Digest, testNow)
		}
	}
	genRoot := t.TempDir()
	if _, err := g.Write(context.Background(), genRoot, 4); err != nil {
		t.Fatal(err)
	}

	// Through distribution, as a client push does: blob uploads, then
	// manifests (children first), then tags.
	distRoot := t.TempDir()
	reg, ctx := openRegistry(t, distRoot)
	r := repository(t, ctx, reg, name)
	ms, err := r.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var push func(m *Manifest)
	push = func(m *Manifest) {
		for _, c := range m.Children {
			push(src.Manifest(c))
		}
		for _, b := range m.Blobs {
			w, err := r.Blobs(ctx).Create(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(src.Blob(src.Canonical(b)).Data); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Commit(ctx, v1.Descriptor{Digest: digest.Digest(b)}); err != nil {
				t.Fatalf("commit %s: %v", b, err)
			}
		}
		var dm distribution.Manifest
		switch m.MediaType {
		case MediaTypeDockerManifest:
			dm = new(schema2.DeserializedManifest)
		case MediaTypeDockerList:
			dm = new(manifestlist.DeserializedManifestList)
		case MediaTypeOCIIndex:
			dm = new(ocischema.DeserializedImageIndex)
		default:
			dm = new(ocischema.DeserializedManifest)
		}
		if err := dm.(interface{ UnmarshalJSON([]byte) error }).UnmarshalJSON(m.Data); err != nil {
			t.Fatal(err)
		}
		d, err := ms.Put(ctx, dm)
		if err != nil || d.String() != m.Digest {
			t.Fatalf("put %s: %s, %v", m.Digest, d, err)
		}
	}
	for _, p := range pushes {
		push(p.m)
		if p.tag != "" {
			if err := r.Tags(ctx).Tag(ctx, p.tag, v1.Descriptor{Digest: digest.Digest(p.m.Digest)}); err != nil {
				t.Fatal(err)
			}
		}
	}

	gt, dt := tree(t, genRoot), tree(t, distRoot)
	for p, v := range dt {
		if gt[p] != v {
			t.Errorf("%s\n  distribution: %s\n  generator:    %s", p, v, gt[p])
		}
	}
	for p, v := range gt {
		if _, ok := dt[p]; !ok {
			t.Errorf("%s only in generator's tree: %s", p, v)
		}
	}
	t.Logf("%d paths identical (a sha512 layer: %t)", len(dt), hasSHA512(subject))
}

// TestUpstreamLosesSHA512Blobs: distribution stores a blob pushed under a
// sha512 digest under its sha256 digest, with a sha512 alias link. Upstream
// marks the sha512 digest a manifest names, never the sha256 one the blob
// lives under, and deletes the blob (and its sha256 layer link) even
// without --delete-untagged: data loss.
func TestUpstreamLosesSHA512Blobs(t *testing.T) {
	t.Parallel()
	opts := testOptions(false)
	opts.SHA512 = true
	g, root := generate(t, opts)
	aliased := map[string]bool{}
	for _, m := range g.Manifests {
		for _, b := range m.Blobs {
			if c := g.Canonical(b); c != b {
				aliased[c] = true
			}
		}
	}
	if len(aliased) == 0 {
		t.Fatal("no sha512 layer generated")
	}
	// The layer enumeration reads link contents: the sha256 link and the
	// sha512 alias both yield the sha256 digest, which is queued for
	// deletion twice; the second delete fails and upstream stops, after it
	// has deleted the blobs.
	err := UpstreamGC(context.Background(), root, storage.GCOpts{Quiet: true})
	if err == nil || !strings.Contains(err.Error(), "failed to delete layer link") {
		t.Errorf("upstream on sha512 aliases: %v", err)
	}
	t.Logf("upstream gc: %v", err)
	disk, err := Scan(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	lost, left := 0, 0
	absent := absentChildren(g)
	for _, d := range Compare(g.Survivors(false), disk, true) {
		switch {
		case d.Missing && d.What == "blob" && aliased[d.Digest]:
			lost++
			t.Logf("upstream deleted %s, stored under sha256, referenced as sha512", d.Digest)
		case d.Missing && d.What == "layer" && aliased[d.Digest]:
		case !d.Missing && d.What == "layer":
			left++ // not swept: upstream stopped
		case !d.Missing && d.What == "blob" && absent[d.Digest]:
			// classAbsentChild: upstream marks the manifest blob of an
			// index child its repository does not hold.
		default:
			t.Errorf("unexplained difference: %s", d)
		}
	}
	t.Logf("%d blobs lost, %d garbage layer links left by the abort", lost, left)
	if lost == 0 {
		t.Error("upstream kept the sha512-referenced blobs: has it been fixed?")
	}
}
