package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// policyRegistry is a small registry for a tag policy: app holds v1, v2
// and v3 (pushed in that order, days apart) and an image that "latest"
// pointed at before it was moved to v3's (an untagged manifest with a tag
// history entry). The policy file keeps app's newest tag.
func policyRegistry(t *testing.T) (root, policy string) {
	t.Helper()
	root = t.TempDir()
	r := storagetest.New(t, root)
	var imgs []storagetest.Image
	for _, tag := range []string{"v1", "v2", "v3"} {
		img := r.PushImage("app", storagetest.ImageOpts{OCI: true})
		r.Tag("app", tag, img)
		imgs = append(imgs, img)
	}
	r.Tag("app", "latest", r.PushImage("app", storagetest.ImageOpts{}))
	r.Tag("app", "latest", imgs[2])
	r.AgeAll(time.Now().Add(-72 * time.Hour))
	for i, tag := range []string{"v1", "v2", "v3", "latest"} {
		r.SetTagTime("app", tag, time.Now().Add(-time.Duration(60-i)*time.Hour))
	}
	policy = filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("rules:\n  - repositories: [app]\n    keep: {newest: 1}\nuntagged: delete\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, policy
}

// TestPlanSummaryCountsWhatShowLists: every count of plan's summary is the
// number of keys of that kind plan show --verbose lists.
func TestPlanSummaryCountsWhatShowLists(t *testing.T) {
	t.Parallel()
	root, policy := policyRegistry(t)
	plan := filepath.Join(t.TempDir(), "p.plan")
	code, summary := regsweep(t, "plan", "-q", "-o", plan, "--policy", policy, "--min-age", "0", root)
	if code != 0 {
		t.Fatalf("plan: exit %d", code)
	}
	code, show := regsweep(t, "plan", "show", "--verbose", plan)
	if code != 0 {
		t.Fatalf("plan show: exit %d", code)
	}
	// plan -v lists what plan show -v lists.
	_, planV := regsweep(t, "plan", "-q", "-v", "-o", filepath.Join(t.TempDir(), "again.plan"), "--policy", policy, "--min-age", "0", root)
	table := func(out string) string { _, after, _ := strings.Cut(out, "KIND"); return after }
	if table(planV) == "" || table(planV) != table(show) {
		t.Errorf("plan -v lists other keys than plan show -v:\n%s\n%s", planV, show)
	}
	kinds := map[string]int{}
	for _, l := range strings.Split(show, "\n") {
		for _, k := range []string{"tag", "history", "manifest", "layer link", "blob", "upload"} {
			if strings.HasPrefix(l, k+"  ") {
				kinds[k]++
			}
		}
	}
	// Tags count once each, however many keys they have.
	kinds["tag"] = strings.Count(show, "no rule keeps it") / 1
	if kinds["history"] == 0 || kinds["manifest"] == 0 || kinds["blob"] == 0 {
		t.Fatalf("the registry should give history entries, manifests and blobs to delete: %v\n%s", kinds, show)
	}
	for _, c := range []struct {
		kind, noun string
	}{{"history", "history entry"}, {"manifest", "manifest"}, {"layer link", "layer link"}, {"blob", "blob"}} {
		want := report.Count(kinds[c.kind], c.noun)
		if !regexp.MustCompile(`deletes: .*\b` + want + `\b`).MatchString(summary) {
			t.Errorf("plan show lists %d %s keys; the summary does not say %q:\n%s", kinds[c.kind], c.kind, want, summary)
		}
	}
}

// TestApplyReportIsHeadedApplyWithThePlansDecisions: apply's report, in
// every format, says apply and carries the tag decisions of the plan it
// applied.
func TestApplyReportIsHeadedApplyWithThePlansDecisions(t *testing.T) {
	t.Parallel()
	root, policy := policyRegistry(t)
	dir := t.TempDir()
	plan := filepath.Join(dir, "p.plan")
	if code, _ := regsweep(t, "plan", "-q", "-o", plan, "--policy", policy, "--min-age", "0", root); code != 0 {
		t.Fatalf("plan: exit %d", code)
	}
	js, md := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.md")
	code, out := regsweep(t, "apply", "-q", "--verbose", "--report", js, "--report", md, plan)
	if code != 0 {
		t.Fatalf("apply: exit %d", code)
	}
	if !regexp.MustCompile(`(?m)^regsweep apply `).MatchString(out) {
		t.Errorf("apply's summary is not headed apply:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^delete\s+app:v1\s+rule 1\s+no rule keeps it`).MatchString(out) {
		t.Errorf("apply --verbose does not list the plan's decisions:\n%s", out)
	}
	if b, err := os.ReadFile(md); err != nil || !strings.HasPrefix(string(b), "# regsweep apply: ") {
		t.Errorf("markdown report: %v\n%s", err, b)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Command != "apply" {
		t.Errorf("report command %q, want apply", rep.Command)
	}
	got := map[string]bool{}
	for _, r := range rep.Repositories {
		for _, d := range r.Tags {
			got[r.Name+":"+d.Tag] = d.Keep
		}
	}
	want := map[string]bool{"app:v1": false, "app:v2": false, "app:v3": false, "app:latest": true}
	for tag, keep := range want {
		if k, ok := got[tag]; !ok || k != keep {
			t.Errorf("report's decision on %s: keep %v (listed %v), want keep %v; all: %v", tag, k, ok, keep, got)
		}
	}
	// Every decision of the plan file, whole (repository, rule, reason),
	// and no other: nothing changed between plan and apply.
	pf, err := readPlan(plan)
	if err != nil {
		t.Fatal(err)
	}
	var fromReport []mark.TagDecision
	for _, r := range rep.Repositories {
		for _, d := range r.Tags {
			d.Repo = r.Name
			fromReport = append(fromReport, d.TagDecision)
		}
	}
	byTag := func(a, b mark.TagDecision) int { return strings.Compare(a.Repo+":"+a.Tag, b.Repo+":"+b.Tag) }
	fromPlan := slices.SortedFunc(slices.Values(pf.Plan.Decisions), byTag)
	slices.SortFunc(fromReport, byTag)
	if len(fromPlan) == 0 {
		t.Fatal("the plan file has no decisions")
	}
	if d := cmp.Diff(fromPlan, fromReport); d != "" {
		t.Errorf("apply's report does not carry the plan's decisions (-plan +report):\n%s", d)
	}
}

// TestPolicyWarningsReachEveryOutput: what the policy does that it may not
// seem to (a rule matching nothing, tags deleted while their images stay)
// is said by gc, plan and audit.
func TestPolicyWarningsReachEveryOutput(t *testing.T) {
	t.Parallel()
	root, _ := policyRegistry(t)
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("rules:\n  - repositories: [app]\n    keep: {newest: 1}\n  - repositories: [apps/*]\n    keep: {newest: 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"gc", "-q", "--dry-run", "--min-age", "0", "--policy", policy, root},
		{"plan", "-q", "-o", filepath.Join(t.TempDir(), "p.plan"), "--min-age", "0", "--policy", policy, root},
		{"audit", "-q", "--min-age", "0", "--policy", policy, root},
	} {
		_, out := regsweep(t, args...)
		for _, want := range []string{"policy rule 2 (line 4, repositories apps/*) matches no repository", "the policy deletes 3 tags but no manifest"} {
			if !strings.Contains(out, want) {
				t.Errorf("regsweep %s does not say %q", args[0], want)
			}
		}
	}
}
