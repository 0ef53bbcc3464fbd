package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/shard"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

// The test binary runs as regsweep when envChild is set (see TestMain):
// the command line is its arguments, the clock reads envChildNow, and
// envChildKill, when set, names the storage operation before which the
// process sends itself SIGKILL: "OP N PREFIX" (the Nth operation of kind
// OP, a storagetest.Op name, on a key starting with PREFIX), or
// "OP N PREFIX half" for a Create killed when half of its bytes are
// written. A real process dies at a point chosen by count, not by time.
const (
	envChild     = "REGSWEEP_TEST_CHILD"
	envChildNow  = "REGSWEEP_TEST_NOW"
	envChildKill = "REGSWEEP_TEST_KILL"
)

// childMain is regsweep's main in a child the tests started.
func childMain() int {
	now, err := time.Parse(time.RFC3339Nano, os.Getenv(envChildNow))
	if err != nil {
		fmt.Fprintf(os.Stderr, "child: $%s: %v\n", envChildNow, err)
		return 99
	}
	wrap := func(_ storage.Location, s storage.Store) storage.Store { return s }
	if spec := os.Getenv(envChildKill); spec != "" {
		k, err := parseKillSpec(spec)
		if err != nil {
			fmt.Fprintf(os.Stderr, "child: $%s: %v\n", envChildKill, err)
			return 99
		}
		wrap = k.wrap
	}
	return runEnv(context.Background(), os.Args[1:], env{stdout: os.Stdout, stderr: os.Stderr, wrapStore: wrap, now: func() time.Time { return now }})
}

// killSpec is where a child kills itself.
type killSpec struct {
	op     storagetest.Op
	n      int
	prefix string
	half   bool
}

func (k killSpec) String() string {
	s := fmt.Sprintf("%v %d %s", k.op, k.n, k.prefix)
	if k.half {
		s += " half"
	}
	return s
}

func parseKillSpec(s string) (killSpec, error) {
	f := strings.Fields(s)
	if len(f) != 3 && (len(f) != 4 || f[3] != "half") {
		return killSpec{}, fmt.Errorf("%q: want OP N PREFIX [half]", s)
	}
	k := killSpec{prefix: f[2], half: len(f) == 4}
	for op := storagetest.OpReadDir; op <= storagetest.OpCreate; op++ {
		if op.String() == f[0] {
			k.op = op
		}
	}
	if k.op.String() != f[0] {
		return k, fmt.Errorf("%q: no operation %s", s, f[0])
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 1 {
		return k, fmt.Errorf("%q: bad count", s)
	}
	k.n = n
	if k.half && k.op != storagetest.OpCreate {
		return k, fmt.Errorf("%q: half is for Create", s)
	}
	return k, nil
}

// die ends the process as kill -9 does: no deferred call, no flush.
func die() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// wrap puts the store behind a Faulty that counts the operations on keys
// under the prefix and kills the process before the chosen one (or, for
// half, in the middle of its writing).
func (k killSpec) wrap(_ storage.Location, s storage.Store) storage.Store {
	fy := storagetest.NewFaulty(s)
	fy.Counted = func(key string) bool { return strings.HasPrefix(key, k.prefix) }
	if !k.half {
		fy.Before = func(c storagetest.Call) {
			if c.Op == k.op && c.N == k.n {
				die()
			}
		}
		return fy
	}
	return &halfKiller{Faulty: fy, spec: k}
}

// halfKiller is a Faulty whose Nth Create under the prefix kills the
// process once half of the file's bytes were read from its writer.
type halfKiller struct {
	*storagetest.Faulty
	spec killSpec

	mu      sync.Mutex
	creates int
}

func (h *halfKiller) Capabilities() storage.Capabilities {
	c := h.Faulty.Capabilities()
	if c.Creator != nil {
		c.Creator = h
	}
	return c
}

func (h *halfKiller) Create(ctx context.Context, key string, r io.Reader, size int64, mtime time.Time) error {
	if strings.HasPrefix(key, h.spec.prefix) {
		h.mu.Lock()
		h.creates++
		n := h.creates
		h.mu.Unlock()
		if n == h.spec.n {
			r = &dyingReader{r: r, left: size / 2}
		}
	}
	return h.Faulty.Create(ctx, key, r, size, mtime)
}

// dyingReader kills the process once left bytes were read.
type dyingReader struct {
	r    io.Reader
	left int64
}

func (d *dyingReader) Read(p []byte) (int, error) {
	if d.left <= 0 {
		die()
	}
	if int64(len(p)) > d.left {
		p = p[:d.left]
	}
	n, err := d.r.Read(p)
	d.left -= int64(n)
	return n, err
}

// startChild starts this test binary as regsweep with args, as of now,
// killing itself as kill says (none when kill is zero).
func startChild(t *testing.T, now time.Time, kill *killSpec, args ...string) *proc {
	t.Helper()
	vars := []string{envChild + "=1", envChildNow + "=" + now.Format(time.RFC3339Nano)}
	if kill != nil {
		vars = append(vars, envChildKill+"="+kill.String())
	}
	return startRegsweepEnv(t, os.Args[0], vars, args...)
}

// TestShardedRunSIGKILL runs shards of a sharded run (N = 2, K = 2) as
// processes of their own (this test binary as regsweep, see childMain) and
// kills each with SIGKILL at points chosen by count, not by time: at its
// last delete in the registry and before its last write into the run
// folder (a mark shard's commit, a sweep shard's report part); the first
// shard of each kind also at its first and middle delete (a mark shard's
// tags and revisions, a sweep shard's layer links and blobs), and the first
// mark shard half-way through writing its first part. After each kill, distribution's code serves every tag gc keeps;
// while a mark shard is uncommitted a sweep refuses (exit 1) naming it and
// deletes nothing, and report says it is missing (exit 3); the killed shard
// run again completes, the rest of the run follows, and the registry ends
// exactly as a single gc leaves a copy.
func TestShardedRunSIGKILL(t *testing.T) {
	t.Parallel()
	now := time.Now().Add(8 * 24 * time.Hour)
	src := filepath.Join(t.TempDir(), "src")
	g := gen.Build(gen.Options{Blobs: 120, Repos: 6, Seed: 31, SHA512: true})
	if _, err := g.Write(context.Background(), src, 4); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(shardPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--policy", policy, "--allow-delete-all", "--delete-untagged", "--min-age", "1h"}
	ref := filepath.Join(t.TempDir(), "gc")
	storagetest.CopyTree(t, src, ref)
	shardDo(t, now, nil, 0, append(append([]string{"gc", "-q"}, flags...), ref)...)
	wantTree := tree(t, ref)
	var kept []string
	for rt := range storagetest.Snapshot(t, ref).Tags {
		if !slices.Contains(g.Broken, rt) {
			kept = append(kept, rt)
		}
	}
	const n, k = 2, 2
	v2, runs := storage.V2+"/", shard.Dir+"/"

	// A clean run, recorded, says how many deletes in the registry and
	// writes into the run folder each command makes.
	type counts struct{ deletes, creates int }
	var per []counts
	{
		root := filepath.Join(t.TempDir(), "count")
		storagetest.CopyTree(t, src, root)
		for _, args := range shardCommands("r1", n, k, flags, []string{root}) {
			fy := storagetest.NewFaulty(nil)
			fy.Record = true
			release := withFaulty(t, root, fy)
			shardDo(t, now, nil, 0, args...)
			release()
			var c counts
			for _, call := range fy.Calls() {
				switch {
				case call.Op == storagetest.OpDelete && strings.HasPrefix(call.Key, v2):
					c.deletes++
				case call.Op == storagetest.OpCreate && strings.HasPrefix(call.Key, runs):
					c.creates++
				}
			}
			per = append(per, c)
		}
		shardReport(t, now, "r1", 0, []string{root})
		if d := cmp.Diff(wantTree, tree(t, root)); d != "" {
			t.Fatalf("a clean run differs from gc (-gc +shards):\n%s", d)
		}
		t.Logf("deletes and writes per command: %+v", per)
	}
	for c, cnt := range per {
		marking := c < n
		if cnt.deletes < 3 || cnt.creates < 2 {
			t.Fatalf("command %d makes %d deletes and %d writes: the fixture tests too little", c, cnt.deletes, cnt.creates)
		}
		// Every shard is killed at its last delete and before its last
		// write (a mark shard's commit, a sweep shard's part); the first
		// shard of each kind also at its first and middle delete, and a
		// mark shard half-way through writing its first part (its first
		// write is run.json, or a count of the existing one).
		kills := []killSpec{
			{op: storagetest.OpDelete, n: cnt.deletes, prefix: v2},
			{op: storagetest.OpCreate, n: cnt.creates, prefix: runs},
		}
		if c == 0 || c == n {
			kills = append(kills, killSpec{op: storagetest.OpDelete, n: 1, prefix: v2}, killSpec{op: storagetest.OpDelete, n: cnt.deletes / 2, prefix: v2})
		}
		if c == 0 {
			kills = append(kills, killSpec{op: storagetest.OpCreate, n: 2, prefix: runs, half: true})
		}
		for _, kill := range kills {
			name := fmt.Sprintf("command%d-%v%d", c, kill.op, kill.n)
			if kill.half {
				name += "-half"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				root := filepath.Join(t.TempDir(), "reg")
				storagetest.CopyTree(t, src, root)
				where := []string{root}
				cmds := shardCommands("r1", n, k, flags, where)
				for _, args := range cmds[:c] {
					shardDo(t, now, nil, 0, args...)
				}
				p := startChild(t, now, &kill, cmds[c]...)
				if signaled, code := p.wait(t); !signaled {
					t.Fatalf("not killed at %v: exit %d", kill, code)
				}
				reg := storagetest.New(t, root)
				for _, rt := range kept {
					i := strings.LastIndexByte(rt, ':')
					if err := reg.Serves(context.Background(), rt[:i], rt[i+1:]); err != nil {
						t.Errorf("after the kill: %v", err)
					}
				}
				before := tree(t, root)
				if marking {
					// A sweep refuses, naming the mark shards not committed,
					// and deletes nothing; report says they are missing.
					var missing []int
					for i := c; i < n; i++ {
						missing = append(missing, i)
					}
					out := shardDo(t, now, nil, exitError, "shard", "sweep", "--run", "r1", "--shards", strconv.Itoa(k), "--index", "0", root)
					want := shard.Missing("mark", missing, n) + " " + plural(len(missing), "has", "have") + " not committed; nothing deleted"
					if !strings.Contains(out, want) {
						t.Errorf("a sweep over an incomplete mark says %q, want %q", out, want)
					}
					if d := cmp.Diff(before, tree(t, root)); d != "" {
						t.Errorf("a refused sweep changed the registry:\n%s", d)
					}
				}
				// The run so far is incomplete: report names what is missing.
				out := shardDo(t, now, nil, exitIncomplete, "shard", "report", "--run", "r1", "--remove-run", root)
				if _, err := os.Stat(runFile(root, shard.RunKey("r1"))); err != nil {
					t.Errorf("report --remove-run of an incomplete run removed its folder: %v", err)
				}
				var missing []int
				for i := c; i < n+k; i++ {
					missing = append(missing, i)
				}
				wantMissing := "missing: " + shard.Missing("mark", missing[:max(n-c, 0)], n)
				if !marking {
					missing = missing[:0]
					for j := c - n; j < k; j++ {
						missing = append(missing, j)
					}
					wantMissing = "missing: " + shard.Missing("sweep", missing, k)
				}
				if !strings.Contains(out, wantMissing) {
					t.Errorf("report after the kill says\n%s\nwant %q", out, wantMissing)
				}
				// The killed shard run again, as a process of its own,
				// completes; the rest of the run follows.
				if _, code := startChild(t, now, nil, cmds[c]...).wait(t); code != 0 {
					t.Fatalf("the killed shard run again: exit %d", code)
				}
				for _, args := range cmds[c+1:] {
					shardDo(t, now, nil, 0, args...)
				}
				shardReport(t, now, "r1", 0, append([]string{"--remove-run"}, where...))
				if d := cmp.Diff(wantTree, tree(t, root)); d != "" {
					t.Errorf("after the rerun, the registry differs from gc's (-gc +shards):\n%s", d)
				}
				// Nothing of the run stays beside the registry: its folder
				// (with what the killed attempt wrote) and the shards' trash.
				for _, dir := range []string{"regsweep", storage.TrashDir} {
					if _, err := os.Stat(filepath.Join(root, dir)); err == nil {
						t.Errorf("%s stays after report --remove-run", dir)
					}
				}
				if _, err := os.Stat(filepath.Join(root, storage.LockKey)); err == nil {
					t.Errorf("the complete run left its lock")
				}
			})
		}
	}
}
