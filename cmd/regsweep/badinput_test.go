package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// The bad inputs of the issue, one test each, on the gc fixture (written by
// distribution's code) damaged on purpose. Each checks the exit status, that
// the output names the damaged path, and that nothing that might be needed
// went; where the damage leaves the rest readable, that the run still
// collects the rest.

// sd converts a digest to regsweep's.
func sd(t *testing.T, d digest.Digest) storage.Digest {
	t.Helper()
	x, err := storage.ParseDigest(d.String())
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// file returns the local path of a store key of the fixture.
func (f *fixture) file(key string) string {
	return filepath.Join(f.reg.Root, filepath.FromSlash(key))
}

func (f *fixture) write(t *testing.T, key string, data []byte) {
	t.Helper()
	p := f.file(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceWithFile replaces the folder (or file) at key with a file.
func (f *fixture) replaceWithFile(t *testing.T, key string, data []byte) {
	t.Helper()
	if err := os.RemoveAll(f.file(key)); err != nil {
		t.Fatal(err)
	}
	f.write(t, key, data)
}

// replaceWithDir replaces the file at key with a folder holding a file.
func (f *fixture) replaceWithDir(t *testing.T, key string) {
	t.Helper()
	if err := os.Remove(f.file(key)); err != nil {
		t.Fatal(err)
	}
	f.write(t, key+"/stray", []byte("x"))
}

// badRun runs gc --delete-untagged on f and checks the exit status and
// that the output names every path in names.
func badRun(t *testing.T, f *fixture, wantCode int, names ...string) (string, *report.Report) {
	t.Helper()
	code, out, rep := gc(t, append([]string{"--delete-untagged"}, f.where...)...)
	if code != wantCode {
		t.Errorf("exit %d, want %d", code, wantCode)
	}
	for _, n := range names {
		if !strings.Contains(out, n) {
			t.Errorf("the output does not name %s:\n%s", n, out)
		}
	}
	return out, rep
}

// assertNoBlobSwept checks that every blob of before is still there.
func assertNoBlobSwept(t *testing.T, f *fixture, before storagetest.State) {
	t.Helper()
	after := f.reg.State()
	for d := range before.Blobs {
		if !after.Blobs[d] {
			t.Errorf("blob %s was deleted, though the graph was incomplete", d)
		}
	}
}

// assertCollected checks that the run still collected the fixture's garbage
// outside the damaged part: the orphan blob and the untagged images of
// repositories other than skip.
func assertCollected(t *testing.T, f *fixture, skip string) {
	t.Helper()
	after := f.reg.State()
	if after.Blobs[f.orphan] {
		t.Error("the orphan blob survived: one bad input stopped the whole run")
	}
	for _, img := range f.untagged {
		if img.Repo != skip && after.Revisions[img.Repo+"@"+img.Digest.String()] {
			t.Errorf("untagged %s@%s survived: one bad input stopped the whole run", img.Repo, img.Digest)
		}
	}
}

// assertKept checks that the revisions and blobs of imgs are all there.
func assertKept(t *testing.T, f *fixture, imgs ...storagetest.Image) {
	t.Helper()
	after := f.reg.State()
	for _, img := range imgs {
		if !after.Revisions[img.Repo+"@"+img.Digest.String()] {
			t.Errorf("revision %s@%s was deleted", img.Repo, img.Digest)
		}
		for _, b := range append([]digest.Digest{img.Digest}, img.Blobs...) {
			if !after.Blobs[b] {
				t.Errorf("blob %s of %s@%s was deleted", b, img.Repo, img.Digest)
			}
		}
	}
}

// rawManifest puts payload as a manifest of team/app, tags it raw, and
// returns its digest and the key of its data.
func rawManifest(t *testing.T, f *fixture, payload []byte) (digest.Digest, string) {
	t.Helper()
	d := f.reg.PutRawManifest("team/app", payload)
	f.reg.Tag("team/app", "raw", storagetest.Image{Digest: d, MediaType: v1.MediaTypeImageManifest, Size: int64(len(payload))})
	return d, storage.BlobDataPath(sd(t, d))
}

// ociManifestReferencing returns an OCI manifest over config and layers,
// padded with an annotation of pad bytes.
func ociManifestReferencing(t *testing.T, mediaType string, pad int, blobs ...digest.Digest) []byte {
	t.Helper()
	desc := func(d digest.Digest) v1.Descriptor {
		return v1.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: 1}
	}
	m := v1.Manifest{MediaType: mediaType, Config: desc(blobs[0])}
	m.SchemaVersion = 2
	for _, b := range blobs[1:] {
		m.Layers = append(m.Layers, desc(b))
	}
	if pad > 0 {
		m.Annotations = map[string]string{"pad": strings.Repeat("x", pad)}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInputManifestNotJSON(t *testing.T) {
	t.Run("tagged", func(t *testing.T) {
		// What a tagged manifest references is unknown: no blob may go.
		f := newFixture(t)
		_, key := rawManifest(t, f, []byte("this is not JSON {"))
		before := f.reg.State()
		_, rep := badRun(t, f, exitIncomplete, key, "not valid JSON")
		assertNoBlobSwept(t, f, before)
		if rep.Blobs != 0 || rep.Kept.BlobsUnswept == 0 {
			t.Errorf("blobs deleted %d, unswept %d: want none deleted, some counted unswept", rep.Blobs, rep.Kept.BlobsUnswept)
		}
		f.assertServes(t)
	})
	t.Run("untagged", func(t *testing.T) {
		// An untagged manifest that cannot be parsed may be a referrer of a
		// kept one: its repository keeps its untagged manifests, and no
		// blob goes.
		f := newFixture(t)
		d := f.reg.PutRawManifest("team/app", []byte("\x00\x01 binary junk"))
		key := storage.BlobDataPath(sd(t, d))
		before := f.reg.State()
		_, rep := badRun(t, f, exitIncomplete, key)
		assertNoBlobSwept(t, f, before)
		assertKept(t, f, f.untagged[0])
		if len(rep.Doubts) == 0 || !strings.Contains(strings.Join(rep.Doubts, "\n"), d.String()) {
			t.Errorf("the report's doubts do not name %s: %q", d, rep.Doubts)
		}
		f.assertServes(t)
	})
	t.Run("content-not-matching-digest", func(t *testing.T) {
		f := newFixture(t)
		img := f.untagged[0]
		key := storage.BlobDataPath(sd(t, img.Digest))
		f.write(t, key, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:`+strings.Repeat("0", 64)+`"},"layers":[]}`))
		before := f.reg.State()
		badRun(t, f, exitIncomplete, key, "does not match its digest")
		assertNoBlobSwept(t, f, before)
		f.assertServes(t)
	})
}

func TestBadInputUnknownMediaType(t *testing.T) {
	f := newFixture(t)
	only := f.reg.PushBlob("team/app", 100) // referenced by the unknown manifest alone
	cfg := f.reg.PushBlob("team/app", 50)
	_, key := rawManifest(t, f, ociManifestReferencing(t, "application/vnd.example.thing.v1+json", 0, cfg, only))
	before := f.reg.State()
	badRun(t, f, exitIncomplete, key, "unknown manifest media type")
	assertNoBlobSwept(t, f, before)
	f.assertServes(t)
}

func TestBadInputManifestOver4MiB(t *testing.T) {
	f := newFixture(t)
	only := f.reg.PushBlob("team/app", 100)
	cfg := f.reg.PushBlob("team/app", 50)
	payload := ociManifestReferencing(t, v1.MediaTypeImageManifest, storage.MaxManifestSize, cfg, only)
	_, key := rawManifest(t, f, payload)
	before := f.reg.State()
	badRun(t, f, exitIncomplete, key, "limit")
	assertNoBlobSwept(t, f, before)
	if !f.reg.State().Blobs[only] {
		t.Error("the layer of the big manifest was deleted")
	}
	f.assertServes(t)
}

func TestBadInputKeptManifestMissingBlob(t *testing.T) {
	// A kept image whose layer is gone is reported broken, and the run goes
	// on: the rest is collected, and what the image still has stays.
	f := newFixture(t)
	img := f.reg.PushImage("team/app/debug", storagetest.ImageOpts{Layers: 2})
	f.reg.Tag("team/app/debug", "broken", img)
	f.reg.AgeAll(ageOfFixture)
	missing := img.Blobs[2]
	if err := os.RemoveAll(filepath.Dir(f.file(storage.BlobDataPath(sd(t, missing))))); err != nil {
		t.Fatal(err)
	}
	_, rep := badRun(t, f, exitOK, "team/app/debug", missing.String())
	if !slices.ContainsFunc(rep.Broken, func(b report.BrokenImage) bool {
		return b.Repo == "team/app/debug" && b.Tag == "broken" && strings.Contains(b.Reason, missing.String())
	}) {
		t.Errorf("broken images %+v: want team/app/debug:broken missing %s", rep.Broken, missing)
	}
	after := f.reg.State()
	for _, b := range append([]digest.Digest{img.Digest}, img.Blobs[:2]...) {
		if !after.Blobs[b] {
			t.Errorf("blob %s of the broken image was deleted", b)
		}
	}
	assertCollected(t, f, "")
	f.assertServes(t)
}

func TestBadInputRevisionLink(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content func(f *fixture) []byte
		reason  string
	}{
		{"empty", func(*fixture) []byte { return nil }, "empty link file"},
		{"garbage", func(*fixture) []byte { return []byte("sha256:not-hex\n") }, "garbage in link file"},
		{"other-digest", func(f *fixture) []byte { return []byte(f.untagged[1].Digest) }, "its path says"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The untagged revision would go; with its link damaged, a run
			// that reads links (--verify-links) keeps it with what it (or
			// the digest it names) references.
			f := newFixture(t)
			img := f.untagged[0]
			key := storage.RevisionLinkPath(img.Repo, sd(t, img.Digest))
			f.write(t, key, tc.content(f))
			code, out, _ := gc(t, append([]string{"--delete-untagged", "--verify-links"}, f.where...)...)
			if code != exitOK || !strings.Contains(out, key) || !strings.Contains(out, tc.reason) {
				t.Errorf("exit %d, want %d, naming %s (%s):\n%s", code, exitOK, key, tc.reason, out)
			}
			assertKept(t, f, img)
			if tc.name == "other-digest" {
				assertKept(t, f, f.untagged[1])
			}
			if _, err := os.Stat(f.file(key)); err != nil {
				t.Errorf("the damaged link was deleted: %v", err)
			}
			f.assertServes(t)
		})
		t.Run(tc.name+"/by-folder", func(t *testing.T) {
			// Without --verify-links a sha256 revision is known by its
			// folder, its link only stat'ed: the untagged revision goes as
			// its folder says (audit reports such a link).
			f := newFixture(t)
			img := f.untagged[0]
			key := storage.RevisionLinkPath(img.Repo, sd(t, img.Digest))
			f.write(t, key, tc.content(f))
			f.reg.AgeAll(ageOfFixture)
			code, out, _ := gc(t, append([]string{"--delete-untagged"}, f.where...)...)
			if code != exitOK || strings.Contains(out, tc.reason) {
				t.Errorf("exit %d, want %d, and the link not read:\n%s", code, exitOK, out)
			}
			if _, err := os.Stat(f.file(key)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the untagged revision's link is still there: %v", err)
			}
			f.assertServes(t)
		})
	}
}

func TestBadInputTagCurrentLink(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content []byte
		reason  string
	}{
		{"empty", nil, "empty link file"},
		{"garbage", []byte("latest\n"), "garbage in link file"},
		// Found by FuzzParseDigest: it parsed as the zero Digest, "no
		// current link", and compaction deleted the tag as half deleted.
		{"zero-digest", []byte("sha256:" + strings.Repeat("0", 64)), "all zeros"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The tag points nobody knows where: every manifest of the
			// repository stays, and so does what they reference.
			f := newFixture(t)
			key := storage.TagCurrentPath("team/app", "latest")
			f.write(t, key, tc.content)
			before := f.reg.State()
			_, rep := badRun(t, f, exitOK, key, tc.reason)
			after := f.reg.State()
			for r := range before.Revisions {
				if strings.HasPrefix(r, "team/app@") && !after.Revisions[r] {
					t.Errorf("revision %s deleted though the tag's target is unknown", r)
				}
			}
			for _, img := range f.untagged {
				if img.Repo == "team/app" {
					assertKept(t, f, img)
				}
			}
			if rep.Kept.RevisionsInDoubt == 0 {
				t.Error("the report counts no revision kept in doubt")
			}
			if _, err := os.Stat(f.file(key)); err != nil {
				t.Errorf("the damaged link was deleted: %v", err)
			}
			assertExists(t, f.file(storage.TagIndexDir("team/app", "latest")))
			assertCollected(t, f, "team/app")
		})
	}
	t.Run("names-a-missing-manifest", func(t *testing.T) {
		// A tag pointing at a manifest that is not stored is a broken image;
		// the rest goes on.
		f := newFixture(t)
		ghost := digest.FromString("never pushed")
		f.write(t, storage.TagCurrentPath("team/app/debug", "ghost"), []byte(ghost))
		_, rep := badRun(t, f, exitOK, "team/app/debug:ghost", "missing from the blob store")
		if !slices.ContainsFunc(rep.Broken, func(b report.BrokenImage) bool {
			return b.Repo == "team/app/debug" && b.Tag == "ghost" && b.Digest == ghost.String()
		}) {
			t.Errorf("broken images %+v: want team/app/debug:ghost", rep.Broken)
		}
		assertCollected(t, f, "")
		f.assertServes(t)
	})
}

// ageOfFixture is an age for files added to a fixture, as old as newFixture
// makes its own.
var ageOfFixture = time.Now().Add(-48 * time.Hour)

func TestBadInputFileWhereFolderBelongs(t *testing.T) {
	t.Run("tags-folder", func(t *testing.T) {
		// team/app's tags cannot be listed: the repository is left alone
		// and, since its tags may reach anything, no blob goes.
		f := newFixture(t)
		key := storage.TagsDir("team/app")
		f.replaceWithFile(t, key, []byte("x"))
		before := f.reg.State()
		_, rep := badRun(t, f, exitIncomplete, key)
		assertNoBlobSwept(t, f, before)
		assertKept(t, f, f.untagged[0])
		if !slices.ContainsFunc(rep.Errors, func(e string) bool {
			return strings.Contains(e, "team/app left alone and no blob swept") && strings.Contains(e, key)
		}) {
			t.Errorf("the report's errors do not say why: %q", rep.Errors)
		}
	})
	t.Run("tag-current-folder", func(t *testing.T) {
		// team/app:latest has a file where its current folder belongs: the
		// tag is damaged, not half deleted; it stays, and so does every
		// manifest it may point at.
		f := newFixture(t)
		key := storage.TagDir("team/app", "latest") + "/current"
		f.replaceWithFile(t, key, []byte("x"))
		badRun(t, f, exitOK, key, "a file where the layout has a folder")
		assertExists(t, f.file(key), f.file(storage.TagIndexDir("team/app", "latest")))
		assertKept(t, f, f.untagged[0])
		assertCollected(t, f, "team/app")
	})
	t.Run("blob-prefix-folder", func(t *testing.T) {
		f := newFixture(t)
		key := storage.BlobsDir() + "/sha256/zz"
		f.write(t, key, []byte("x"))
		badRun(t, f, exitOK, key, "not a blob prefix folder")
		if _, err := os.Stat(f.file(key)); err != nil {
			t.Error("the stray file was deleted")
		}
		assertCollected(t, f, "")
		f.assertServes(t)
	})
	t.Run("repository-folder", func(t *testing.T) {
		f := newFixture(t)
		key := storage.RepositoriesDir() + "/team/notes.txt"
		f.write(t, key, []byte("x"))
		badRun(t, f, exitOK, key, "file in the repository tree")
		if _, err := os.Stat(f.file(key)); err != nil {
			t.Error("the stray file was deleted")
		}
		assertCollected(t, f, "")
	})
	t.Run("revision-folder", func(t *testing.T) {
		// A file named as a revision folder: the registry cannot serve it,
		// nothing reads it, and it stays.
		f := newFixture(t)
		key := storage.RevisionsDir("team/list") + "/sha256/" + strings.Repeat("ab", 32)
		f.write(t, key, []byte("x"))
		badRun(t, f, exitOK, key, "not a link folder")
		if _, err := os.Stat(f.file(key)); err != nil {
			t.Error("the stray file was deleted")
		}
		assertCollected(t, f, "")
		f.assertServes(t)
	})
}

func TestBadInputFolderWhereFileBelongs(t *testing.T) {
	t.Run("revision-link", func(t *testing.T) {
		f := newFixture(t)
		img := f.untagged[0]
		key := storage.RevisionLinkPath(img.Repo, sd(t, img.Digest))
		f.replaceWithDir(t, key)
		badRun(t, f, exitOK, key, "not a regular file")
		after := f.reg.State()
		for _, b := range append([]digest.Digest{img.Digest}, img.Blobs...) {
			if !after.Blobs[b] {
				t.Errorf("blob %s of the revision was deleted", b)
			}
		}
		assertExists(t, f.file(key+"/stray"))
		f.assertServes(t)
	})
	t.Run("tag-current-link", func(t *testing.T) {
		f := newFixture(t)
		key := storage.TagCurrentPath("team/app", "latest")
		f.replaceWithDir(t, key)
		badRun(t, f, exitOK, key, "not a regular file")
		assertKept(t, f, f.untagged[0])
		assertCollected(t, f, "team/app")
	})
	t.Run("blob-data", func(t *testing.T) {
		// The orphan blob's data is a folder: left alone, not deleted.
		f := newFixture(t)
		key := storage.BlobDataPath(sd(t, f.orphan))
		f.replaceWithDir(t, key)
		badRun(t, f, exitOK, storage.BlobDir(sd(t, f.orphan)), "blob folder without readable data")
		if _, err := os.Stat(f.file(key + "/stray")); err != nil {
			t.Error("the folder in place of the blob's data was deleted")
		}
		f.assertServes(t)
	})
}

func TestBadInputBlobFolderWithoutData(t *testing.T) {
	f := newFixture(t)
	dir := storage.BlobDir(sd(t, f.orphan))
	if err := os.Remove(f.file(dir + "/data")); err != nil {
		t.Fatal(err)
	}
	f.write(t, dir+"/data.partial", []byte("x"))
	badRun(t, f, exitOK, dir, "blob folder without readable data")
	if _, err := os.Stat(f.file(dir + "/data.partial")); err != nil {
		t.Error("the blob folder was emptied")
	}
	assertCollected(t, f, "team/app") // the orphan's layer link may stay
	f.assertServes(t)
}

// outsideFolder makes a folder outside the registry root holding a file, and
// returns both paths.
func outsideFolder(t *testing.T) (dir, file string) {
	t.Helper()
	dir = t.TempDir()
	file = filepath.Join(dir, "precious")
	if err := os.WriteFile(file, []byte("not the registry's"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, file
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func assertExists(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s is gone: %v", p, err)
		}
	}
}

func TestBadInputSymlink(t *testing.T) {
	t.Run("repository", func(t *testing.T) {
		// repositories/ext is a symlink to a real repository outside the
		// root, whose tag uses blobs of the root that nothing else does.
		// Distribution follows the link and serves ext:v1; regsweep does not
		// follow it, so what ext may reference is unknown: no blob goes.
		f := newFixture(t)
		img := f.reg.PushImage("ext", storagetest.ImageOpts{Layers: 2})
		f.reg.Tag("ext", "v1", img)
		f.reg.AgeAll(ageOfFixture)
		outside := t.TempDir()
		ext := f.file(storage.RepoDir("ext"))
		if err := os.Rename(ext, filepath.Join(outside, "ext")); err != nil {
			t.Fatal(err)
		}
		symlink(t, filepath.Join(outside, "ext"), ext)
		f.keptTags = append(f.keptTags, "ext:v1")
		f.assertServes(t) // distribution serves it through the link
		before := f.reg.State()
		_, rep := badRun(t, f, exitIncomplete, storage.RepoDir("ext"))
		assertNoBlobSwept(t, f, before)
		assertExists(t, filepath.Join(outside, "ext", "_manifests", "tags", "v1", "current", "link"))
		if !slices.ContainsFunc(rep.Errors, func(e string) bool { return strings.Contains(e, "ext") }) {
			t.Errorf("the report's errors do not say why no blob went: %q", rep.Errors)
		}
		f.assertServes(t)
	})
	t.Run("tag", func(t *testing.T) {
		// A tag folder of team/app is a symlink to a tag outside the root
		// pointing at an untagged manifest: distribution serves the tag, so
		// the manifest must stay.
		f := newFixture(t)
		img := f.untagged[0]
		outside := t.TempDir()
		if err := os.MkdirAll(filepath.Join(outside, "ext", "current"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(outside, "ext", "current", "link"), []byte(img.Digest), 0o644); err != nil {
			t.Fatal(err)
		}
		symlink(t, filepath.Join(outside, "ext"), f.file(storage.TagDir("team/app", "ext")))
		f.keptTags = append(f.keptTags, "team/app:ext")
		f.assertServes(t)
		badRun(t, f, exitIncomplete, storage.TagDir("team/app", "ext"))
		assertKept(t, f, img)
		assertExists(t, filepath.Join(outside, "ext", "current", "link"))
		f.assertServes(t)
	})
	t.Run("blob-prefix", func(t *testing.T) {
		// blobs/sha256/<xx> is a symlink to a folder outside holding what
		// looks like an old unreferenced blob: never followed, never deleted.
		f := newFixture(t)
		dir, precious := outsideFolder(t)
		hx := "ee" + strings.Repeat("0", 62)
		fake := filepath.Join(dir, hx, "data")
		if err := os.MkdirAll(filepath.Dir(fake), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fake, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		key := storage.BlobsDir() + "/sha256/ee"
		symlink(t, dir, f.file(key))
		badRun(t, f, exitOK, key)
		assertExists(t, precious, fake, f.file(key))
		assertCollected(t, f, "")
	})
	t.Run("blob-data", func(t *testing.T) {
		// The orphan blob's data is a symlink to a file outside: left alone.
		f := newFixture(t)
		_, precious := outsideFolder(t)
		key := storage.BlobDataPath(sd(t, f.orphan))
		if err := os.Remove(f.file(key)); err != nil {
			t.Fatal(err)
		}
		symlink(t, precious, f.file(key))
		badRun(t, f, exitOK, storage.BlobDir(sd(t, f.orphan)), "not a regular file")
		assertExists(t, precious, f.file(key))
		f.assertServes(t)
	})
	t.Run("layer-link-folder", func(t *testing.T) {
		f := newFixture(t)
		dir, precious := outsideFolder(t)
		key := storage.LayersDir("team/app") + "/sha256/" + strings.Repeat("cd", 32)
		symlink(t, dir, f.file(key))
		badRun(t, f, exitIncomplete, key)
		assertExists(t, precious, f.file(key))
		f.assertServes(t)
	})
}

func TestBadInputUnreadableFolder(t *testing.T) {
	check := func(t *testing.T, f *fixture, before storagetest.State, key string) {
		t.Helper()
		_, rep := badRun(t, f, exitIncomplete, key)
		assertNoBlobSwept(t, f, before)
		assertKept(t, f, f.untagged[0])
		if !slices.ContainsFunc(rep.Errors, func(e string) bool {
			return strings.Contains(e, "team/app left alone and no blob swept") && strings.Contains(e, "permission denied")
		}) {
			t.Errorf("the report's errors do not say why: %q", rep.Errors)
		}
	}
	key := storage.TagsDir("team/app")
	t.Run("chmod", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root: permission bits do not stop reads (the injected subtest covers it)")
		}
		f := newFixture(t)
		before := f.reg.State()
		p := f.file(key)
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(p, 0o755) })
		check(t, f, before, key)
	})
	t.Run("injected", func(t *testing.T) {
		// What the store returns for a folder it may not read, without
		// needing an unprivileged user.
		f := newFixture(t)
		before := f.reg.State()
		var faults []storagetest.Fault
		for n := 1; n <= 4; n++ { // the walk and the recheck
			faults = append(faults, storagetest.Fault{Op: storagetest.OpReadDir, N: n, Err: &fs.PathError{Op: "open", Path: f.file(key), Err: fs.ErrPermission}})
		}
		fy := storagetest.NewFaulty(nil, faults...)
		fy.Counted = func(k string) bool { return k == key }
		withFaulty(t, f.reg.Root, fy)
		check(t, f, before, key)
	})
}

func TestBadInputForeignRepositoryName(t *testing.T) {
	for _, name := range []string{"Foo/Bar", "a/_b", "UPPER"} {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			// Written as a valid repository by distribution, then renamed:
			// a tagged image, an untagged one and an orphan layer link. It is
			// kept whole, reported, and what it references stays.
			f := newFixture(t)
			valid := "foreign/x"
			tagged := f.reg.PushImage(valid, storagetest.ImageOpts{Layers: 1})
			f.reg.Tag(valid, "v1", tagged)
			untagged := f.reg.PushImage(valid, storagetest.ImageOpts{Layers: 1})
			orphan := f.reg.PushBlob(valid, 64)
			f.reg.AgeAll(ageOfFixture)
			dst := f.file(storage.RepoDir(name))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(f.file(storage.RepoDir(valid)), dst); err != nil {
				t.Fatal(err)
			}
			files := treeFiles(t, dst)
			_, rep := badRun(t, f, exitOK, storage.RepoDir(name), "outside the reference grammar")
			if got := treeFiles(t, dst); !slices.Equal(got, files) {
				t.Errorf("files under %s changed:\nbefore %q\nafter  %q", name, files, got)
			}
			after := f.reg.State()
			for _, b := range append(append([]digest.Digest{tagged.Digest, untagged.Digest, orphan}, tagged.Blobs...), untagged.Blobs...) {
				if !after.Blobs[b] {
					t.Errorf("blob %s linked from %s was deleted", b, name)
				}
			}
			for _, r := range rep.Repositories {
				if r.Name == name && r.Counts != (report.Repository{}).Counts {
					t.Errorf("the report counts deletions in %s: %+v", name, r.Counts)
				}
			}
			assertCollected(t, f, "")
			f.assertServes(t)
		})
	}
}

// treeFiles lists the files under dir, relative to it.
func treeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
