package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

func TestGCPolicyEndToEnd(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	r := storagetest.New(t, root)
	day := 24 * time.Hour
	base := r.PushImage("team-a/app", storagetest.ImageOpts{Layers: 1})
	type pushed struct {
		tag string
		img storagetest.Image
		age time.Duration
	}
	var all []pushed
	for i, tag := range []string{"v1.0.0", "pr-1", "pr-2", "pr-3", "nightly", "latest"} {
		img := r.PushImage("team-a/app", storagetest.ImageOpts{OCI: true, SharedLayers: base.Blobs[1:]})
		r.Tag("team-a/app", tag, img)
		all = append(all, pushed{tag, img, time.Duration(60-10*i) * day})
	}
	sig := r.PushReferrer("team-a/app", all[1].img, storagetest.ArtifactSignature) // signs pr-1
	sigTag := "sha256-" + all[1].img.Digest.Encoded() + ".sig"
	r.Tag("team-a/app", sigTag, sig)
	keptSig := r.PushReferrer("team-a/app", all[5].img, storagetest.ArtifactSignature) // signs latest
	keptSigTag := "sha256-" + all[5].img.Digest.Encoded() + ".sig"
	r.Tag("team-a/app", keptSigTag, keptSig)
	other := r.PushImage("team-b/tool", storagetest.ImageOpts{})
	r.Tag("team-b/tool", "old", other)

	r.AgeAll(time.Now().Add(-90 * day))
	for _, p := range all {
		r.SetTagTime("team-a/app", p.tag, time.Now().Add(-p.age))
	}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte(`rules:
  - repositories: ["team-a/**"]
    keep:
      newest: 2             # latest (10d), nightly (20d)
      younger_than: 25d     # nobody else
      tags: ["^v[0-9]+\\.[0-9]+\\.[0-9]+$"]
untagged: delete
signatures: follow-subject
`), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, dry := gc(t, "--dry-run", "--verbose", "--policy", policy, root)
	if code != 0 {
		t.Fatalf("dry run: exit %d", code)
	}
	for _, want := range []string{"delete  team-a/app:pr-1", "keep    team-a/app:v1.0.0", "matches ^v[0-9]+", "signature of deleted subject", "signature of kept subject", "no rule matches"} {
		if !strings.Contains(out, want) {
			t.Errorf("verbose dry run lacks %q", want)
		}
	}
	code, _, rep := gc(t, "--policy", policy, root)
	if code != 0 {
		t.Fatalf("gc: exit %d", code)
	}
	if rep.Counts != dry.Counts {
		t.Errorf("dry run %+v, real %+v", dry.Counts, rep.Counts)
	}
	if rep.Tags != 4 || rep.Manifests != 5 {
		t.Errorf("deleted %d tags, %d manifests; want 4 tags (pr-1..3 and pr-1's signature), their 4 manifests and the untagged base image", rep.Tags, rep.Manifests)
	}
	reasons := map[string]string{}
	for _, repo := range rep.Repositories {
		if repo.Name == "team-a/app" && repo.Counts.Tags != 4 {
			t.Errorf("team-a/app: %d tags deleted in the per-repository report, want 4", repo.Counts.Tags)
		}
		for _, d := range repo.Tags {
			reasons[repo.Name+":"+d.Tag] = d.Reason
		}
	}
	if reasons["team-a/app:pr-2"] != "no rule keeps it (rule 1 matches)" || reasons["team-a/app:latest"] != "newest 2" || reasons["team-b/tool:old"] != "no rule matches" {
		t.Errorf("reasons in the JSON report: %v", reasons)
	}

	r.Reopen()
	for _, tag := range []string{"v1.0.0", "nightly", "latest", keptSigTag} {
		if err := r.Serves(ctx, "team-a/app", tag); err != nil {
			t.Errorf("kept tag: %v", err)
		}
	}
	if err := r.Serves(ctx, "team-b/tool", "old"); err != nil {
		t.Errorf("kept tag: %v", err)
	}
	for _, tag := range []string{"pr-1", "pr-2", "pr-3", sigTag} {
		if err := r.Serves(ctx, "team-a/app", tag); err == nil {
			t.Errorf("deleted tag %s still serves", tag)
		}
	}
	st := storagetest.Snapshot(t, root)
	if !st.Blobs[base.Blobs[1]] {
		t.Error("the layer every image shares was deleted")
	}
	for _, p := range all[1:4] {
		if st.Blobs[p.img.Digest] || st.Blobs[p.img.Blobs[0]] {
			t.Errorf("%s: manifest or config blob survived", p.tag)
		}
	}
}

func TestGCRefusesABadPolicyBeforeReadingStorage(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(policy, []byte("rules:\n  - repositories: [\"**\"]\n    keep: {younger_than: 30x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The root does not exist: a refusal naming the policy shows storage was never opened.
	code, out, _ := gc(t, "--policy", policy, filepath.Join(t.TempDir(), "nowhere"))
	if code != exitUsage || !strings.Contains(out, "p.yaml:3: keep.younger_than") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}

// TestGCPolicyNeverDeletesATagOutsideTheGrammar: tags written through
// distribution's storage code under names the registry's API would refuse
// are kept, with what they reference, by a policy that deletes every other
// tag of their repository, whichever walker lists them (tree on a
// filesystem, flat on S3), and the report names them.
func TestGCPolicyNeverDeletesATagOutsideTheGrammar(t *testing.T) {
	forBackends(t, testGCPolicyNeverDeletesATagOutsideTheGrammar)
}

func testGCPolicyNeverDeletesATagOutsideTheGrammar(t *testing.T, b backend) {
	r, where := newRegistry(t, b)
	keep := r.PushImage("ci/app", storagetest.ImageOpts{})
	r.Tag("ci/app", "keep-me", keep)
	doomed := r.PushImage("ci/app", storagetest.ImageOpts{})
	r.Tag("ci/app", "doomed", doomed)
	foreign := map[string]storagetest.Image{}
	for _, name := range []string{"-dash", ".dot", "x" + strings.Repeat("y", 128), "-"} {
		img := r.PushImage("ci/app", storagetest.ImageOpts{})
		r.Tag("ci/app", name, img)
		foreign[name] = img
	}
	if b == onFS {
		r.AgeAll(time.Now().Add(-48 * time.Hour))
	} else {
		time.Sleep(1100 * time.Millisecond)
	}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("rules:\n  - repositories: [\"ci/**\"]\n    keep: {tags: [keep-me]}\nuntagged: delete\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, rep := gc(t, append([]string{"--verbose", "--policy", policy}, where...)...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	after := r.State()
	if _, ok := after.Tags["ci/app:doomed"]; ok || rep.Tags != 1 {
		t.Errorf("the policy did not delete ci/app:doomed (%d tags deleted)", rep.Tags)
	}
	for name, img := range foreign {
		if after.Tags["ci/app:"+name] != img.Digest || !after.Revisions["ci/app@"+img.Digest.String()] {
			t.Errorf("tag %q outside the grammar, or its manifest, was deleted", name)
		}
		for _, d := range img.Blobs {
			if !after.Blobs[d] {
				t.Errorf("blob %s of tag %q was deleted", d, name)
			}
		}
		if !strings.Contains(out, storage.TagDir("ci/app", name)) {
			t.Errorf("the output does not name tag folder %q", name)
		}
	}
	r.Reopen()
	if err := r.Serves(context.Background(), "ci/app", "keep-me"); err != nil {
		t.Error(err)
	}
}

// TestGCPolicySafetyNet: a policy whose rules together match every
// repository without keeping a newest tag is refused before the walk, however
// its globs are spelled; one that would leave a real repository that has tags
// with none is refused after the walk, naming the repository and the rule;
// --allow-delete-all lets both through. Refused runs delete nothing.
func TestGCPolicySafetyNet(t *testing.T) {
	root := t.TempDir()
	r := storagetest.New(t, root)
	for _, rt := range []string{"ci/a:release", "ci/a:dev-1", "ci/b:dev-1", "ci/b:dev-2", "tools/x:latest"} {
		repo, tag, _ := strings.Cut(rt, ":")
		r.Tag(repo, tag, r.PushImage(repo, storagetest.ImageOpts{}))
	}
	r.AgeAll(time.Now().Add(-48 * time.Hour))
	write := func(src string) string {
		p := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := r.State()
	unchanged := func(what string) {
		t.Helper()
		after := r.State()
		if len(after.Tags) != len(before.Tags) || len(after.Blobs) != len(before.Blobs) || len(after.Revisions) != len(before.Revisions) {
			t.Fatalf("%s: a refused run deleted something", what)
		}
	}
	for _, src := range []string{
		"rules:\n  - repositories: [\"**/*\"]\n    keep: {tags: [\"^nomatch$\"]}\n",
		"rules:\n  - repositories: [\"*\", \"*/**\"]\n    keep: {younger_than: 1d}\n",
		"rules:\n  - repositories: [\"{ci,tools}/**\", \"**\", \"!**/_*\"]\n    keep: {tags: [release]}\n",
	} {
		code, out, _ := gc(t, "--delete-untagged", "--policy", write(src), root)
		if code != exitUsage || !strings.Contains(out, "matches every repository") {
			t.Errorf("exit %d, want a refusal before the walk:\n%s", code, out)
		}
		unchanged(src)
	}
	// ci/b has no release tag: the rule leaves it with none.
	pol := write("rules:\n  - repositories: [\"ci/**\"]\n    keep: {tags: [release]}\n")
	for _, args := range [][]string{{"gc", "--min-age", "0"}, {"gc", "--dry-run", "--min-age", "0"}, {"plan", "-o", filepath.Join(t.TempDir(), "p")}} {
		code, out := regsweep(t, append(args, "-q", "--policy", pol, root)...)
		if code != exitUsage || !strings.Contains(out, "every tag of 1 repository: ci/b (2 tags; rule 1 (line 2))") || !strings.Contains(out, "--allow-delete-all") {
			t.Errorf("%s: exit %d, want a refusal naming ci/b and rule 1:\n%s", args[0], code, out)
		}
		unchanged(args[0])
	}
	code, _, rep := gc(t, "--allow-delete-all", "--policy", pol, root)
	if code != 0 || rep.Tags != 3 {
		t.Fatalf("--allow-delete-all: exit %d, %d tags deleted, want 3", code, rep.Tags)
	}
	r.Reopen()
	for _, rt := range []string{"ci/a:release", "tools/x:latest"} {
		repo, tag, _ := strings.Cut(rt, ":")
		if err := r.Serves(context.Background(), repo, tag); err != nil {
			t.Error(err)
		}
	}
}
