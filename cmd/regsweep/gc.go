package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newGCCommand(e env) *cobra.Command {
	var (
		pf     planFlags
		rf     runFlags
		dryRun bool
	)
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
			return runGC(cmd, args, &pf, &rf, dryRun, e)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&dryRun, "dry-run", false, "delete nothing; report exactly what a real run would delete")
	pf.register(fl)
	rf.register(fl, true)
	return cmd
}

// runGC validates the flags, then walks, marks, rechecks, sweeps and
// reports.
func runGC(cmd *cobra.Command, args []string, pf *planFlags, rf *runFlags, dryRun bool, e env) error {
	p, err := prepare(cmd, args, pf, rf)
	if err != nil {
		return err
	}
	if err := checkLive(rf, p.loc.ReadOnlyMaintenance, dryRun); err != nil {
		return err
	}
	// Dry runs delete nothing and take no lock.
	s, err := openSession(cmd.Context(), p.loc, rf, !dryRun, "gc", p.startedAt, e)
	if err != nil {
		return err
	}
	defer s.Close()
	inv, plan, err := s.plan(p.opts, pf.allowDeleteAll)
	if err != nil {
		return err
	}
	if !dryRun {
		if plan, err = s.recheck(inv, plan); err != nil {
			return err
		}
		if err := s.archive(plan); err != nil {
			return err
		}
	}
	return s.execute(inv, plan, dryRun, pf.policyFile)
}

// checkLive refuses to delete through a registry config that is not in
// read-only maintenance mode, unless the admin says the registry is stopped.
func checkLive(rf *runFlags, readOnly, dryRun bool) error {
	if rf.loc.config == "" || dryRun || readOnly || rf.registryStopped {
		return nil
	}
	return usageError{fmt.Errorf("%s: storage.maintenance.readonly.enabled is not true: a registry running with this config accepts pushes that a GC can break; set it (and restart the registry), or stop the registry and pass --registry-stopped", rf.loc.config)}
}

// runID names one run in its lock and report.
func runID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%x", t.UTC().Format("20060102T150405Z"), b)
}

func firstLine(err error) string {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) && len(j.Unwrap()) > 0 {
		return j.Unwrap()[0].Error()
	}
	return err.Error()
}

var _ = context.Canceled
