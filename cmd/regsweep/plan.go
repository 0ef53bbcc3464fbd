package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/sweep"
)

func newPlanCommand(e env) *cobra.Command {
	var (
		pf  planFlags
		rf  runFlags
		out string
	)
	cmd := &cobra.Command{
		Use:   "plan -o PLAN [flags] LOCATION | --config config.yml",
		Short: "Compute what gc would delete and write it to a plan file for review and apply",
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{fmt.Errorf("plan: -o PLAN is required")}
			}
			p, err := prepare(cmd, args, &pf, &rf, e, output{"-o", out})
			if err != nil {
				return err
			}
			place, err := p.loc.Place()
			if err != nil {
				return err
			}
			s, err := openSession(cmd.Context(), p.loc, &rf, false, "plan", p.startedAt, e)
			if err != nil {
				return err
			}
			defer s.Close()
			_, plan, err := s.plan(p.opts, pf.allowDeleteAll)
			if err != nil {
				return err
			}
			pfile := &mark.PlanFile{Location: place.String(), Place: place, CreatedAt: p.startedAt, PolicyFile: pf.policyFile, PolicyText: p.policyText, Plan: plan}
			if err := writePlan(out, pfile); err != nil {
				return err
			}
			printPlan(e.stdout, pfile, out, rf.verbose)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the plan to `PLAN` (zstd-compressed JSON)")
	pf.register(cmd.Flags())
	// plan writes the plan, not a report: no --report; nor --archive or a
	// lock, as it deletes nothing.
	rf.register(cmd.Flags(), withJobs|withVerbose|withVerifyLinks)
	cmd.Flags().Lookup("verbose").Usage = "list every key the plan deletes, with its size and reason"

	var verbose bool
	show := &cobra.Command{
		Use:   "show PLAN",
		Short: "Print a plan's summary, and with --verbose every key it deletes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pfile, err := readPlan(args[0])
			if err != nil {
				return err
			}
			printPlan(e.stdout, pfile, args[0], verbose)
			return nil
		},
	}
	show.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every key the plan deletes, with its size and reason")
	cmd.AddCommand(show)
	return cmd
}

// writePlan writes a plan file through a temporary file renamed into place.
func writePlan(name string, pf *mark.PlanFile) error {
	if err := writeFileAtomic(name, 0o644, func(w io.Writer) error { return mark.WritePlanFile(w, pf) }); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}

func readPlan(name string) (*mark.PlanFile, error) {
	f, err := openInput(name)
	if err != nil {
		return nil, usageError{err}
	}
	defer f.Close()
	pf, err := mark.ReadPlanFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pf, nil
}

// printPlan prints what a plan deletes, and every key when verbose.
func printPlan(w io.Writer, pf *mark.PlanFile, name string, verbose bool) {
	p := pf.Plan
	o := p.Options
	c := sweep.Count(p)
	fmt.Fprintf(w, "plan %s: %s, made %s\n", name, pf.Location, pf.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "options: delete untagged %v, min age %s, compact %+v", o.DeleteUntagged, o.MinAge, o.Compact)
	if pf.PolicyFile != "" {
		fmt.Fprintf(w, ", policy %s", pf.PolicyFile)
	}
	fmt.Fprintf(w, "\ndeletes: %s, %s, %s, %s (%s), %s, %s, %s\n",
		report.Count(c.Tags, "tag"), report.Count(c.Manifests, "manifest"), report.Count(c.LayerLinks, "layer link"), report.Count(c.Blobs, "blob"), report.Bytes(c.Bytes),
		report.Count(c.Uploads, "upload"), report.Count(c.TagIndexEntries, "history entry"), report.Count(c.Repositories, "empty repository"))
	for _, e := range pf.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	for _, warn := range report.PlanWarnings(p) {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if !verbose {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "KIND\tKEY\tSIZE\tREASON\n")
	for _, e := range sweep.Entries(p) {
		size := ""
		if e.Size > 0 {
			size = report.Bytes(e.Size)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Kind, e.Key, size, report.EntryReason(e))
	}
	tw.Flush()
}
