package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/shard"
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

// shardRun runs a sharded collection in-process as of now: mark shards
// 0..n-1 (the first through $JOB_COMPLETION_INDEX, the rest through
// --index), sweep shards 0..k-1, then report. It fails the test on any
// non-zero exit and returns the merged JSON report.
func shardRun(t *testing.T, now time.Time, id string, n, k int, flags []string, where []string) *report.Report {
	t.Helper()
	for i := range n {
		args := append([]string{"shard", "mark", "-q", "--run", id, "--shards", strconv.Itoa(n)}, flags...)
		if i == 0 {
			shardDo(t, now, map[string]string{indexEnv: "0"}, 0, append(args, where...)...)
			continue
		}
		shardDo(t, now, nil, 0, append(append(args, "--index", strconv.Itoa(i)), where...)...)
	}
	for j := range k {
		shardDo(t, now, nil, 0, append([]string{"shard", "sweep", "-q", "--run", id, "--shards", strconv.Itoa(k), "--index", strconv.Itoa(j)}, where...)...)
	}
	return shardReport(t, now, id, 0, where)
}

// shardDo runs one command line as of now with the environment vars and
// fails the test unless it exits with want; it returns the output.
func shardDo(t *testing.T, now time.Time, vars map[string]string, want int, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	e := env{stdout: &out, stderr: &errOut, wrapStore: faultyWrap, now: func() time.Time { return now },
		getenv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }}
	if code := runEnv(context.Background(), args, e); code != want {
		t.Fatalf("regsweep %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errOut.String())
	}
	return out.String() + errOut.String()
}

// shardReport runs shard report with a JSON --report, wanting exit want.
func shardReport(t *testing.T, now time.Time, id string, want int, where []string) *report.Report {
	t.Helper()
	rep := filepath.Join(t.TempDir(), "report.json")
	shardDo(t, now, nil, want, append([]string{"shard", "report", "--run", id, "--report", rep}, where...)...)
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

// bucketTree lists every object of bucket under registry/docker with its
// ETag.
func bucketTree(t *testing.T, bucket string) map[string]string {
	t.Helper()
	c := storagetest.S3Client(t)
	out := map[string]string{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("registry/docker/")})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = aws.ToString(o.ETag)
		}
	}
	return out
}

// shardPolicy keeps latest, promoted and the v1.0.x tags of every
// repository and deletes what no tag reaches. It reads no time: objects
// written into two buckets have their own LastModified, and a rule on
// push times would tell ties apart differently in each.
const shardPolicy = `rules:
  - repositories: ["**"]
    keep: {tags: ["^(latest|promoted)$", "^v1\\.0\\."]}
untagged: delete
`

// shardFixture is a generated registry of every kind (schema1, OCI
// artifacts, sha512 blobs, API deletes, stale uploads) and the flags of
// the tests' runs: a policy, --delete-untagged.
func shardFixture(t *testing.T) (src string, g *gen.Registry, flags []string) {
	t.Helper()
	src = filepath.Join(t.TempDir(), "src")
	g = gen.Build(gen.Options{Blobs: 150, Repos: 8, Seed: 17, Legacy: true, SHA512: true})
	if _, err := g.Write(context.Background(), src, 4); err != nil {
		t.Fatal(err)
	}
	addOrphanLinks(t, src, g)
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(shardPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	return src, g, []string{"--policy", policy, "--allow-delete-all", "--delete-untagged", "--min-age", "1h"}
}

// addOrphanLinks adds to the registry at src layer links to blobs it does
// not hold (the generator writes none), in three repositories: a mark shard
// lists no blob, so the sweep shard of each one's range reads its age.
func addOrphanLinks(t *testing.T, src string, g *gen.Registry) {
	t.Helper()
	for i, content := range []string{"orphan link 1", "orphan link 2", "orphan link 3"} {
		d := digest.FromString(content)
		link := filepath.Join(src, "docker/registry/v2/repositories", g.Repos[i].Name, "_layers/sha256", d.Encoded(), "link")
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(link, []byte(d.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestShardedRunEqualsGC: for N mark shards in {1, 2, 3, 7} and K sweep
// shards in {1, 2, 5}, the registry after a sharded run is exactly the
// registry after a single gc with the same flags (a policy, and
// --delete-untagged) on a copy, on a filesystem (every file and folder)
// and in S3 (every object, incomplete multipart uploads too), and the
// merged report counts what gc counts. Every run is as of 8 days from now:
// objects just written to S3 are old, uploads stale.
func TestShardedRunEqualsGC(t *testing.T) {
	now := time.Now().Add(8 * 24 * time.Hour)
	src, g, flags := shardFixture(t)
	endpoint, access, secret, region := storagetest.S3Server(t)
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	type place struct {
		where []string
		tree  func() map[string]string
	}
	backends := []struct {
		name string
		make func(t *testing.T) place
	}{
		{"filesystem", func(t *testing.T) place {
			root := filepath.Join(t.TempDir(), "reg")
			storagetest.CopyTree(t, src, root)
			return place{[]string{root}, func() map[string]string { return tree(t, root) }}
		}},
		{"s3", func(t *testing.T) place {
			bucket := storagetest.NewBucket(t)
			storagetest.PutTree(t, src, bucket, "registry")
			addMultipart(t, bucket, "registry/docker/registry/v2/repositories/"+g.Repos[0].Name+"/_uploads/abandoned/data")
			where := []string{"--s3-endpoint", endpoint, "--s3-region", region, "--s3-force-path-style", "s3://" + bucket + "/registry"}
			return place{where, func() map[string]string { return bucketTree(t, bucket) }}
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ref := b.make(t)
			repPath := filepath.Join(t.TempDir(), "report.json")
			shardDo(t, now, nil, 0, append(append([]string{"gc", "-q", "--report", repPath}, flags...), ref.where...)...)
			var want report.Report
			if data, err := os.ReadFile(repPath); err != nil {
				t.Fatal(err)
			} else if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			if want.Blobs == 0 || want.Tags == 0 || want.Manifests == 0 || want.LayerLinks == 0 || want.Uploads == 0 {
				t.Fatalf("gc deleted %+v: the fixture tests too little", want.Counts)
			}
			if b.name == "s3" && want.Multipart == 0 {
				t.Fatalf("gc aborted no multipart upload")
			}
			wantTree := ref.tree()
			for _, n := range []int{1, 2, 3, 7} {
				for _, k := range []int{1, 2, 5} {
					t.Run(fmt.Sprintf("N%d-K%d", n, k), func(t *testing.T) {
						t.Parallel()
						p := b.make(t)
						got := shardRun(t, now, "r1", n, k, flags, p.where)
						if d := cmp.Diff(wantTree, p.tree()); d != "" {
							t.Errorf("storage after the sharded run differs from gc's (-gc +shards):\n%s", d)
						}
						if got.Counts != want.Counts {
							t.Errorf("report counts %+v, gc's %+v", got.Counts, want.Counts)
						}
						// The sweep shards stat every blob of their range; gc's
						// walk reads blob sizes on S3 only (a filesystem walk
						// lists blobs by name).
						gotScanned, wantScanned := got.Scanned, want.Scanned
						if gotScanned.Bytes == nil || (wantScanned.Bytes == nil) != (b.name == "filesystem") ||
							wantScanned.Bytes != nil && *wantScanned.Bytes != *gotScanned.Bytes {
							t.Errorf("scanned bytes: shards %v, gc %v", gotScanned.Bytes, wantScanned.Bytes)
						}
						gotScanned.Bytes, wantScanned.Bytes = nil, nil
						if gotScanned != wantScanned || got.Kept != want.Kept {
							t.Errorf("report scanned %+v kept %+v, gc's %+v %+v", got.Scanned, got.Kept, want.Scanned, want.Kept)
						}
						if len(got.Errors) > 0 {
							t.Errorf("report errors: %v", got.Errors)
						}
					})
				}
			}
		})
	}
}

// shardCommands are the command lines of a sharded run of n mark and k
// sweep shards, in the order a run makes them.
func shardCommands(id string, n, k int, flags, where []string) [][]string {
	var out [][]string
	for i := range n {
		out = append(out, append(append([]string{"shard", "mark", "-q", "--run", id, "--shards", strconv.Itoa(n), "--index", strconv.Itoa(i)}, flags...), where...))
	}
	for j := range k {
		out = append(out, append([]string{"shard", "sweep", "-q", "--run", id, "--shards", strconv.Itoa(k), "--index", strconv.Itoa(j)}, where...))
	}
	return out
}

// TestShardedRunKilledAnywhere kills each shard of a run (N = 3, K = 2)
// at its first, middle and last delete and at its first and last write
// into the run folder: the storage stops answering at that operation, as
// for a process killed with SIGKILL (a Faulty Stop fault: nothing after it
// reaches the storage). After each kill, distribution's code serves every
// tag gc keeps; a sweep started while a mark shard is killed refuses,
// naming it, and deletes nothing; the killed shard run again completes,
// the rest of the run follows, and the storage ends exactly as gc leaves
// it.
func TestShardedRunKilledAnywhere(t *testing.T) {
	t.Parallel()
	now := time.Now().Add(8 * 24 * time.Hour)
	src := filepath.Join(t.TempDir(), "src")
	g := gen.Build(gen.Options{Blobs: 200, Repos: 6, Seed: 23, SHA512: true})
	if _, err := g.Write(context.Background(), src, 4); err != nil {
		t.Fatal(err)
	}
	addOrphanLinks(t, src, g)
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
	const n, k = 3, 2

	// A clean run, counted, says how many deletes and writes each shard
	// makes.
	type counts struct{ deletes, creates int }
	var per []counts
	{
		root := filepath.Join(t.TempDir(), "count")
		storagetest.CopyTree(t, src, root)
		for _, args := range shardCommands("r1", n, k, flags, []string{root}) {
			fy := storagetest.NewFaulty(nil)
			release := withFaulty(t, root, fy)
			shardDo(t, now, nil, 0, args...)
			release()
			per = append(per, counts{fy.Count(storagetest.OpDelete), fy.Count(storagetest.OpCreate)})
		}
		shardReport(t, now, "r1", 0, []string{root})
		if d := cmp.Diff(wantTree, tree(t, root)); d != "" {
			t.Fatalf("a clean run differs from gc (-gc +shards):\n%s", d)
		}
	}
	for c, cnt := range per {
		var faults []storagetest.Fault
		for _, m := range slices.Compact([]int{1, cnt.deletes / 2, cnt.deletes}) {
			if m > 0 {
				faults = append(faults, storagetest.Fault{Op: storagetest.OpDelete, N: m, Stop: true})
			}
		}
		for _, m := range slices.Compact([]int{1, cnt.creates}) {
			faults = append(faults, storagetest.Fault{Op: storagetest.OpCreate, N: m, Stop: true})
		}
		for _, f := range faults {
			t.Run(fmt.Sprintf("command%d-%v%d", c, f.Op, f.N), func(t *testing.T) {
				t.Parallel()
				root := filepath.Join(t.TempDir(), "reg")
				storagetest.CopyTree(t, src, root)
				where := []string{root}
				cmds := shardCommands("r1", n, k, flags, where)
				for _, args := range cmds[:c] {
					shardDo(t, now, nil, 0, args...)
				}
				fy := storagetest.NewFaulty(nil, f)
				release := withFaulty(t, root, fy)
				var out, errOut bytes.Buffer
				code := runEnv(context.Background(), cmds[c], env{stdout: &out, stderr: &errOut, wrapStore: faultyWrap, now: func() time.Time { return now }})
				release()
				if code == 0 || !fy.Stopped() {
					t.Fatalf("killed at %v #%d: exit %d, stopped %v\n%s", f.Op, f.N, code, fy.Stopped(), errOut.String())
				}
				reg := storagetest.New(t, root)
				for _, rt := range kept {
					i := strings.LastIndexByte(rt, ':')
					if err := reg.Serves(context.Background(), rt[:i], rt[i+1:]); err != nil {
						t.Errorf("after the kill: %v", err)
					}
				}
				if c < n {
					// A sweep now refuses, naming the killed mark shard.
					before := tree(t, root)
					out := shardDo(t, now, nil, exitError, append([]string{"shard", "sweep", "--run", "r1", "--shards", strconv.Itoa(k), "--index", "0"}, where...)...)
					var missing []int
					for i := c; i < n; i++ {
						missing = append(missing, i)
					}
					want := shard.Missing("mark", missing, n) + " " + plural(len(missing), "has", "have") + " not committed; nothing deleted"
					if !strings.Contains(out, want) && !strings.Contains(out, "no mark shard of this run has started") {
						t.Errorf("a sweep over an incomplete mark says %q, want %q", out, want)
					}
					if d := cmp.Diff(before, tree(t, root)); d != "" {
						t.Errorf("a refused sweep changed the storage:\n%s", d)
					}
				}
				for _, args := range cmds[c:] {
					shardDo(t, now, nil, 0, args...)
				}
				shardReport(t, now, "r1", 0, where)
				if d := cmp.Diff(wantTree, tree(t, root)); d != "" {
					t.Errorf("after the rerun, the storage differs from gc's (-gc +shards):\n%s", d)
				}
			})
		}
	}
}
