package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// entry is one file of a hand-made archive.
type entry struct {
	name, content string
	typ           byte // tar.TypeReg when zero
}

// makeArchive builds an undo archive whose index lists keys (the entries'
// names when nil).
func makeArchive(t *testing.T, keys []string, entries ...entry) []byte {
	t.Helper()
	if keys == nil {
		for _, e := range entries {
			keys = append(keys, e.name)
		}
	}
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	idx, _ := json.Marshal(ArchiveIndex{Version: ArchiveVersion, Location: "/r", Place: &Place{Kind: KindFilesystem, Dir: "/r"}, Keys: keys})
	add := func(name string, body []byte, typ byte) {
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1e9, 0), Typeflag: typ, Format: tar.FormatPAX}
		if typ != tar.TypeReg {
			h.Size, h.Linkname = 0, "x"
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write(body)
		}
	}
	add(archiveIndexName, idx, 0)
	for _, e := range entries {
		add(e.name, []byte(e.content), e.typ)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// smallRegistry is a layout with one blob, its links and an upload.
type smallRegistry struct {
	root                 string
	blob, other          string // contents
	blobKey, otherKey    string
	layerKey, currentKey string
	uploadData           string
	digest               Digest
}

func sha(content string) Digest {
	s := sha256.Sum256([]byte(content))
	return DigestOfSum256(s)
}

func newSmallRegistry(t *testing.T) *smallRegistry {
	r := &smallRegistry{root: t.TempDir(), blob: "live blob", other: "deleted blob"}
	r.digest = sha(r.blob)
	r.blobKey, r.otherKey = BlobDataPath(r.digest), BlobDataPath(sha(r.other))
	r.layerKey, r.currentKey = LayerLinkPath("app", r.digest), TagCurrentPath("app", "v1")
	r.uploadData = UploadDir("app", "u1") + "/data"
	writeFile(t, r.root, r.blobKey, r.blob)
	writeFile(t, r.root, r.layerKey, r.digest.String())
	writeFile(t, r.root, r.currentKey, r.digest.String())
	writeFile(t, r.root, r.uploadData, "partial")
	writeFile(t, r.root, "outside", "file at the root")
	return r
}

// tree is every file under root with its content, folders marked.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			m[rel] = "<dir>"
			return nil
		}
		b, _ := os.ReadFile(p)
		m[rel] = string(b)
		return nil
	})
	return m
}

func opener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func restoreBytes(t *testing.T, s Store, archive []byte) (*RestoreCheck, int, error) {
	t.Helper()
	c, err := CheckRestore(context.Background(), s, bytes.NewReader(archive), nil)
	if err != nil {
		return nil, 0, err
	}
	n, err := c.Write(context.Background(), s, opener(archive), nil)
	return c, n, err
}

func TestRestoreRefusesABadArchiveWhole(t *testing.T) {
	t.Parallel()
	r := newSmallRegistry(t)
	hx := r.digest.Hex()
	otherDigest := sha(r.other)
	good := entry{BlobDataPath(otherDigest), r.other, 0}
	// A repository folder that is a symlink to another, which holds sub/.
	if err := os.MkdirAll(filepath.Join(r.root, filepath.FromSlash(RepoDir("app/sub"))), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("app", filepath.Join(r.root, filepath.FromSlash(RepoDir("linked")))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		keys    []string // index; the entries' names when nil
		entries []entry
		want    string
	}{
		{"dot dot out of an upload onto a live blob", []string{good.name}, []entry{good, {UploadDir("app", "u1") + "/../../../../../blobs/sha256/" + hx[:2] + "/" + hx + "/data", "evil", 0}}, "not a key of the layout"},
		{"dot dot to the root", []string{good.name}, []entry{good, {UploadDir("app", "u1") + "/../../../../../../../outside", "evil", 0}}, "not a key of the layout"},
		{"upload id ..", []string{good.name}, []entry{good, {RepoDir("app") + "/_uploads/../_layers/sha256/" + hx + "/link", "x", 0}}, "not a key of the layout"},
		{"upload file .", []string{good.name}, []entry{good, {UploadDir("app", "u1") + "/./data", "x", 0}}, "not a key of the layout"},
		{"empty segment", []string{good.name}, []entry{good, {UploadDir("app", "u1") + "//data", "x", 0}}, "not a key of the layout"},
		{"outside the layout", []string{good.name}, []entry{good, {"outside", "evil", 0}}, "not a key of the layout"},
		{"absolute", []string{good.name}, []entry{good, {"/" + r.blobKey, "evil", 0}}, "not a key of the layout"},
		{"symlink entry", []string{good.name}, []entry{good, {UploadDir("app", "u2") + "/data", "", tar.TypeSymlink}}, "not a regular file"},
		{"folder entry", []string{good.name}, []entry{good, {UploadDir("app", "u2"), "", tar.TypeDir}}, "not a regular file"},
		{"not in the index", []string{good.name}, []entry{good, {UploadDir("app", "u2") + "/data", "x", 0}}, "not among the keys its index lists"},
		{"twice", nil, []entry{good, good}, "comes twice"},
		{"index lists a bad key", []string{good.name, UploadDir("app", "..") + "/data"}, []entry{good}, "index lists"},
		{"index lists a dot dot key", nil, []entry{good, {UploadDir("app", "u1") + "/../../_layers/sha256/" + hx + "/link", r.digest.String(), 0}}, "index lists"},
		{"blob content not its digest", nil, []entry{good, {BlobDataPath(sha("x")), "y", 0}}, "content hashes to"},
		{"layer link to another digest", nil, []entry{good, {LayerLinkPath("app", otherDigest), r.digest.String(), 0}}, "its folder names"},
		{"revision link garbage", nil, []entry{good, {RevisionLinkPath("app", otherDigest), "garbage", 0}}, "not a link file"},
		{"tag history entry with a newline", nil, []entry{good, {TagIndexLinkPath("app", "v1", otherDigest), otherDigest.String() + "\n", 0}}, "not a link file"},
		{"current link garbage", nil, []entry{good, {TagCurrentPath("app", "v2"), "sha256:zz", 0}}, "not a link file"},
		{"huge link", nil, []entry{good, {LayerLinkPath("app", otherDigest), strings.Repeat("a", 300), 0}}, "no size for it"},
		{"replaces a live blob", nil, []entry{good, {r.blobKey, "other content", 0}}, "content hashes to"},
		{"replaces a tag", nil, []entry{good, {r.currentKey, otherDigest.String(), 0}}, "other content"},
		{"replaces an upload file", nil, []entry{good, {r.uploadData, "changed", 0}}, "other content"},
		{"writes through a file as a folder", nil, []entry{good, {r.uploadData + "/x", "x", 0}}, "folder"},
		{"through a symlinked repository", nil, []entry{good, {LayerLinkPath("linked/sub", otherDigest), otherDigest.String(), 0}}, "nothing restored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tree(t, r.root)
			s, err := OpenFS(r.root)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, n, err := restoreBytes(t, s, makeArchive(t, tc.keys, tc.entries...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("restore: %d written, err %v; want a refusal with %q", n, err, tc.want)
			}
			if after := tree(t, r.root); !equalTrees(before, after) {
				t.Errorf("a refused archive changed the tree:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func equalTrees(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestRestoreWritesOnlyWhatIsMissing(t *testing.T) {
	t.Parallel()
	r := newSmallRegistry(t)
	s, err := OpenFS(r.root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	otherDigest := sha(r.other)
	archive := makeArchive(t, nil,
		entry{r.blobKey, r.blob, 0},                  // there, same content
		entry{r.currentKey, r.digest.String(), 0},    // there, same content
		entry{BlobDataPath(otherDigest), r.other, 0}, // missing
		entry{LayerLinkPath("app", otherDigest), otherDigest.String(), 0},
		entry{TagIndexLinkPath("new/repo", "v1", otherDigest), otherDigest.String(), 0},
		entry{UploadDir("app", "u2") + "/hashstates/sha256/0", "state", 0},
	)
	c, n, err := restoreBytes(t, s, archive)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 || c.Present != 2 || c.Files != 6 {
		t.Errorf("written %d, present %d of %d; want 4, 2 of 6", n, c.Present, c.Files)
	}
	got := tree(t, r.root)
	if got[filepath.FromSlash(BlobDataPath(otherDigest))] != r.other || got[filepath.FromSlash(UploadDir("app", "u2")+"/hashstates/sha256/0")] != "state" {
		t.Errorf("missing files not restored: %v", got)
	}
	fi, err := os.Stat(filepath.Join(r.root, filepath.FromSlash(BlobDataPath(otherDigest))))
	if err != nil || !fi.ModTime().Equal(time.Unix(1e9, 0)) {
		t.Errorf("restored blob: %v, modified %v; want the archived time", err, fi.ModTime())
	}
	for k := range got {
		if strings.Contains(k, ".regsweep-") {
			t.Errorf("temporary file left: %s", k)
		}
	}
	// A second restore finds everything there.
	c, n, err = restoreBytes(t, s, archive)
	if err != nil || n != 0 || c.Present != 6 {
		t.Errorf("second restore: %d written, %v present, %v", n, c, err)
	}
}

func TestRestoreRefusesAnArchiveChangedBetweenCheckAndWrite(t *testing.T) {
	t.Parallel()
	r := newSmallRegistry(t)
	s, err := OpenFS(r.root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := sha(r.other)
	checked := makeArchive(t, nil, entry{BlobDataPath(d), r.other, 0})
	c, err := CheckRestore(context.Background(), s, bytes.NewReader(checked), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := tree(t, r.root)
	swapped := makeArchive(t, nil, entry{BlobDataPath(d), "deleted blox", 0})
	if n, err := c.Write(context.Background(), s, opener(swapped), nil); err == nil || !strings.Contains(err.Error(), "changed since it was checked") {
		t.Fatalf("write of a swapped archive: %d, %v", n, err)
	}
	if !equalTrees(before, tree(t, r.root)) {
		t.Error("a swapped archive wrote")
	}
}

// TestRestoreTakesTheFoldersOwnerAndMode runs as root: restored files and the
// folders made for them belong to the owner of the folder they are written
// into, with its mode (files without execute bits).
func TestRestoreTakesTheFoldersOwnerAndMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	t.Parallel()
	r := newSmallRegistry(t)
	const uid, gid = 4321, 4322
	filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			err = os.Lchown(p, uid, gid)
		}
		if err == nil && d.IsDir() {
			err = os.Chmod(p, 0o770|fs.ModeSetgid)
		}
		if err != nil {
			t.Fatal(err)
		}
		return nil
	})
	s, err := OpenFS(r.root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := sha(r.other)
	if _, _, err := restoreBytes(t, s, makeArchive(t, nil,
		entry{BlobDataPath(d), r.other, 0},
		entry{TagIndexLinkPath("team/new", "v1", d), d.String(), 0},
	)); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{BlobDataPath(d), BlobDir(d), BlobPrefixDir(SHA256, d.Hex()[:2]),
		TagIndexLinkPath("team/new", "v1", d), RepoDir("team"), RepoDir("team/new"), TagIndexDir("team/new", "v1")} {
		fi, err := os.Lstat(filepath.Join(r.root, filepath.FromSlash(key)))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		want := fs.FileMode(0o660)
		if fi.IsDir() {
			want = 0o770 | fs.ModeSetgid
		}
		if st.Uid != uid || st.Gid != gid || fi.Mode()&(fs.ModePerm|fs.ModeSetgid) != want {
			t.Errorf("%s: owner %d:%d mode %v; want %d:%d %v", key, st.Uid, st.Gid, fi.Mode(), uid, gid, want)
		}
	}
}

func TestArchiveRecordedLocation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		idx  ArchiveIndex
		want string // "" for a usable record
	}{
		{ArchiveIndex{Version: 2, Place: &Place{Kind: KindFilesystem, Dir: "/var/lib/registry"}}, ""},
		{ArchiveIndex{Version: 2, Place: &Place{Kind: KindS3, Bucket: "b", Root: "r", Endpoint: "http://minio:9000"}}, ""},
		{ArchiveIndex{Version: 2, Place: &Place{Kind: KindFilesystem, Dir: "reg"}}, "not an absolute"},
		{ArchiveIndex{Version: 2, Place: &Place{Kind: KindFilesystem, Dir: "/a/../b"}}, "not an absolute"},
		{ArchiveIndex{Version: 2, Place: &Place{Kind: KindS3, Bucket: "b", Root: "a/../b"}}, "not a plain"},
		{ArchiveIndex{Version: 2, Place: &Place{Kind: "gcs"}}, "unknown kind"},
		{ArchiveIndex{Version: 1, Location: "/var/lib/registry"}, ""},
		{ArchiveIndex{Version: 1, Location: "reg"}, "does not say where"},
		{ArchiveIndex{Version: 1, Location: "./reg/"}, "does not say where"},
		{ArchiveIndex{Version: 1, Location: "s3://bucket/registry"}, "does not say where"},
	} {
		_, err := tc.idx.Recorded()
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Recorded(%+v) = %v, want %q", tc.idx, err, tc.want)
		}
	}
}

// recordingFS records the order of a restore's creates.
type recordingFS struct {
	*FS
	created []string
}

func (r *recordingFS) Create(ctx context.Context, key string, rd io.Reader, size int64, mtime time.Time) error {
	r.created = append(r.created, key)
	return r.FS.Create(ctx, key, rd, size, mtime)
}

// TestRestoreWritesWhatIsReferencedFirst: whatever the archive's order (a
// sweep's: tags first), blobs and uploads are restored first, then layer
// and revision links, then tag history, then tags.
func TestRestoreWritesWhatIsReferencedFirst(t *testing.T) {
	t.Parallel()
	r := newSmallRegistry(t)
	fsys, err := OpenFS(r.root)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	s := &recordingFS{FS: fsys}
	d := sha(r.other)
	archive := makeArchive(t, nil,
		entry{TagCurrentPath("app", "v2"), d.String(), 0},
		entry{TagIndexLinkPath("app", "v2", d), d.String(), 0},
		entry{RevisionLinkPath("app", d), d.String(), 0},
		entry{LayerLinkPath("app", d), d.String(), 0},
		entry{UploadDir("app", "u2") + "/startedat", "2026-01-01T00:00:00Z", 0},
		entry{BlobDataPath(d), r.other, 0},
	)
	c, err := CheckRestore(context.Background(), s, bytes.NewReader(archive), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(context.Background(), s, opener(archive), nil); err != nil {
		t.Fatal(err)
	}
	last := 0
	for _, key := range s.created {
		k, _ := ParseKey(key)
		if rank := restoreRank(k.Kind); rank < last {
			t.Errorf("restore order %v: %s after something of a later rank", s.created, key)
		} else {
			last = rank
		}
	}
	if len(s.created) != 6 || !strings.HasSuffix(s.created[5], "current/link") {
		t.Errorf("restore order %v", s.created)
	}
}
