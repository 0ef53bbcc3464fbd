package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/storage"
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

Stop the registry or make it read-only first. With --config, a config not in
read-only maintenance mode is refused unless --registry-stopped; a plain
LOCATION cannot be checked, and the run says so once before the walk unless
--registry-stopped says the registry is stopped or read-only.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGC(cmd, args, &pf, &rf, dryRun, e)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&dryRun, "dry-run", false, "delete nothing; report exactly what a real run would delete")
	pf.register(fl)
	rf.register(fl, withJobs|withReports|withVerbose|withLock|withArchive|withWindow|withVerifyLinks)
	return cmd
}

// runGC validates the flags, then walks, marks, rechecks, sweeps and
// reports.
func runGC(cmd *cobra.Command, args []string, pf *planFlags, rf *runFlags, dryRun bool, e env) error {
	if dryRun {
		for _, f := range []string{"archive", "break-lock"} {
			if cmd.Flags().Changed(f) {
				return usageError{fmt.Errorf("--dry-run and --%s: a dry run deletes nothing, so it archives nothing and takes no lock", f)}
			}
		}
		for _, f := range []string{"after-window", "after-window-timeout", "keep-trash"} {
			if cmd.Flags().Changed(f) {
				return usageError{fmt.Errorf("--dry-run and --%s: a dry run moves nothing out of the layout, so it has no window and no trash", f)}
			}
		}
	}
	if rf.verbose && pf.policyFile == "" {
		return usageError{fmt.Errorf("--verbose lists the tag decisions of a policy: give --policy")}
	}
	p, err := prepare(cmd, args, pf, rf, e)
	if err != nil {
		return err
	}
	// Dry runs delete nothing, take no lock and check no registry.
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
	}
	// The inventory goes before the sweep (nothing refers to it past this
	// line): the report needs its counts and problems only, and the rest is
	// most of the heap on a large registry.
	w := walkedOf(inv)
	if !dryRun {
		if err := s.archive(plan); err != nil {
			return err
		}
	}
	return s.execute(w, plan, dryRun, pf.policyFile)
}

// live is what a run that writes knows of the registry serving its
// storage: whether it can take pushes while the run deletes.
type live int

const (
	// liveUnchecked: a plain LOCATION, no --registry-stopped: nothing says.
	liveUnchecked live = iota
	// liveReadOnly: the --config is in read-only maintenance mode.
	liveReadOnly
	// liveStopped: the admin says the registry is stopped.
	liveStopped
)

// checkLive says what a run that deletes or writes (gc, apply, restore)
// knows of the registry, and refuses a --config whose registry could take
// pushes: not in read-only maintenance mode, and no --registry-stopped.
func checkLive(rf *runFlags, loc storage.Location) (live, error) {
	switch {
	case rf.registryStopped:
		return liveStopped, nil
	case rf.loc.config == "":
		return liveUnchecked, nil
	case loc.ReadOnlyMaintenance:
		return liveReadOnly, nil
	}
	return liveUnchecked, usageError{fmt.Errorf("%s: storage.maintenance.readonly.enabled is not true: a registry running with this config accepts pushes that a GC can break; set it (and restart the registry), or stop the registry and pass --registry-stopped", rf.loc.config)}
}

// uncheckedNotice is said once, before a run on a plain LOCATION writes.
const uncheckedNotice = "cannot check that the registry is stopped or read-only: LOCATION names no registry config, and a push during the run can lose what it wrote; " +
	"pass --config with the registry's config.yml to have its read-only mode checked, or --registry-stopped to say it is stopped or read-only"

// nextSteps is what an admin does after a run that deleted something. A
// registry's blob descriptor cache may still answer for deleted blobs
// until the registry restarts (inmemory) or its keys go (redis).
func nextSteps(l live) string {
	switch l {
	case liveStopped:
		return `
next: start the registry again (with storage.cache redis, delete the registry's
keys first), or pulls of deleted blobs may be answered from a stale cache.
`
	case liveReadOnly:
		return `
next: restart the registry, or flush its blob descriptor cache (storage.cache:
inmemory is flushed by a restart; redis: delete the registry's keys), or pulls
of deleted blobs may be answered from a stale cache. Then leave read-only mode.
`
	}
	return `
next: restart the registry, or flush its blob descriptor cache (storage.cache:
inmemory is flushed by a restart; redis: delete the registry's keys), or pulls
of deleted blobs may be answered from a stale cache. If you made it read-only
for the run, leave read-only mode then.
`
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
