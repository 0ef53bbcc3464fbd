package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/mark"
)

func newApplyCommand(e env) *cobra.Command {
	var (
		rf         runFlags
		maxPlanAge time.Duration
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
			if err := rf.checkOutputs(loc); err != nil {
				return err
			}
			s, err := openSession(cmd.Context(), loc, &rf, true, "apply", startedAt, e)
			if err != nil {
				return err
			}
			defer s.Close()
			// The plan's decisions are rechecked against a fresh walk with the
			// plan's own options (and policy, parsed from the file again).
			plan := pfile.Plan
			inv, err := s.walk("walk", nil)
			if err != nil {
				return err
			}
			again, err := s.compute(inv, plan.Options)
			if err != nil {
				return err
			}
			plan = mark.Intersect(plan, again)
			if err := s.archive(plan); err != nil {
				return err
			}
			return s.execute(inv, plan, false, pfile.PolicyFile)
		},
	}
	cmd.Flags().DurationVar(&maxPlanAge, "max-plan-age", 24*time.Hour, "refuse a plan older than this")
	rf.register(cmd.Flags(), true)
	return cmd
}
