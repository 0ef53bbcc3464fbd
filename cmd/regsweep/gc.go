package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/sweep"
	"github.com/regsweep/regsweep/walker"
)

// gcFlags are the gc command line as given.
type gcFlags struct {
	dryRun         bool
	deleteUntagged bool
	reportFile     string
	jobs           int
	minAge         time.Duration
	quiet          bool
	verbose        bool
	policyFile     string
	allowDeleteAll bool
	// deleteUntaggedSet: --delete-untagged was given, and wins over the
	// policy's untagged setting.
	deleteUntaggedSet bool
	loc               locationFlags
	breakLock         bool
	registryStopped   bool
	compact           []string
	uploadMaxAge      time.Duration
}

func newGCCommand(stdout, stderr io.Writer) *cobra.Command {
	var f gcFlags
	cmd := &cobra.Command{
		Use:   "gc [flags] LOCATION | --config config.yml",
		Short: "Delete unreferenced blobs (and, optionally, untagged manifests) of a stopped or read-only registry",
		Long: `gc walks the registry storage at LOCATION (the filesystem driver's
rootdirectory, the folder holding docker/registry/v2, or s3://BUCKET[/ROOT]),
or the one the registry's config.yml names, marks everything reachable from the
kept tags (or from every manifest, without --delete-untagged), and deletes the
rest in an order that leaves a servable registry if interrupted.

Stop the registry or make it read-only first.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.deleteUntaggedSet = cmd.Flags().Changed("delete-untagged")
			loc, err := f.loc.resolve(args)
			if err != nil {
				return err
			}
			return runGC(cmd.Context(), loc, f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.dryRun, "dry-run", false, "delete nothing; report exactly what a real run would delete")
	fl.BoolVar(&f.deleteUntagged, "delete-untagged", false, "also delete manifests no tag reaches (children of kept indexes and referrers of kept manifests stay)")
	fl.StringVar(&f.reportFile, "report", "", "write the JSON report to `FILE`")
	fl.IntVar(&f.jobs, "jobs", 0, "storage operations at once (default: 8 per CPU on a filesystem, 64 on S3)")
	fl.DurationVar(&f.minAge, "min-age", time.Hour, "keep unreferenced blobs and revisions modified less than this before the run started")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress output")
	fl.StringSliceVar(&f.compact, "compact", []string{"all"}, "compaction to do: any of uploads, repos, links; all; or none")
	fl.DurationVar(&f.uploadMaxAge, "upload-max-age", 7*24*time.Hour, "remove uploads started longer ago than this (with --compact uploads)")
	fl.BoolVar(&f.breakLock, "break-lock", false, "remove a lock left by a run that died, then take it")
	fl.BoolVar(&f.registryStopped, "registry-stopped", false, "with --config: the registry is stopped, so its config need not be in read-only maintenance mode")
	f.loc.register(fl)
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "list every tag decision of the policy")
	fl.StringVar(&f.policyFile, "policy", "", "apply the tag retention policy in `FILE` (YAML, see README)")
	fl.BoolVar(&f.allowDeleteAll, "allow-delete-all", false, "accept a policy rule for every repository (**) that may delete every tag")
	return cmd
}

// runGC validates the flags, then runs walk, mark, sweep and report.
func runGC(ctx context.Context, loc storage.Location, f gcFlags, stdout, stderr io.Writer) error {
	if f.minAge < 0 {
		return usageError{fmt.Errorf("--min-age %s: must not be negative", f.minAge)}
	}
	if f.jobs < 0 {
		return usageError{fmt.Errorf("--jobs %d: must be positive", f.jobs)}
	}
	jobs := f.jobs
	if jobs == 0 {
		// Local deletes are disk-bound; S3 requests wait on the network.
		jobs = 8 * runtime.NumCPU()
		if loc.Kind == storage.KindS3 {
			jobs = 64
		}
	}
	compact, err := parseCompact(f.compact, f.uploadMaxAge)
	if err != nil {
		return err
	}
	// The policy is checked before anything is read from storage.
	var policy *mark.Policy
	deleteUntagged := f.deleteUntagged
	if f.policyFile != "" {
		data, err := os.ReadFile(f.policyFile)
		if err != nil {
			return usageError{fmt.Errorf("--policy: %w", err)}
		}
		if policy, err = mark.ParsePolicy(f.policyFile, data, f.allowDeleteAll); err != nil {
			return usageError{err}
		}
		if !f.deleteUntaggedSet && policy.Untagged == "delete" {
			deleteUntagged = true
		}
	}
	if f.loc.config != "" && !f.dryRun && !loc.ReadOnlyMaintenance && !f.registryStopped {
		return usageError{fmt.Errorf("%s: storage.maintenance.readonly.enabled is not true: a registry running with this config accepts pushes that a GC can break; set it (and restart the registry), or stop the registry and pass --registry-stopped", f.loc.config)}
	}
	startedAt := time.Now()

	store, closeStore, err := open(ctx, loc)
	if err != nil {
		return err
	}
	defer closeStore()

	// One GC at a time: a lock object at the storage root. Dry runs delete
	// nothing and take no lock.
	var warnings []string
	if !f.dryRun {
		host, _ := os.Hostname()
		info := storage.LockInfo{Host: host, PID: os.Getpid(), StartedAt: startedAt, RunID: runID(startedAt), Command: "gc"}
		lock, broken, err := storage.AcquireLock(ctx, store, info, f.breakLock)
		if err != nil {
			return err
		}
		if broken != nil {
			warnings = append(warnings, "broke the lock held by "+broken.String())
		}
		defer func() {
			if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintf(stderr, "regsweep: %v\n", err)
			}
		}()
	}

	var phases []report.Phase
	timed := func(name string, fn func(storage.Counter) error) error {
		t := time.Now()
		p := newProgress(stdout, stderr, name, f.quiet)
		err := fn(p)
		p.Done()
		phases = append(phases, report.Phase{Name: name, Seconds: time.Since(t).Seconds()})
		return err
	}

	var inv *walker.Inventory
	if err := timed("walk", func(c storage.Counter) (err error) {
		inv, err = walker.Walk(ctx, store, walker.Options{Jobs: jobs}, c)
		return err
	}); err != nil {
		return err
	}
	markOpts := mark.Options{DeleteUntagged: deleteUntagged, MinAge: f.minAge, StartedAt: startedAt, Policy: policy, Compact: compact}
	var plan *mark.Plan
	_ = timed("mark", func(storage.Counter) error {
		plan = mark.Compute(inv, markOpts)
		return nil
	})
	// Before deleting anything, list the repositories again: what a push
	// made reachable since the walk drops out of the plan.
	if !f.dryRun && (len(plan.Tags) > 0 || len(plan.Revisions) > 0 || len(plan.LayerLinks) > 0 || len(plan.Blobs) > 0) {
		if err := timed("recheck", func(c storage.Counter) error {
			again, err := walker.Walk(ctx, store, walker.Options{Jobs: jobs, Recheck: inv}, c)
			if err != nil {
				return err
			}
			plan = mark.Intersect(plan, mark.Compute(again, markOpts))
			return nil
		}); err != nil {
			return err
		}
	}
	var res *sweep.Result
	if err := timed("sweep", func(c storage.Counter) (err error) {
		res, err = sweep.Execute(ctx, store, plan, sweep.Options{DryRun: f.dryRun, Jobs: jobs}, c)
		return err
	}); err != nil {
		return err
	}

	rep := report.New(store.String(), plan, res)
	rep.Phases = phases
	s := inv.Stats
	rep.Scanned = report.Scanned{Repositories: s.Repos, Tags: s.Tags, Manifests: s.Revisions, LayerLinks: s.LayerLinks, Blobs: s.Blobs, Bytes: s.BlobBytes, Uploads: s.Uploads}
	for _, p := range inv.Problems {
		rep.Problems = append(rep.Problems, report.Problem{Path: p.Path, Reason: p.Err.Error()})
	}
	rep.Policy = f.policyFile
	rep.Warnings = append(warnings, rep.Warnings...)
	if err := report.Text(stdout, rep, f.verbose); err != nil {
		return err
	}
	if f.reportFile != "" {
		if err := writeReport(f.reportFile, rep); err != nil {
			return err
		}
	}
	switch {
	case res.Interrupted:
		return context.Canceled
	case plan.Err != nil:
		return fmt.Errorf("%w: %v", errIncomplete, firstLine(plan.Err))
	case res.Incomplete():
		return fmt.Errorf("%w: %d deletes failed, %d blobs skipped", errIncomplete, len(res.Failed), res.BlobsSkipped)
	}
	return nil
}

// parseCompact reads --compact.
func parseCompact(kinds []string, uploadMaxAge time.Duration) (mark.Compact, error) {
	var c mark.Compact
	if uploadMaxAge < 0 {
		return c, usageError{fmt.Errorf("--upload-max-age %s: must not be negative", uploadMaxAge)}
	}
	for _, k := range kinds {
		switch k {
		case "all":
			c = mark.CompactAll
		case "none":
			if len(kinds) > 1 {
				return c, usageError{fmt.Errorf("--compact none: alone or not at all")}
			}
		case "uploads":
			c.Uploads = true
		case "repos":
			c.Repos = true
		case "links":
			c.Links = true
		default:
			return c, usageError{fmt.Errorf("--compact %q: want uploads, repos, links, all or none", k)}
		}
	}
	c.UploadMaxAge = uploadMaxAge
	return c, nil
}

// runID names one run in its lock and report.
func runID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%x", t.UTC().Format("20060102T150405Z"), b)
}

func writeReport(path string, rep *report.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := report.JSON(f, rep); err != nil {
		f.Close()
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}

func firstLine(err error) string {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) && len(j.Unwrap()) > 0 {
		return j.Unwrap()[0].Error()
	}
	return err.Error()
}
