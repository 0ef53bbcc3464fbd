package report

import (
	"fmt"

	"github.com/regsweep/regsweep/mark"
)

// PlanWarnings are the warnings of a plan, in sentences: what its policy
// does that it may not seem to.
func PlanWarnings(p *mark.Plan) []string {
	out := []string{}
	e := p.PolicyEffect
	for _, r := range e.EveryTagDeleted {
		out = append(out, fmt.Sprintf("the policy deletes every tag of %s (%d)", r.Repo, r.Tags))
	}
	for _, n := range e.UnmatchedRules {
		rule := fmt.Sprintf("policy rule %d", n)
		if pol := p.Options.Policy; pol != nil && n >= 1 && n <= len(pol.Rules) {
			r := &pol.Rules[n-1]
			rule += fmt.Sprintf(" (line %d, repositories %s)", r.Line, r.Repositories())
		}
		out = append(out, rule+" matches no repository: it keeps and deletes nothing")
	}
	if e.TagsOnly > 0 {
		out = append(out, fmt.Sprintf("the policy deletes %s but no manifest: untagged manifests are kept (the policy has no untagged: delete, and --delete-untagged is not given), so their images stay, blobs and all",
			Count(e.TagsOnly, "tag")))
	}
	return out
}
