package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

// TestShardIndex: --index defaults to $JOB_COMPLETION_INDEX; a missing,
// malformed or out-of-range index, a missing or unsafe run ID, and a shard
// count out of range are each a bad command line (exit 2) that reads and
// writes nothing.
func TestShardIndex(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "sample")
	storagetest.CopyTree(t, sampleDir, root)
	before := storagetest.Snapshot(t, root)
	for _, c := range []struct {
		env  map[string]string
		args []string
		says string
	}{
		{nil, []string{"shard", "mark", "--run", "r1", "--shards", "3", root}, "no shard index"},
		{map[string]string{indexEnv: ""}, []string{"shard", "mark", "--run", "r1", "--shards", "3", root}, "no shard index"},
		{map[string]string{indexEnv: "x"}, []string{"shard", "mark", "--run", "r1", "--shards", "3", root}, "not a number"},
		{map[string]string{indexEnv: "3"}, []string{"shard", "mark", "--run", "r1", "--shards", "3", root}, "out of range"},
		{map[string]string{indexEnv: "-1"}, []string{"shard", "sweep", "--run", "r1", "--shards", "3", root}, "out of range"},
		{nil, []string{"shard", "sweep", "--run", "r1", "--shards", "2", "--index", "2", root}, "--index 2: out of range"},
		{nil, []string{"shard", "sweep", "--run", "r1", "--shards", "2", "--index", "-1", root}, "--index -1: out of range"},
		{map[string]string{indexEnv: "0"}, []string{"shard", "mark", "--shards", "3", root}, "--run ID is required"},
		{map[string]string{indexEnv: "0"}, []string{"shard", "mark", "--run", "../x", "--shards", "3", root}, "--run: run ID"},
		{map[string]string{indexEnv: "0"}, []string{"shard", "mark", "--run", "a/b", "--shards", "3", root}, "--run: run ID"},
		{map[string]string{indexEnv: "0"}, []string{"shard", "mark", "--run", "r1", root}, "--shards 0"},
		{map[string]string{indexEnv: "0"}, []string{"shard", "sweep", "--run", "r1", "--shards", "257", root}, "--shards 257"},
		{nil, []string{"shard", "report", root}, "--run ID is required"},
		{nil, []string{"shard", "report", "--run", "r1", "--shards", "2", root}, "unknown flag"},
		{nil, []string{"shard"}, "give mark, sweep or report"},
	} {
		var stdout, stderr bytes.Buffer
		env := env{stdout: &stdout, stderr: &stderr, getenv: func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }}
		code := runEnv(context.Background(), c.args, env)
		if code != exitUsage || !strings.Contains(stderr.String(), c.says) {
			t.Errorf("env %v regsweep %s: exit %d, want %d saying %q\nstderr: %s", c.env, strings.Join(c.args, " "), code, exitUsage, c.says, stderr.String())
		}
	}
	if d := cmp.Diff(before, storagetest.Snapshot(t, root)); d != "" {
		t.Errorf("storage changed (-before +after):\n%s", d)
	}
}

// shardRun runs a sharded collection in-process: mark shards 0..n-1 (the
// first through $JOB_COMPLETION_INDEX, the rest through --index), sweep
// shards 0..k-1, then report. It fails the test on any non-zero exit and
// returns the merged JSON report.
func shardRun(t *testing.T, id string, n, k int, flags []string, where []string) *report.Report {
	t.Helper()
	do := func(env map[string]string, args ...string) {
		t.Helper()
		var out, errOut bytes.Buffer
		e := env_(&out, &errOut, env)
		if code := runEnv(context.Background(), args, e); code != 0 {
			t.Fatalf("regsweep %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
	}
	for i := range n {
		args := append([]string{"shard", "mark", "-q", "--run", id, "--shards", strconv.Itoa(n)}, flags...)
		if i == 0 {
			do(map[string]string{indexEnv: "0"}, append(args, where...)...)
			continue
		}
		do(nil, append(append(args, "--index", strconv.Itoa(i)), where...)...)
	}
	for j := range k {
		do(nil, append([]string{"shard", "sweep", "-q", "--run", id, "--shards", strconv.Itoa(k), "--index", strconv.Itoa(j)}, where...)...)
	}
	rep := filepath.Join(t.TempDir(), "report.json")
	do(nil, append([]string{"shard", "report", "--run", id, "--report", rep}, where...)...)
	b, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func env_(stdout, stderr io.Writer, vars map[string]string) env {
	return env{stdout: stdout, stderr: stderr, wrapStore: faultyWrap, getenv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
}

// tree lists every folder and file under root/docker with the files'
// content: the whole registry as the registry and gc see it (empty
// folders included), and nothing of regsweep's own run folder or lock.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	base := filepath.Join(root, "docker")
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		if d.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// shardPolicy keeps the two newest tags of every repository and deletes
// what no tag reaches.
const shardPolicy = `rules:
  - repositories: ["**"]
    keep: {newest: 2}
untagged: delete
`

// TestShardedRunEqualsGC: for N mark shards in {1, 2, 3, 7} and K sweep
// shards in {1, 2, 5}, the registry after a sharded run is exactly the
// registry after a single gc with the same flags (a policy, and
// --delete-untagged) on a copy: every file and folder, on a generated
// registry of every kind (schema1, OCI artifacts, sha512 blobs, API
// deletes, stale uploads), and the merged report counts what gc counts.
func TestShardedRunEqualsGC(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "src")
	g := gen.Build(gen.Options{Blobs: 600, Repos: 12, Seed: 17, Legacy: true, SHA512: true})
	if _, err := g.Write(context.Background(), src, 4); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(shardPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--policy", policy, "--delete-untagged", "--min-age", "1h"}
	ref := filepath.Join(t.TempDir(), "gc")
	storagetest.CopyTree(t, src, ref)
	code, _, want := gc(t, append(append([]string{}, flags...), ref)...)
	if code != 0 {
		t.Fatalf("gc: exit %d", code)
	}
	if want.Blobs == 0 || want.Tags == 0 || want.Manifests == 0 {
		t.Fatalf("gc deleted %d blobs, %d tags, %d manifests: the fixture tests nothing", want.Blobs, want.Tags, want.Manifests)
	}
	wantTree := tree(t, ref)
	for _, n := range []int{1, 2, 3, 7} {
		for _, k := range []int{1, 2, 5} {
			t.Run(fmt.Sprintf("N%d-K%d", n, k), func(t *testing.T) {
				t.Parallel()
				root := filepath.Join(t.TempDir(), "reg")
				storagetest.CopyTree(t, src, root)
				got := shardRun(t, "r1", n, k, flags, []string{root})
				if d := cmp.Diff(wantTree, tree(t, root)); d != "" {
					t.Errorf("storage after the sharded run differs from gc's (-gc +shards):\n%s", d)
				}
				if got.Counts != want.Counts {
					t.Errorf("report counts %+v, gc's %+v", got.Counts, want.Counts)
				}
				if got.Scanned != want.Scanned {
					t.Errorf("report scanned %+v, gc's %+v", got.Scanned, want.Scanned)
				}
				if len(got.Errors) > 0 {
					t.Errorf("report errors: %v", got.Errors)
				}
				if _, err := os.Stat(filepath.Join(root, storage.LockKey)); !os.IsNotExist(err) {
					t.Errorf("the lock is still there after the report of a complete run (%v)", err)
				}
			})
		}
	}
}
