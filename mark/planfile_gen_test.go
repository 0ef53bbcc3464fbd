package mark_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/walker"
)

// TestPlanFileRoundTripGenerated: on the plans of registries the generator
// wrote (pushes, re-tags, deletions through the API, failed uploads), with
// and without a policy, ReadPlanFile(WritePlanFile(p)) is p: every list,
// every count, every decision with its repository, every option, the
// errors. The plan read back has its own digest table, so its IDs are
// mapped into the written plan's before comparing; a list of IDs the
// mapping below does not know fails the comparison.
func TestPlanFileRoundTripGenerated(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second)
	policy := `rules:
  - repositories: ["**"]
    keep: {newest: 1, tags: ["v1.*"]}
untagged: delete
`
	seen := map[string]int{}
	for _, seed := range []uint64{1, 2} {
		root := t.TempDir()
		storagetest.Generate(t, root, 300+int(seed)*100)
		store, err := storage.OpenFS(root)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := walker.Walk(context.Background(), store, walker.Options{Jobs: 2, ReadLinks: true}, nil) // every blob stat'ed: the store closes next
		store.Close()
		if err != nil {
			t.Fatal(err)
		}
		// A manifest a tag once named, deleted through the registry's API
		// since (its revision link gone, its folder and the history entry
		// left), in each repository that has one.
		for _, r := range inv.Repos {
			func() {
				for _, tg := range r.Tags {
					for _, id := range tg.Index {
						if id == tg.Current {
							continue
						}
						for i, l := range r.Revisions {
							if l.ID == id {
								r.Revisions = append(r.Revisions[:i:i], r.Revisions[i+1:]...)
								r.Deleted = append(r.Deleted, walker.Link{ID: id})
								return
							}
						}
					}
				}
			}()
		}
		// A filesystem has no multipart uploads: one as S3 lists them.
		inv.Multipart = append(inv.Multipart, storage.MultipartUpload{Key: storage.UploadDir("a/b", "u") + "/data", ID: "m-1", Initiated: now.Add(-30 * 24 * time.Hour)})
		for _, tc := range []struct {
			name, policy string
			opts         mark.Options
		}{
			{"keep untagged", "", mark.Options{StartedAt: now}},
			{"policy and compaction", policy, mark.Options{DeleteUntagged: true, StartedAt: now, MinAge: time.Minute, Compact: mark.CompactAll}},
		} {
			opts := tc.opts
			if tc.policy != "" {
				p, err := mark.ParsePolicy("p.yaml", []byte(tc.policy), true)
				if err != nil {
					t.Fatal(err)
				}
				opts.Policy = p
			}
			plan := mark.Compute(inv, opts)
			seen["tags"] += len(plan.Tags)
			for _, e := range plan.History {
				seen["history of "+e.Of.String()]++
			}
			seen["revisions"] += len(plan.Revisions)
			seen["layer links"] += len(plan.LayerLinks)
			seen["blobs"] += len(plan.Blobs)
			seen["uploads"] += len(plan.Uploads)
			seen["multipart"] += len(plan.Multipart)
			seen["empty repositories"] += len(plan.EmptyRepos)
			seen["revision folders"] += len(plan.RevisionFolders)
			seen["decisions"] += len(plan.Decisions)
			seen["emptied"] += len(plan.Emptied)

			var file bytes.Buffer
			in := &mark.PlanFile{Location: root, Place: storage.Place{Kind: storage.KindFilesystem, Dir: root}, CreatedAt: now, PolicyFile: "p.yaml", PolicyText: tc.policy, Plan: plan}
			if err := mark.WritePlanFile(&file, in); err != nil {
				t.Fatal(err)
			}
			out, err := mark.ReadPlanFile(&file)
			if err != nil {
				t.Fatalf("seed %d, %s: %v", seed, tc.name, err)
			}
			got := out.Plan
			remap(t, plan, got)
			if d := cmp.Diff(plan, got,
				cmpopts.IgnoreUnexported(mark.Plan{}),
				cmpopts.IgnoreFields(mark.Plan{}, "Digests"),
				cmpopts.IgnoreFields(mark.Options{}, "Policy"),
				cmp.Comparer(func(a, b error) bool { return a == nil && b == nil || a != nil && b != nil && a.Error() == b.Error() }),
			); d != "" {
				t.Errorf("seed %d, %s: plan read back differs (-written +read):\n%s", seed, tc.name, d)
			}
			if (tc.policy != "") != (got.Options.Policy != nil) {
				t.Errorf("seed %d, %s: policy read back: %v", seed, tc.name, got.Options.Policy)
			}
			for _, d := range got.Decisions {
				if d.Repo == "" {
					t.Errorf("seed %d, %s: decision on %s read back without its repository", seed, tc.name, d.Tag)
				}
			}
		}
	}
	t.Logf("items round-tripped: %v", seen)
	for _, what := range []string{"tags", "history of tag", "history of revision", "history of absent", "revisions", "layer links", "blobs",
		"uploads", "multipart", "empty repositories", "revision folders", "decisions"} {
		if seen[what] == 0 {
			t.Errorf("no plan had %s: the round trip does not cover them", what)
		}
	}
}

// remap rewrites the IDs of got, a plan read back from a file, as IDs of
// want's digest table, checking that each blob keeps its size.
func remap(t *testing.T, want, got *mark.Plan) {
	t.Helper()
	id := func(x walker.ID) walker.ID {
		d := got.Digest(x)
		y := want.Digests.Lookup(d)
		if y == 0 {
			t.Errorf("digest %s read back is not in the written plan's table", d)
		}
		return y
	}
	for i := range got.History {
		got.History[i].ID = id(got.History[i].ID)
	}
	for i := range got.Revisions {
		got.Revisions[i].ID = id(got.Revisions[i].ID)
	}
	for i := range got.RevisionFolders {
		got.RevisionFolders[i].ID = id(got.RevisionFolders[i].ID)
	}
	for i := range got.LayerLinks {
		got.LayerLinks[i].ID = id(got.LayerLinks[i].ID)
	}
	for i, b := range got.Blobs {
		if got.Size(b.ID) != want.Size(id(b.ID)) {
			t.Errorf("blob %s read back with size %d, written %d", got.Digest(b.ID), got.Size(b.ID), want.Size(id(b.ID)))
		}
		got.Blobs[i].ID = id(b.ID)
	}
}
