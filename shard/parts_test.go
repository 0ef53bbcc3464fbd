package shard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/regsweep/regsweep/storage"
)

// testStore is a filesystem store on an empty registry in a temporary folder.
func testStore(t *testing.T) (*storage.FS, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, storage.V2), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := storage.OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// digestIn is a sha256 digest of bucket b, told apart by n.
func digestIn(t *testing.T, b, n int) storage.Digest {
	t.Helper()
	d, err := storage.ParseDigest(fmt.Sprintf("sha256:%02x%062x", b, n+1))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// repoOf is a repository name that mark shard i of n owns.
func repoOf(t *testing.T, i, n int) string {
	t.Helper()
	for k := range 1000 {
		name := fmt.Sprintf("team/app-%d", k)
		if RepoShard(name, n) == i {
			return name
		}
	}
	t.Fatalf("no repository of shard %d of %d", i, n)
	return ""
}

var testRun = &Run{Format: Format, ID: "r1", Shards: 3, StartedAt: time.Unix(1e9, 0)}

// TestPartsRoundTrip: what a mark shard writes, the sweep reads back, part
// by part, record for record; the commit's records say each part's size,
// sha256 and counts.
func TestPartsRoundTrip(t *testing.T) {
	s, _ := testStore(t)
	repo := repoOf(t, 1, testRun.Shards)
	sha512, err := storage.ParseDigest("sha512:" + strings.Repeat("ab", 64))
	if err != nil {
		t.Fatal(err)
	}
	var m Marks
	want := map[int][]string{}
	for b := range []int{0, 7, 255} {
		bucket := []int{0, 7, 255}[b]
		for n := range 3 {
			d := digestIn(t, bucket, n)
			m.Mark(d)
			want[bucket] = append(want[bucket], "m "+d.String())
		}
		d := digestIn(t, bucket, 9)
		m.AddLink(Link{Repo: repo, Digest: d, ModTime: 42})
		want[bucket] = append(want[bucket], fmt.Sprintf("l %s %s 42", repo, d))
	}
	m.Mark(sha512)
	m.AddLink(Link{Repo: repo, Digest: sha512, ModTime: 1})
	// An alias link is routed by its target.
	alias := Link{Repo: repo, Digest: sha512, Target: digestIn(t, 7, 5), ModTime: 3}
	m.AddLink(alias)
	want[7] = append(want[7], fmt.Sprintf("a %s %s %s 3", repo, sha512, alias.Target))
	want[-1] = []string{"m " + sha512.String(), fmt.Sprintf("l %s %s 1", repo, sha512)}

	infos, err := m.Write(context.Background(), s, testRun.ID, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(infos); got != 4 || infos[3].Bucket != -1 {
		t.Fatalf("parts %+v: want buckets 0, 7, 255 and the other part last", infos)
	}
	for _, info := range infos {
		var got []string
		err := ReadPart(context.Background(), s, testRun, 1, info, func(marks []storage.Digest, links []Link) {
			for _, d := range marks {
				got = append(got, "m "+d.String())
			}
			for _, l := range links {
				if l.Target.IsZero() {
					got = append(got, fmt.Sprintf("l %s %s %d", l.Repo, l.Digest, l.ModTime))
				} else {
					got = append(got, fmt.Sprintf("a %s %s %s %d", l.Repo, l.Digest, l.Target, l.ModTime))
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		w := slices.Clone(want[info.Bucket])
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("bucket %d: read %q, wrote %q", info.Bucket, got, w)
		}
	}
}

// storedPart writes raw, compressed, as mark shard 1's part of bucket b and
// returns the commit record that names it rightly.
func storedPart(t *testing.T, s storage.Store, b int, raw string, marks, links int) PartInfo {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	data := enc.EncodeAll([]byte(raw), nil)
	return storeRaw(t, s, b, data, int64(len(raw)), marks, links)
}

func storeRaw(t *testing.T, s storage.Store, b int, data []byte, rawSize int64, marks, links int) PartInfo {
	t.Helper()
	if err := replace(context.Background(), s, MarkPartKey(testRun.ID, 1, b), data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return PartInfo{Bucket: b, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), RawSize: rawSize, Marks: marks, Links: links}
}

// TestReadPartRefuses: a part that is not what its commit names, or that
// holds a record it must not, is refused with the part's path and why;
// nothing of it is handed on.
func TestReadPartRefuses(t *testing.T) {
	s, _ := testStore(t)
	own, other := repoOf(t, 1, testRun.Shards), repoOf(t, 2, testRun.Shards)
	d7, d8 := digestIn(t, 7, 1), digestIn(t, 8, 1)
	good := partHeader + "m " + d7.String() + "\n"
	for _, c := range []struct {
		name string
		info func() PartInfo
		says string
	}{
		{"truncated", func() PartInfo {
			i := storedPart(t, s, 7, good, 1, 0)
			data, _, _ := s.ReadFile(context.Background(), MarkPartKey(testRun.ID, 1, 7), 1<<20)
			storeRaw(t, s, 7, data[:len(data)-2], i.RawSize, 1, 0)
			return i
		}, "not the file its commit names"},
		{"another sha256", func() PartInfo {
			i := storedPart(t, s, 7, good, 1, 0)
			i.SHA256 = strings.Repeat("0", 64)
			return i
		}, "not the file its commit names"},
		{"another size", func() PartInfo {
			i := storedPart(t, s, 7, good, 1, 0)
			i.Size--
			return i
		}, "too large"},
		{"missing", func() PartInfo {
			i := storedPart(t, s, 7, good, 1, 0)
			i.Bucket = 9
			return i
		}, "not found"},
		{"not zstd", func() PartInfo { return storeRaw(t, s, 7, []byte(good), int64(len(good)), 1, 0) }, "zstd"},
		{"another decompressed size", func() PartInfo {
			i := storedPart(t, s, 7, good, 1, 0)
			i.RawSize++
			return i
		}, "decompressed"},
		{"another count", func() PartInfo { return storedPart(t, s, 7, good, 2, 0) }, "commit says"},
		{"no header", func() PartInfo {
			raw := "m " + d7.String() + "\n"
			return storedPart(t, s, 7, raw+strings.Repeat("\n", len(partHeader)), 1, 0)
		}, "no part header"},
		{"a digest of another bucket", func() PartInfo { return storedPart(t, s, 7, good+"m "+d8.String()+"\n", 2, 0) }, "does not belong to this part"},
		{"a link to a digest of another bucket", func() PartInfo {
			return storedPart(t, s, 7, good+fmt.Sprintf("l %s %s 0\n", own, d8), 1, 1)
		}, "does not belong to this part"},
		{"a sha256 digest in the other part", func() PartInfo { return storedPart(t, s, -1, good, 1, 0) }, "does not belong to this part"},
		{"a link of another shard's repository", func() PartInfo {
			return storedPart(t, s, 7, good+fmt.Sprintf("l %s %s 0\n", other, d7), 1, 1)
		}, "does not own"},
		{"a link of a bad repository name", func() PartInfo {
			return storedPart(t, s, 7, good+fmt.Sprintf("l %s %s 0\n", "Team/../x", d7), 1, 1)
		}, "repository"},
		{"a negative time", func() PartInfo {
			return storedPart(t, s, 7, good+fmt.Sprintf("l %s %s -1\n", own, d7), 1, 1)
		}, "modification time"},
		{"a digest not in canonical form", func() PartInfo {
			return storedPart(t, s, 7, partHeader+"m "+strings.ToUpper(d7.String())+"\n", 1, 0)
		}, "invalid digest"},
		{"an unknown record", func() PartInfo { return storedPart(t, s, 7, good+"x y\n", 1, 0) }, "not a record"},
		{"an unterminated line", func() PartInfo { return storedPart(t, s, 7, strings.TrimSuffix(good, "\n"), 1, 0) }, "unterminated"},
		{"a line too long", func() PartInfo {
			return storedPart(t, s, 7, good+"m "+strings.Repeat("a", 5000)+"\n", 2, 0)
		}, "too long"},
	} {
		t.Run(c.name, func(t *testing.T) {
			info := c.info()
			called := false
			err := ReadPart(context.Background(), s, testRun, 1, info, func([]storage.Digest, []Link) { called = true })
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %v, want one saying %q", err, c.says)
			}
			if c.name != "missing" && !strings.Contains(err.Error(), MarkPartKey(testRun.ID, 1, info.Bucket)) {
				t.Errorf("error %v does not name the part", err)
			}
			if called {
				t.Error("records of a refused part were handed on")
			}
		})
	}
}

// TestCommitAndRunRefused: a commit or run.json that is not what its key
// says, or holds unknown fields or too much, is refused saying why.
func TestCommitAndRunRefused(t *testing.T) {
	s, _ := testStore(t)
	ctx := context.Background()
	okCommit := `{"format":1,"run":"r1","shard":1,"shards":3,"parts":[],"sweepable":true,"report":{}}`
	if _, err := parseCommit([]byte(okCommit), testRun, 1); err != nil {
		t.Fatalf("a good commit refused: %v", err)
	}
	for _, c := range []struct{ name, commit, says string }{
		{"another shard", strings.Replace(okCommit, `"shard":1`, `"shard":2`, 1), "names run"},
		{"another shard count", strings.Replace(okCommit, `"shards":3`, `"shards":4`, 1), "names run"},
		{"another run", strings.Replace(okCommit, `"run":"r1"`, `"run":"r2"`, 1), "names run"},
		{"another format", strings.Replace(okCommit, `"format":1`, `"format":2`, 1), "format 2"},
		{"an unknown field", strings.Replace(okCommit, `"sweepable"`, `"delete_everything":true,"sweepable"`, 1), "unknown field"},
		{"no report", strings.Replace(okCommit, `,"report":{}`, ``, 1), "no report"},
		{"data after", okCommit + `{}`, "after the JSON value"},
		{"parts out of order", strings.Replace(okCommit, `[]`, `[{"bucket":5,"size":1,"sha256":"`+strings.Repeat("0", 64)+`","raw_size":30,"marks":0,"links":0},{"bucket":4,"size":1,"sha256":"`+strings.Repeat("0", 64)+`","raw_size":30,"marks":0,"links":0}]`, 1), "out of order"},
		{"a part of a bucket out of range", strings.Replace(okCommit, `[]`, `[{"bucket":256,"size":1,"sha256":"`+strings.Repeat("0", 64)+`","raw_size":30,"marks":0,"links":0}]`, 1), "out of range"},
		{"a part of a negative size", strings.Replace(okCommit, `[]`, `[{"bucket":1,"size":-1,"sha256":"`+strings.Repeat("0", 64)+`","raw_size":30,"marks":0,"links":0}]`, 1), "out of range"},
		{"a part without sha256", strings.Replace(okCommit, `[]`, `[{"bucket":1,"size":1,"sha256":"","raw_size":30,"marks":0,"links":0}]`, 1), "out of range"},
		{"not JSON", "\x00", "invalid character"},
	} {
		if err := replace(ctx, s, MarkCommitKey("r1", 1), []byte(c.commit)); err != nil {
			t.Fatal(err)
		}
		_, err := ReadCommit(ctx, s, testRun, 1)
		if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), MarkCommitKey("r1", 1)) {
			t.Errorf("commit with %s: error %v, want one naming the commit and saying %q", c.name, err, c.says)
		}
	}

	okRun := `{"format":1,"run":"r1","shards":3,"started_at":"2026-01-02T03:04:05Z","options":{"delete_untagged":true,"min_age":3600000000000,"allow_delete_all":false,"compact":["uploads"],"upload_max_age":0}}`
	if _, err := parseRun([]byte(okRun), "r1"); err != nil {
		t.Fatalf("a good run.json refused: %v", err)
	}
	for _, c := range []struct{ name, run, says string }{
		{"no shards", strings.Replace(okRun, `"shards":3`, `"shards":0`, 1), "shards 0 out of range"},
		{"too many shards", strings.Replace(okRun, `"shards":3`, `"shards":257`, 1), "shards 257 out of range"},
		{"another run", strings.Replace(okRun, `"run":"r1"`, `"run":"r2"`, 1), `names run "r2"`},
		{"no start", strings.Replace(okRun, `"started_at":"2026-01-02T03:04:05Z",`, ``, 1), "no start time"},
		{"a negative age", strings.Replace(okRun, `"min_age":3600000000000`, `"min_age":-1`, 1), "negative age"},
		{"an unknown field", strings.Replace(okRun, `"options":{`, `"options":{"keep_nothing":true,`, 1), "unknown field"},
		{"an unknown top field", strings.Replace(okRun, `{"format"`, `{"x":1,"format"`, 1), "unknown field"},
		{"data after", okRun + "]", "after the JSON value"},
		{"huge", okRun + strings.Repeat(" ", maxSmall), "limit"},
	} {
		if err := replace(ctx, s, RunKey("r1"), []byte(c.run)); err != nil {
			t.Fatal(err)
		}
		_, err := ReadRun(ctx, s, "r1")
		if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), RunKey("r1")) {
			t.Errorf("run.json with %s: error %v, want one naming it and saying %q", c.name, err, c.says)
		}
	}
}

// FuzzParsePart: parsing never panics, and what it accepts is the part of
// its bucket, and encodes to a part it accepts again with the same records.
func FuzzParsePart(f *testing.F) {
	d := "sha256:07" + strings.Repeat("1", 62)
	f.Add([]byte(partHeader+"m "+d+"\n"), 7)
	f.Add([]byte(partHeader+"l team/app "+d+" 5\na team/app sha512:"+strings.Repeat("ab", 64)+" "+d+" 0\n"), 7)
	f.Add([]byte(partHeader+"m sha512:"+strings.Repeat("ab", 64)+"\n"), -1)
	f.Add([]byte(partHeader), 0)
	f.Add([]byte("m "+d+"\n"), 7)
	f.Fuzz(func(t *testing.T, raw []byte, b int) {
		marks, links, err := parsePart(raw, b)
		if err != nil {
			return
		}
		var m Marks
		for _, d := range marks {
			if m.partOf(d) != m.partOf(marks[0]) {
				t.Fatalf("accepted %s in a part with %s", d, marks[0])
			}
			m.Mark(d)
		}
		for _, l := range links {
			if err := storage.ValidRepoName(l.Repo); err != nil || l.ModTime < 0 {
				t.Fatalf("accepted link %+v", l)
			}
			m.AddLink(l)
		}
		p := &m.other
		if b >= 0 && b < Buckets {
			p = &m.buckets[b]
		}
		again, linksAgain, err := parsePart(p.encode(), b)
		if err != nil {
			t.Fatalf("its own encoding refused: %v", err)
		}
		unique := slices.Compact(slices.SortedFunc(slices.Values(marks), storage.Digest.Compare))
		if !slices.Equal(again, unique) || len(linksAgain) != len(links) {
			t.Fatalf("encoded again: %d marks and %d links, want %d and %d", len(again), len(linksAgain), len(unique), len(links))
		}
	})
}

// FuzzParseCommit: parsing a commit never panics, and what it accepts
// names the run and shard asked for, with parts in bucket order.
func FuzzParseCommit(f *testing.F) {
	f.Add([]byte(`{"format":1,"run":"r1","shard":1,"shards":3,"parts":[{"bucket":0,"size":1,"sha256":"` + strings.Repeat("0", 64) + `","raw_size":30,"marks":1,"links":0},{"bucket":-1,"size":1,"sha256":"` + strings.Repeat("0", 64) + `","raw_size":30,"marks":0,"links":1}],"sweepable":true,"report":{}}`))
	f.Add([]byte(`{"format":1,"run":"r1","shard":1,"shards":3,"parts":[],"sweepable":false,"report":{},"policy_effect":{}}`))
	f.Add([]byte(`{"format":1,"run":"r1","shards":3,"started_at":"2026-01-02T03:04:05Z","options":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := parseRun(b, "r1"); err == nil && (r.ID != "r1" || r.Shards < 1 || r.Shards > MaxShards) {
			t.Fatalf("accepted run %+v", r)
		}
		c, err := parseCommit(b, testRun, 1)
		if err != nil {
			return
		}
		if c.Run != "r1" || c.Shard != 1 || c.Shards != testRun.Shards {
			t.Fatalf("accepted commit of %q shard %d of %d", c.Run, c.Shard, c.Shards)
		}
		last := -2
		for _, p := range c.Parts {
			k := p.Bucket
			if k == -1 {
				k = Buckets
			}
			if k <= last || p.Bucket < -1 || p.Bucket >= Buckets || p.Size <= 0 || p.RawSize <= 0 {
				t.Fatalf("accepted parts %+v", c.Parts)
			}
			last = k
		}
	})
}
