package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/sweep"
	"github.com/regsweep/regsweep/walker"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// audit runs the stages of `regsweep audit` over the registry at root, as
// of startedAt, with a gc estimate of opts.
func audit(t *testing.T, root string, opts mark.Options, verify bool) *report.Audit {
	t.Helper()
	ctx := context.Background()
	fs, err := storage.OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	store := storage.ReadOnly(fs)
	inv, err := walker.Walk(ctx, store, walker.Options{Jobs: 4, ReadLinks: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan := mark.Compute(inv, opts)
	res, err := sweep.Execute(ctx, store, plan, sweep.Options{DryRun: true, Jobs: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ver *walker.Verification
	if verify {
		if ver, err = walker.Verify(ctx, store, inv, walker.VerifyOptions{Jobs: 4}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return report.NewAudit(inv, plan, res, ver)
}

func size(t *testing.T, root string, ds ...digest.Digest) int64 {
	t.Helper()
	var n int64
	for _, d := range ds {
		fi, err := os.Stat(filepath.Join(root, "docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data"))
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func TestAuditSizes(t *testing.T) {
	root := t.TempDir()
	r := storagetest.New(t, root)
	// a and b share the layer l; mirror holds a copy of a's image; c holds
	// an index over two images, and an untagged image.
	a := r.PushImage("a", storagetest.ImageOpts{Layers: 2})
	r.Tag("a", "latest", a)
	l := a.Blobs[1]
	b := r.PushImage("b", storagetest.ImageOpts{SharedLayers: []digest.Digest{l}, Layers: 1, LayerSize: 1000})
	r.Tag("b", "latest", b)
	r.Tag("mirror", "latest", r.CopyImage(a, "mirror"))
	x, y := r.PushImage("c", storagetest.ImageOpts{OCI: true}), r.PushImage("c", storagetest.ImageOpts{OCI: true})
	idx := r.PushIndex("c", true, x, y)
	r.Tag("c", "multi", idx)
	untagged := r.PushImage("c", storagetest.ImageOpts{LayerSize: 2000})

	au := audit(t, root, mark.Options{StartedAt: time.Now(), Compact: mark.CompactAll}, false)
	if !au.Healthy || len(au.Broken) != 0 {
		t.Fatalf("a pristine registry: healthy %v, broken %v", au.Healthy, au.Broken)
	}
	all := func(img storagetest.Image) []digest.Digest { return append([]digest.Digest{img.Digest}, img.Blobs...) }
	mA, mB := size(t, root, all(a)...), size(t, root, all(b)...)
	sl := size(t, root, l)
	imgC := size(t, root, idx.Digest) + size(t, root, all(x)...) + size(t, root, all(y)...)
	want := map[string]report.RepoUsage{
		// a's manifest, config and l2 are mirror's too; l is b's too.
		"a":      {Tags: 1, Manifests: 1, Blobs: 4, LogicalBytes: mA, ExclusiveBytes: 0, SharedBytes: mA},
		"mirror": {Tags: 1, Manifests: 1, Blobs: 4, LogicalBytes: mA, ExclusiveBytes: 0, SharedBytes: mA},
		"b":      {Tags: 1, Manifests: 1, Blobs: 4, LogicalBytes: mB, ExclusiveBytes: mB - sl, SharedBytes: sl},
		"c": {Tags: 1, Manifests: 4, Blobs: 10, LogicalBytes: imgC + size(t, root, all(untagged)...),
			ExclusiveBytes: imgC + size(t, root, all(untagged)...)},
	}
	for _, u := range au.Repositories {
		w := want[u.Name]
		w.Name, w.LayerLinks = u.Name, u.LayerLinks
		if u != w {
			t.Errorf("repository %s:\n got %+v\nwant %+v", u.Name, u, w)
		}
	}
	if len(au.Repositories) != len(want) || au.Repositories[0].Name != "c" {
		t.Errorf("repositories %+v: want 4, largest (c) first", au.Repositories)
	}
	images := map[string]int64{"a:latest": mA, "mirror:latest": mA, "b:latest": mB, "c:multi": imgC}
	for _, i := range au.Images {
		if images[i.Repo+":"+i.Tag] != i.Bytes {
			t.Errorf("image %s:%s: %d bytes, want %d", i.Repo, i.Tag, i.Bytes, images[i.Repo+":"+i.Tag])
		}
	}
	if len(au.Images) != 4 || au.Images[0].Tag != "multi" || au.Images[0].Blobs != 7 {
		t.Errorf("images %+v: want 4, c:multi (7 blobs) first", au.Images)
	}
	total := imgC + size(t, root, all(untagged)...) + mA + mB - sl
	if s := au.Storage; s.ReferencedBytes != total || s.Bytes != total || s.UnreferencedBytes != 0 || s.Blobs != 17 || s.ReferencedBlobs != 17 {
		t.Errorf("storage %+v: want %d bytes in 17 blobs, all referenced", s, total)
	}
}

// damaged writes the registry of the golden files: one case of every list
// of the audit. Times are fixed and contents seeded, so only the upload
// ids and the root differ from run to run.
func damaged(t *testing.T, root string, at time.Time) {
	t.Helper()
	r := storagetest.New(t, root)
	v2 := func(p ...string) string { return filepath.Join(append([]string{root, "docker/registry/v2"}, p...)...) }
	write := func(p string, b []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	blob := func(d digest.Digest) string {
		return v2("blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
	}

	base := r.PushImage("library/base", storagetest.ImageOpts{Layers: 2})
	r.Tag("library/base", "latest", base)
	app := r.PushImage("team/app", storagetest.ImageOpts{SharedLayers: base.Blobs[1:2], Layers: 1})
	r.Tag("team/app", "v1", app)
	r.PushImage("team/app", storagetest.ImageOpts{}) // untagged: a gc --delete-untagged reclaims it
	rot := r.PushImage("team/rot", storagetest.ImageOpts{})
	r.Tag("team/rot", "v1", rot)
	gone := r.PushImage("team/gone", storagetest.ImageOpts{Layers: 2})
	r.Tag("team/gone", "v1", gone)
	linkless := r.PushImage("team/linkless", storagetest.ImageOpts{})
	r.Tag("team/linkless", "v1", linkless)
	dangling := r.PushBlob("team/app", 300)
	r.PushBlob("empty", 200) // a repository of layer links only
	r.StartUpload("team/app", 100)

	// Blob data deleted; a byte flipped; a layer link truncated, one made
	// garbage, one removed; a blob no one links; a foreign repository and
	// a foreign tag.
	if err := os.Remove(blob(gone.Blobs[1])); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Dir(blob(dangling))); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(blob(rot.Blobs[1]))
	if err != nil {
		t.Fatal(err)
	}
	b[7] ^= 0x01
	write(blob(rot.Blobs[1]), b)
	write(v2("repositories/library/base/_layers/sha256", base.Blobs[2].Encoded(), "link"), []byte("sha256:9f86d0"))
	write(v2("repositories/team/app/_manifests/tags/v1/index/sha256", app.Digest.Encoded(), "link"), []byte("garbage"))
	if err := os.RemoveAll(v2("repositories/team/linkless/_layers/sha256", linkless.Blobs[1].Encoded())); err != nil {
		t.Fatal(err)
	}
	orphan := []byte("a blob no manifest and no link references")
	write(blob(digest.FromBytes(orphan)), orphan)
	write(v2("repositories/Team/Foreign/_layers/sha256", base.Blobs[0].Encoded(), "link"), []byte(base.Blobs[0]))
	write(v2("repositories/team/app/_manifests/tags/bad~tag/current/link"), []byte(app.Digest))
	r.AgeAll(at)
}

func TestAuditGolden(t *testing.T) {
	root := t.TempDir()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	damaged(t, root, at)
	au := audit(t, root, mark.Options{DeleteUntagged: true, MinAge: time.Hour, StartedAt: at.Add(10 * 24 * time.Hour), Compact: mark.CompactAll}, true)
	au.Location = "/var/lib/registry"
	au.Phases = []report.Phase{{Name: "walk", Seconds: 0.25}, {Name: "mark", Seconds: 0.01}, {Name: "verify", Seconds: 0.5}}
	au.Digests.Seconds = 0.5

	var js, md, txt bytes.Buffer
	if err := report.AuditJSON(&js, au); err != nil {
		t.Fatal(err)
	}
	if err := report.AuditMarkdown(&md, au); err != nil {
		t.Fatal(err)
	}
	if err := report.AuditText(&txt, au); err != nil {
		t.Fatal(err)
	}
	t.Logf("text:\n%s", txt.String())
	normalize := func(b []byte) []byte {
		b = bytes.ReplaceAll(b, []byte(root), []byte("$ROOT"))
		return uploadID.ReplaceAll(b, []byte("UPLOAD-ID"))
	}
	for _, g := range []struct {
		file string
		got  []byte
	}{{"audit.golden.json", normalize(js.Bytes())}, {"audit.golden.md", normalize(md.Bytes())}} {
		p := filepath.Join("testdata", g.file)
		if *update {
			if err := os.MkdirAll("testdata", 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, g.got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (go test ./report -run TestAuditGolden -update writes it)", err)
		}
		if !bytes.Equal(g.got, want) {
			t.Errorf("%s differs (go test ./report -run TestAuditGolden -update rewrites it); got:\n%s", p, g.got)
		}
	}

	// Every damage is in the report with its path.
	var doc map[string]any
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## Digest mismatches: 1, 512 B", "## Broken images: 3", "## Missing blobs: 1", "## Corrupt link files: 2",
		"## Orphan blobs: 1, 41 B", "## Orphan layer links: 2", "## Stale uploads: 1, 228 B", "## Empty repositories: 1", "## Foreign names: 2",
		"`docker/registry/v2/repositories/team/app/_uploads/UPLOAD-ID`", "**Result: FAILED** (3 broken images, 1 digest mismatch)",
	} {
		if !bytes.Contains(normalize(md.Bytes()), []byte(want)) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if au.Healthy || !strings.Contains(txt.String(), "result: FAILED: 3 broken images, 1 digest mismatch") {
		t.Errorf("healthy %v; text:\n%s", au.Healthy, txt.String())
	}
}

// uploadID matches the random ids distribution gives uploads.
var uploadID = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func TestAuditBrokenImages(t *testing.T) {
	root := t.TempDir()
	r := storagetest.New(t, root)
	v2 := func(p ...string) string { return filepath.Join(append([]string{root, "docker/registry/v2"}, p...)...) }
	ok := r.PushImage("ok", storagetest.ImageOpts{})
	r.Tag("ok", "v1", ok)
	rev := r.PushImage("rev", storagetest.ImageOpts{})
	r.Tag("rev", "v1", rev)
	x, y := r.PushImage("idx", storagetest.ImageOpts{OCI: true}), r.PushImage("idx", storagetest.ImageOpts{OCI: true})
	idx := r.PushIndex("idx", true, x, y)
	r.Tag("idx", "v1", idx)
	other := r.PushImage("other", storagetest.ImageOpts{OCI: true})
	cross := r.PushIndex("cross", true, other) // a child the repository does not hold
	r.Tag("cross", "v1", cross)
	cur := r.PushImage("cur", storagetest.ImageOpts{})
	r.Tag("cur", "v1", cur)

	if err := os.WriteFile(v2("repositories/rev/_manifests/revisions/sha256", rev.Digest.Encoded(), "link"), []byte("sha256:"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Dir(v2("blobs/sha256", y.Digest.Encoded()[:2], y.Digest.Encoded(), "data"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(v2("repositories/cur/_manifests/tags/v1/current/link"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	au := audit(t, root, mark.Options{StartedAt: time.Now(), Compact: mark.CompactAll}, false)
	got := map[string]string{}
	for _, b := range au.Broken {
		got[b.Repo+":"+b.Tag] = b.Reason
	}
	want := map[string]string{
		"rev:v1":   "revision link of manifest " + rev.Digest.String() + " is corrupt",
		"idx:v1":   "child manifest " + y.Digest.String() + " missing from the blob store",
		"cross:v1": "child manifest " + other.Digest.String() + " has no revision link in the repository",
		"cur:v1":   "current link unreadable: ",
		// The missing child is an untagged revision a gc keeps.
		"idx:": "manifest " + y.Digest.String() + " missing from the blob store",
	}
	for k, w := range want {
		if !strings.HasPrefix(got[k], w) {
			t.Errorf("%s: reason %q, want %q...", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("broken %v, want %d entries", got, len(want))
	}
	if au.Healthy || len(au.Findings()) != 2 {
		t.Errorf("findings %v", au.Findings())
	}
}
