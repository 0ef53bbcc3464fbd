package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

// TestShardedRunWindow: on a filesystem the shards move what they delete
// into the trash, and the merged report's window runs from the run's start
// (its first mark shard's) to the last sweep shard's last key out of the
// layout, on a clock that moves a minute each time a command reads it.
func TestShardedRunWindow(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "reg")
	g := gen.Build(gen.Options{Blobs: 60, Repos: 3, Seed: 43})
	if _, err := g.Write(context.Background(), root, 4); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(8 * 24 * time.Hour)
	var mu sync.Mutex
	var first, last time.Time
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		if first.IsZero() {
			first, last = start, start
		} else {
			last = last.Add(time.Minute)
		}
		return last
	}
	cmds := shardCommands("w1", 2, 2, []string{"--delete-untagged", "--min-age", "1h"}, []string{root})
	rep := filepath.Join(t.TempDir(), "report.json")
	cmds = append(cmds, []string{"shard", "report", "--run", "w1", "--report", rep, root})
	var lastSweep time.Time
	for i, args := range cmds {
		var out, errOut bytes.Buffer
		if code := runEnv(context.Background(), args, env{stdout: &out, stderr: &errOut, now: clock}); code != 0 {
			t.Fatalf("regsweep %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		if i == len(cmds)-2 {
			lastSweep = last
		}
	}
	var r report.Report
	if b, err := os.ReadFile(rep); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if want := lastSweep.Sub(first).Seconds(); r.WindowSeconds != want || want < 3*60 {
		t.Errorf("window %v s, want %v s: from the run's start to the last sweep shard's last key", r.WindowSeconds, want)
	}
	if r.Blobs == 0 || r.Trashed < r.Blobs+r.Manifests {
		t.Errorf("%d keys trashed for %d blobs and %d manifests deleted: want every delete a move into the trash", r.Trashed, r.Blobs, r.Manifests)
	}
	if _, err := os.Stat(filepath.Join(root, "regsweep-trash")); err == nil {
		t.Error("the shards left their trash")
	}
}
