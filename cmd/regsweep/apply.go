package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/mark"
)

// planOptions checks the options a plan file holds as the command line's
// are checked (validate), with its policy parsed again under
// allowDeleteAll, and returns them for the fresh plan. The plan's options
// must start when it was made, and not after now: a later start would move
// the cutoff of --min-age and --upload-max-age past what it protects.
func planOptions(pfile *mark.PlanFile, now time.Time, allowDeleteAll bool) (mark.Options, error) {
	o := pfile.Plan.Options
	switch {
	case pfile.CreatedAt.After(now):
		return o, fmt.Errorf("made at %s, after now", pfile.CreatedAt.UTC().Format(time.RFC3339))
	case !o.StartedAt.Equal(pfile.CreatedAt):
		return o, fmt.Errorf("options start at %s, not when the plan was made (%s)", o.StartedAt.UTC().Format(time.RFC3339Nano), pfile.CreatedAt.UTC().Format(time.RFC3339Nano))
	}
	var policy []byte
	if pfile.PolicyText != "" {
		policy = []byte(pfile.PolicyText)
	}
	pf := planFlagsOf(o, pfile.PolicyFile, allowDeleteAll)
	return pf.validate(policy, true, o.StartedAt)
}

func newApplyCommand(e env) *cobra.Command {
	var (
		rf             runFlags
		maxPlanAge     time.Duration
		allowDeleteAll bool
	)
	cmd := &cobra.Command{
		Use:   "apply PLAN [LOCATION | --config config.yml]",
		Short: "Delete exactly what a plan lists, after checking that none of it became reachable",
		Long: `apply deletes what PLAN (from regsweep plan) lists, in gc's safe order, after
re-checking: the location is the plan's (LOCATION or --config, when given, must
name it), the plan is not older than --max-plan-age, and nothing in it is
reachable now (tags and manifests are read again; what became reachable is
skipped and reported).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			startedAt := time.Now()
			pfile, err := readPlan(args[0])
			if err != nil {
				return err
			}
			loc, err := appliesTo(&rf.loc, args[0], args[1:], pfile.Place)
			if err != nil {
				return err
			}
			if age := startedAt.Sub(pfile.CreatedAt); age > maxPlanAge {
				return usageError{fmt.Errorf("plan %s is %s old, more than --max-plan-age %s: make a new one", args[0], age.Round(time.Second), maxPlanAge)}
			}
			if err := rf.check(); err != nil {
				return err
			}
			opts, err := planOptions(pfile, startedAt, allowDeleteAll)
			if err != nil {
				return usageError{fmt.Errorf("plan %s: %w", args[0], err)}
			}
			if err := rf.checkOutputs(loc); err != nil {
				return err
			}
			s, err := openSession(cmd.Context(), loc, &rf, true, "apply", startedAt, e)
			if err != nil {
				return err
			}
			defer s.Close()
			// The plan says what may be deleted, never what must: the fresh
			// walk, planned with the plan's options (checked as the command
			// line's) and policy (parsed from the file again), decides, and
			// the plan only narrows it.
			inv, fresh, err := s.plan(opts, allowDeleteAll)
			if err != nil {
				return err
			}
			plan := mark.Intersect(pfile.Plan, fresh)
			w := walkedOf(inv) // the inventory goes before the sweep (see gc)
			if err := s.archive(plan); err != nil {
				return err
			}
			return s.execute(w, plan, false, pfile.PolicyFile)
		},
	}
	cmd.Flags().DurationVar(&maxPlanAge, "max-plan-age", 24*time.Hour, "refuse a plan older than this")
	cmd.Flags().BoolVar(&allowDeleteAll, "allow-delete-all", false, "accept a plan whose policy may delete every tag of a repository (as gc's --allow-delete-all)")
	rf.register(cmd.Flags(), withJobs|withReports|withVerbose|withLock|withArchive|withWindow|withVerifyLinks)
	return cmd
}
