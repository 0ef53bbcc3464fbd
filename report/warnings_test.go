package report

import (
	"slices"
	"testing"

	"github.com/regsweep/regsweep/mark"
)

func TestPlanWarnings(t *testing.T) {
	t.Parallel()
	pol, err := mark.ParsePolicy("p.yaml", []byte("rules:\n  - repositories: [team/*]\n    keep: {newest: 1}\n  - repositories: [teams/**, \"!teams/x\"]\n    keep: {newest: 1}\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	p := &mark.Plan{Options: mark.Options{Policy: pol},
		PolicyEffect: mark.PolicyEffect{UnmatchedRules: []int{2}, TagsOnly: 1, EveryTagDeleted: []mark.RepoTags{{Repo: "team/a", Tags: 3}}}}
	want := []string{
		"the policy deletes every tag of team/a (3)",
		"policy rule 2 (line 4, repositories teams/**, !teams/x) matches no repository: it keeps and deletes nothing",
		"the policy deletes 1 tag but no manifest: untagged manifests are kept (the policy has no untagged: delete, and --delete-untagged is not given), so their images stay, blobs and all",
	}
	if got := PlanWarnings(p); !slices.Equal(got, want) {
		t.Errorf("warnings\n%q\nwant\n%q", got, want)
	}
	if got := PlanWarnings(&mark.Plan{}); len(got) != 0 {
		t.Errorf("no policy: %q", got)
	}
}
