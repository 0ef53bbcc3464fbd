package mark

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/regsweep/regsweep/storage"
)

// TestPlanFileRoundTrip: a plan read back from its file is the plan that
// was written, decisions with their repositories included, and writes the
// same file again.
func TestPlanFileRoundTrip(t *testing.T) {
	t.Parallel()
	inv := newInv()
	for i, name := range []string{"team/app", "team/cache"} {
		r := inv.repo(name)
		for k, tag := range []string{"latest", "v1", "pr-1", "pr-2"} {
			m := inv.image(r, 1)
			inv.tag(r, tag, m, now.Add(-time.Duration(k*10+i)*24*time.Hour))
			if tag == "pr-1" {
				inv.tag(r, cosign(m, "sig"), inv.referrer(r, m), old)
			}
		}
		inv.image(r, 1) // untagged
	}
	policy := `rules:
  - repositories: ["team/**"]
    keep: {newest: 1, tags: ["v.*"]}
untagged: delete
signatures: follow-subject
`
	opts := Options{DeleteUntagged: true, StartedAt: now, MinAge: time.Hour, Compact: CompactAll, Policy: mustPolicy(t, policy)}
	plan := Compute(inv.build(), opts)
	if len(plan.Decisions) == 0 || len(plan.Tags) == 0 || len(plan.Revisions) == 0 || len(plan.Blobs) == 0 {
		t.Fatalf("the plan should decide tags and delete tags, revisions and blobs: %+v", plan)
	}
	var file bytes.Buffer
	place := storage.Place{Kind: storage.KindS3, Bucket: "b", Root: "registry", Endpoint: "http://minio:9000", Region: "eu-1", PathStyle: true}
	in := &PlanFile{Location: "s3://b/registry", Place: place, CreatedAt: now, PolicyFile: "p.yaml", PolicyText: policy, Plan: plan}
	if err := WritePlanFile(&file, in); err != nil {
		t.Fatal(err)
	}
	first := append([]byte(nil), file.Bytes()...)
	out, err := ReadPlanFile(&file)
	if err != nil {
		t.Fatal(err)
	}
	if out.Place != place {
		t.Errorf("place read back as %+v, want %+v", out.Place, place)
	}
	got := out.Plan
	if d := cmp.Diff(plan.Decisions, got.Decisions); d != "" {
		t.Errorf("decisions differ (-written +read):\n%s", d)
	}
	for _, d := range got.Decisions {
		if d.Repo == "" {
			t.Errorf("decision on %s read back without its repository", d.Tag)
		}
	}
	if d := cmp.Diff(plan.Tags, got.Tags, cmp.Comparer(func(a, b storage.Digest) bool { return a == b })); d != "" {
		t.Errorf("tags differ (-written +read):\n%s", d)
	}
	digests := func(p *Plan) (revs, blobs []string) {
		for _, r := range p.Revisions {
			revs = append(revs, p.Repo(r.Repo)+"@"+p.Digest(r.ID).String())
		}
		for _, b := range p.Blobs {
			blobs = append(blobs, p.Digest(b.ID).String())
		}
		return revs, blobs
	}
	wr, wb := digests(plan)
	gr, gb := digests(got)
	if d := cmp.Diff(wr, gr); d != "" {
		t.Errorf("revisions differ:\n%s", d)
	}
	if d := cmp.Diff(wb, gb); d != "" {
		t.Errorf("blobs differ:\n%s", d)
	}
	if got.Options.Policy == nil || got.Options.DeleteUntagged != opts.DeleteUntagged || got.Options.Compact != opts.Compact {
		t.Errorf("options read back as %+v", got.Options)
	}
	// Written again, the same bytes: nothing was lost on the way.
	var again bytes.Buffer
	if err := WritePlanFile(&again, out); err != nil {
		t.Fatal(err)
	}
	a, b := planJSONOf(t, first), planJSONOf(t, again.Bytes())
	if d := cmp.Diff(a, b); d != "" {
		t.Errorf("plan file written again differs:\n%s", d)
	}
}

// TestPlanFileRefusesDecisionsOfOtherRepositories: a decision naming no
// repository of the plan, or none at all, is a damaged plan.
func TestPlanFileRefusesDecisionsOfOtherRepositories(t *testing.T) {
	t.Parallel()
	for _, repo := range []string{"elsewhere", ""} {
		var p Plan
		doc := `{"Options":{"DeleteUntagged":false,"MinAge":0,"StartedAt":"2026-01-01T00:00:00Z","Compact":{"Uploads":false,"UploadMaxAge":0,"Repos":false,"Links":false}},"Repos":["a"],"Decisions":[{"repository":"` + repo + `","tag":"x","keep":false,"why":{"kind":"no-rule-keeps"}}]}`
		err := json.Unmarshal([]byte(doc), &p)
		if err == nil || !strings.Contains(err.Error(), "not among the plan's repositories") {
			t.Errorf("repository %q: %v", repo, err)
		}
	}
}

// TestPlanFileRefusesOlderFormats: a plan file of an older format is
// refused, saying to make the plan again, and so is one of a newer format.
func TestPlanFileRefusesOlderFormats(t *testing.T) {
	t.Parallel()
	var file bytes.Buffer
	in := &PlanFile{Location: "/r", Place: storage.Place{Kind: storage.KindFilesystem, Dir: "/r"}, CreatedAt: now, Plan: &Plan{Options: Options{StartedAt: now}}}
	if err := WritePlanFile(&file, in); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPlanFile(bytes.NewReader(file.Bytes())); err != nil {
		t.Fatalf("the file as written: %v", err)
	}
	for version, want := range map[int]string{1: "make the plan again", 2: "make the plan again", PlanFileVersion + 1: "this regsweep reads"} {
		f := rewritePlanFile(t, file.Bytes(), func(m map[string]any) { m["version"] = version })
		if _, err := ReadPlanFile(bytes.NewReader(f)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("format %d: %v, want an error saying %q", version, err, want)
		}
	}
}

// rewritePlanFile returns file, a compressed plan file, with its JSON
// edited.
func rewritePlanFile(t *testing.T, file []byte, edit func(map[string]any)) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var m map[string]any
	if err := json.NewDecoder(zr).Decode(&m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return zw.EncodeAll(b, nil)
}

func planJSONOf(t *testing.T, file []byte) string {
	t.Helper()
	f, err := ReadPlanFile(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
