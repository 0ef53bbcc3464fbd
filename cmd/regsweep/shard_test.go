package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/storage/storagetest"
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
