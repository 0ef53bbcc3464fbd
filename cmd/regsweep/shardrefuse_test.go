package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/regsweep/regsweep/shard"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

// runFile is the path of key of the run folder under root.
func runFile(root, key string) string { return filepath.Join(root, filepath.FromSlash(key)) }

// editJSON rewrites the JSON object in file through edit.
func editJSON(t *testing.T, file string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, editJSONBytes(t, b, edit), 0o644); err != nil {
		t.Fatal(err)
	}
}

// editJSONBytes returns the JSON object b rewritten through edit.
func editJSONBytes(t *testing.T, b []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rewritePart makes edit of mark shard i's first sha256 part (decompressed)
// its content, compressed again, and with recompress the commit's record
// of it follows, so that only what edit put in can be refused; it returns
// the part's key.
func rewritePart(t *testing.T, root string, i int, recompress bool, edit func(raw []byte) []byte) string {
	t.Helper()
	commitFile := runFile(root, shard.MarkCommitKey("r1", i))
	b, err := os.ReadFile(commitFile)
	if err != nil {
		t.Fatal(err)
	}
	var c shard.Commit
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Parts) == 0 || c.Parts[0].Bucket < 0 {
		t.Fatalf("mark shard %d committed no sha256 part", i)
	}
	p := &c.Parts[0]
	key := shard.MarkPartKey("r1", i, p.Bucket)
	data, err := os.ReadFile(runFile(root, key))
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := zstd.NewReader(nil)
	raw, err := dec.DecodeAll(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw = edit(raw)
	data = []byte(raw)
	if recompress {
		enc, _ := zstd.NewWriter(nil)
		data = enc.EncodeAll(raw, nil)
		sum := sha256.Sum256(data)
		p.Size, p.SHA256, p.RawSize = int64(len(data)), hex.EncodeToString(sum[:]), int64(len(raw))
		p.Marks, p.Links = 0, 0
		for _, line := range strings.Split(string(raw), "\n") {
			switch {
			case strings.HasPrefix(line, "m "):
				p.Marks++
			case strings.HasPrefix(line, "l "), strings.HasPrefix(line, "a "):
				p.Links++
			}
		}
		if b, err = json.Marshal(c); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(commitFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(runFile(root, key), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestShardRefusals: a sweep over a run folder that was tampered with, or
// run with other options than the run's, and a shard of another run while
// one holds the lock, are each refused with the exit status and a message
// that says why (naming the file), and delete nothing from the registry.
func TestShardRefusals(t *testing.T) {
	t.Parallel()
	now := time.Now().Add(8 * 24 * time.Hour)
	src := filepath.Join(t.TempDir(), "src")
	g := gen.Build(gen.Options{Blobs: 80, Repos: 4, Seed: 41})
	if _, err := g.Write(context.Background(), src, 4); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--delete-untagged", "--min-age", "1h"}
	// The template: both mark shards of r1 committed, no sweep yet.
	marked := filepath.Join(t.TempDir(), "marked")
	storagetest.CopyTree(t, src, marked)
	for _, args := range shardCommands("r1", 2, 1, flags, []string{marked})[:2] {
		shardDo(t, now, nil, 0, args...)
	}
	// A repository of mark shard 1, for a forged layer link in shard 0's part.
	var foreign string
	for _, r := range g.Repos {
		if shard.RepoShard(r.Name, 2) == 1 {
			foreign = r.Name
		}
	}
	if foreign == "" {
		t.Fatal("no repository of mark shard 1")
	}
	sweepArgs := func(root string, k int) []string {
		return []string{"shard", "sweep", "--run", "r1", "--shards", fmt.Sprint(k), "--index", "0", root}
	}
	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, root string) string // returns what the refusal names
		args   func(root string) []string
		code   int
		says   string
	}{
		{"a truncated part", func(t *testing.T, root string) string {
			return rewritePart(t, root, 0, false, func(raw []byte) []byte {
				enc, _ := zstd.NewWriter(nil)
				z := enc.EncodeAll(raw, nil)
				return z[:len(z)/2]
			})
		}, nil, exitError, "not the file its commit names"},
		{"a part that is not zstd", func(t *testing.T, root string) string {
			// Stored raw, its commit record matching what is stored.
			key := rewritePart(t, root, 0, true, func(raw []byte) []byte { return raw })
			raw, _ := os.ReadFile(runFile(root, key))
			dec, _ := zstd.NewReader(nil)
			plain, err := dec.DecodeAll(raw, nil)
			if err != nil {
				t.Fatal(err)
			}
			editJSON(t, runFile(root, shard.MarkCommitKey("r1", 0)), func(m map[string]any) {
				sum := sha256.Sum256(plain)
				p := m["parts"].([]any)[0].(map[string]any)
				p["size"], p["sha256"] = len(plain), hex.EncodeToString(sum[:])
			})
			if err := os.WriteFile(runFile(root, key), plain, 0o644); err != nil {
				t.Fatal(err)
			}
			return key
		}, nil, exitError, "zstd"},
		{"a digest outside the part's range", func(t *testing.T, root string) string {
			return rewritePart(t, root, 0, true, func(raw []byte) []byte {
				lines := strings.SplitAfter(string(raw), "\n")
				bucket := lines[1][len("m sha256:") : len("m sha256:")+2]
				other := "00"
				if bucket == "00" {
					other = "01"
				}
				return append(raw, "m sha256:"+other+strings.Repeat("5", 62)+"\n"...)
			})
		}, nil, exitError, "does not belong to this part"},
		{"a layer link of another shard's repository", func(t *testing.T, root string) string {
			return rewritePart(t, root, 0, true, func(raw []byte) []byte {
				lines := strings.SplitAfter(string(raw), "\n")
				d := strings.TrimSpace(strings.TrimPrefix(lines[1], "m "))
				return append(raw, "l "+foreign+" "+d+" 0\n"...)
			})
		}, nil, exitError, "which this mark shard does not own"},
		{"a layer link with a bad repository name", func(t *testing.T, root string) string {
			return rewritePart(t, root, 0, true, func(raw []byte) []byte {
				lines := strings.SplitAfter(string(raw), "\n")
				d := strings.TrimSpace(strings.TrimPrefix(lines[1], "m "))
				return append(raw, "l ../../etc "+d+" 0\n"...)
			})
		}, nil, exitError, "repository"},
		{"a commit with an unknown field", func(t *testing.T, root string) string {
			editJSON(t, runFile(root, shard.MarkCommitKey("r1", 1)), func(m map[string]any) { m["keep"] = false })
			return shard.MarkCommitKey("r1", 1)
		}, nil, exitError, `unknown field "keep"`},
		{"a commit of another shard count", func(t *testing.T, root string) string {
			editJSON(t, runFile(root, shard.MarkCommitKey("r1", 1)), func(m map[string]any) { m["shards"] = 3 })
			return shard.MarkCommitKey("r1", 1)
		}, nil, exitError, "shard 1 of 3, want"},
		{"run.json with another shard count", func(t *testing.T, root string) string {
			editJSON(t, runFile(root, shard.RunKey("r1")), func(m map[string]any) { m["shards"] = 1 })
			return shard.MarkCommitKey("r1", 0)
		}, nil, exitError, "want \"r1\" shard 0 of 1"},
		{"run.json with an unknown field", func(t *testing.T, root string) string {
			editJSON(t, runFile(root, shard.RunKey("r1")), func(m map[string]any) { m["options"].(map[string]any)["keep_all"] = false })
			return shard.RunKey("r1")
		}, nil, exitError, `unknown field "keep_all"`},
		{"a huge run.json", func(t *testing.T, root string) string {
			f, err := os.OpenFile(runFile(root, shard.RunKey("r1")), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(64 << 20); err != nil {
				t.Fatal(err)
			}
			return shard.RunKey("r1")
		}, nil, exitError, "limit"},
		{"run.json with a policy that does not parse", func(t *testing.T, root string) string {
			editJSON(t, runFile(root, shard.RunKey("r1")), func(m map[string]any) { m["options"].(map[string]any)["policy_text"] = "rules: [" })
			return "its recorded options"
		}, nil, exitError, "policy"},
		{"a sweep with another K than the first sweep shard's", func(t *testing.T, root string) string {
			if err := os.WriteFile(runFile(root, shard.SweepKey("r1")), []byte(`{"format":1,"run":"r1","shards":2}`), 0o644); err != nil {
				t.Fatal(err)
			}
			return "--shards 1 (its sweep has 2)"
		}, nil, exitUsage, "options differ from the run's"},
		{"a mark shard run again with other options", nil, func(root string) []string {
			return []string{"shard", "mark", "--run", "r1", "--shards", "2", "--index", "1", "--delete-untagged", "--min-age", "2h", root}
		}, exitUsage, "options differ from the run's"},
		{"a mark shard run again with another N", nil, func(root string) []string {
			return append([]string{"shard", "mark", "--run", "r1", "--shards", "3", "--index", "1"}, append(flags, root)...)
		}, exitUsage, "--shards 3 (run has 2)"},
		{"a mark shard of another run while r1 holds the lock", nil, func(root string) []string {
			return append([]string{"shard", "mark", "--run", "r2", "--shards", "1", "--index", "0"}, append(flags, root)...)
		}, exitError, "storage locked by another regsweep run: held by"},
		{"gc while r1 holds the lock", nil, func(root string) []string {
			return append([]string{"gc"}, append(flags, root)...)
		}, exitError, "storage locked by another regsweep run: held by"},
		{"a sweep of a run that never marked", nil, func(root string) []string {
			return []string{"shard", "sweep", "--run", "r2", "--shards", "1", "--index", "0", root}
		}, exitError, "no mark shard of this run has started"},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "-"), func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "reg")
			storagetest.CopyTree(t, marked, root)
			names := ""
			if c.tamper != nil {
				names = c.tamper(t, root)
			}
			args := sweepArgs(root, 1)
			if c.args != nil {
				args = c.args(root)
			}
			before := tree(t, root)
			out := shardDo(t, now, nil, c.code, args...)
			if !strings.Contains(out, c.says) || !strings.Contains(out, names) {
				t.Errorf("regsweep %s says\n%s\nwant %q and %q", strings.Join(args, " "), out, c.says, names)
			}
			if d := cmp.Diff(before, tree(t, root)); d != "" {
				t.Errorf("a refused command changed the registry (-before +after):\n%s", d)
			}
		})
	}
}
