package sweep

import "github.com/regsweep/regsweep/mark"

// Count returns what a complete sweep of plan deletes, counted as Execute
// counts it, without consuming the plan: a plan's summary says what its
// dry run, its apply and its listing (Entries) say.
func Count(plan *mark.Plan) Counts {
	var c Counts
	bare := bareTagsOf(plan)
	for ph := range numPhases {
		for o := range phaseOps(plan, ph) {
			o.count(plan, bare, &c)
		}
	}
	c.Multipart = len(plan.Multipart)
	c.Repositories = len(plan.EmptyRepos)
	return c
}
