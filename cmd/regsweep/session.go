package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/sweep"
	"github.com/regsweep/regsweep/walker"
)

// session is one command's hold on a store: opened, locked when the command
// deletes, with its progress, log, phase times and warnings.
type session struct {
	ctx       context.Context
	flags     *runFlags
	loc       storage.Location
	store     storage.Store
	release   []func()
	stdout    io.Writer
	stderr    io.Writer
	log       *slog.Logger
	phases    []report.Phase
	warnings  []string
	startedAt time.Time
	jobs      int
	command   string // gc, plan, apply, restore
	live      live   // what a run that writes knows of the registry
	// runID names the run in its lock and its trash; empty without a lock.
	runID string
	// blobsHint is env.memoryBudget, for the walk (nil in tests).
	blobsHint func(int)
}

// openSession opens the store of loc and, for a command that deletes or
// writes, checks the registry is not live (checkLive) and takes the lock.
// Close releases both.
func openSession(ctx context.Context, loc storage.Location, rf *runFlags, lock bool, command string, startedAt time.Time, e env) (*session, error) {
	var lv live
	if lock {
		var err error
		if lv, err = checkLive(rf, loc); err != nil {
			return nil, err
		}
	}
	// -q leaves warnings and errors only.
	hopts := &slog.HandlerOptions{}
	if rf.quiet {
		hopts.Level = slog.LevelWarn
	}
	var h slog.Handler = slog.NewTextHandler(e.stderr, hopts)
	if rf.logFormat == "json" {
		h = slog.NewJSONHandler(e.stderr, hopts)
	}
	s := &session{ctx: ctx, flags: rf, loc: loc, stdout: e.stdout, stderr: e.stderr, log: slog.New(h), startedAt: startedAt, jobs: rf.jobsFor(), command: command, live: lv, blobsHint: e.memoryBudget}
	store, closeStore, err := open(ctx, loc, e.wrapStore)
	if err != nil {
		return nil, err
	}
	s.store = store
	s.release = append(s.release, closeStore)
	if !lock {
		return s, nil
	}
	host, _ := os.Hostname()
	info := storage.LockInfo{Host: host, PID: os.Getpid(), StartedAt: startedAt, RunID: runID(startedAt), Command: command}
	// The release is registered before the lock is taken: a run given up
	// on at a signal while AcquireLock waits (on S3, for the lock's
	// read-back) must not leave the lock it wrote, and neither must an
	// AcquireLock that fails after the write.
	var held atomic.Pointer[storage.Lock]
	release := e.holds.add(func() error {
		if l := held.Load(); l != nil {
			return l.Release(context.WithoutCancel(ctx))
		}
		return storage.ReleaseRun(context.WithoutCancel(ctx), store, info.RunID)
	})
	l, broken, err := storage.AcquireLock(ctx, store, info, rf.breakLock)
	if err != nil {
		if !errors.Is(err, storage.ErrLocked) { // this run's lock may be written
			if rerr := release(); rerr != nil {
				s.log.Error("lock not released", "err", rerr)
			}
		}
		s.Close()
		return nil, err
	}
	held.Store(l)
	s.runID = info.RunID
	if lv == liveUnchecked {
		s.log.Warn(uncheckedNotice)
	}
	if broken != nil {
		s.warnings = append(s.warnings, "broke the lock held by "+broken.String())
		s.log.Warn("broke a stale lock", "holder", broken.String())
	}
	s.release = append(s.release, func() {
		if err := release(); err != nil {
			s.log.Error("lock not released", "err", err)
		}
	})
	return s, nil
}

// openSessionForRestore opens a location to write into. A registry being
// restored into need not hold docker/registry/v2 yet, so a missing
// filesystem folder layout is created first; the lock is taken as for gc.
func openSessionForRestore(cmd *cobra.Command, loc storage.Location, rf *runFlags, e env) (*session, error) {
	if _, err := checkLive(rf, loc); err != nil {
		return nil, err // before the layout is made
	}
	if loc.Kind == storage.KindFilesystem {
		if err := storage.CreateLayout(loc.Dir); err != nil {
			return nil, err
		}
	}
	return openSession(cmd.Context(), loc, rf, true, "restore", time.Now(), e)
}

// Close releases the lock and the store.
func (s *session) Close() {
	for i := len(s.release) - 1; i >= 0; i-- {
		s.release[i]()
	}
	s.release = nil
}

// timed runs one phase with its progress and records its wall time.
func (s *session) timed(name string, fn func(storage.Counter) error) error {
	t := time.Now()
	p := newProgress(s.stdout, s.log, name, s.flags.quiet)
	err := fn(p)
	p.Done()
	s.phases = append(s.phases, report.Phase{Name: name, Seconds: time.Since(t).Seconds()})
	return err
}

// walk lists the store; with recheck, only its repositories again,
// consuming recheck (walker.Recheck).
func (s *session) walk(name string, recheck *walker.Inventory) (*walker.Inventory, error) {
	var inv *walker.Inventory
	err := s.timed(name, func(c storage.Counter) (err error) {
		opts := walker.Options{Jobs: s.jobs, ReadLinks: s.flags.verifyLinks, StartedAt: time.Now(), BlobsHint: s.blobsHint}
		if recheck != nil {
			inv, err = walker.Recheck(s.ctx, s.store, recheck, opts, c)
		} else {
			inv, err = walker.Walk(s.ctx, s.store, opts, c)
		}
		return err
	})
	return inv, err
}

// plan walks and marks; it refuses a plan that leaves a repository that
// has tags with none, unless allowDeleteAll.
func (s *session) plan(opts mark.Options, allowDeleteAll bool) (*walker.Inventory, *mark.Plan, error) {
	inv, err := s.walk("walk", nil)
	if err != nil {
		return nil, nil, err
	}
	var plan *mark.Plan
	err = s.timed("mark", func(storage.Counter) (err error) {
		plan, err = s.compute(inv, opts)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if err := refuseDeletesEveryTag(plan, allowDeleteAll); err != nil {
		return nil, nil, err
	}
	return inv, plan, nil
}

// refuseDeletesEveryTag turns the per-run safety net of mark into a
// refusal, before anything is deleted: the check is on the repositories
// as walked, so it holds whatever the policy's globs look like.
func refuseDeletesEveryTag(plan *mark.Plan, allowDeleteAll bool) error {
	if allowDeleteAll || len(plan.Emptied) == 0 {
		return nil
	}
	s := make([]string, len(plan.Emptied))
	for i, e := range plan.Emptied {
		s[i] = fmt.Sprintf("%s (%s; %s)", e.Repo, report.Count(e.Tags, "tag"), emptiedBy(plan.Options.Policy, e.Rules))
	}
	return usageError{fmt.Errorf("refused: the policy would delete every tag of %s: %s; pass --allow-delete-all if that is meant",
		report.Count(len(plan.Emptied), "repository"), strings.Join(s, "; "))}
}

// emptiedBy names the policy rules (1-based) that matched a repository the
// run leaves without a tag, with their lines: "rules 1 (line 2), 2 (line 4)".
func emptiedBy(pol *mark.Policy, rules []int) string {
	if len(rules) == 0 {
		return "no rule (signatures of deleted subjects, or tags without a current link)"
	}
	s := make([]string, len(rules))
	for i, n := range rules {
		s[i] = strconv.Itoa(n)
		if pol != nil && n >= 1 && n <= len(pol.Rules) {
			s[i] += fmt.Sprintf(" (line %d)", pol.Rules[n-1].Line)
		}
	}
	return report.Plural(len(rules), "rule") + " " + strings.Join(s, ", ")
}

// compute marks inv, reading the ages the walk did not need, for the
// candidates that need them only (mark.ComputeAged).
func (s *session) compute(inv *walker.Inventory, opts mark.Options) (*mark.Plan, error) {
	return mark.ComputeAged(inv, opts, walker.Ages(s.ctx, s.store, inv, s.jobs))
}

// recheck lists the repositories again just before deleting, and drops from
// plan whatever became reachable since inv was walked (a push during the
// run, a tag re-pointed since the plan was made).
func (s *session) recheck(inv *walker.Inventory, plan *mark.Plan) (*mark.Plan, error) {
	if len(plan.Tags)+len(plan.History)+len(plan.Revisions)+len(plan.LayerLinks)+len(plan.Blobs)+len(plan.Uploads) == 0 {
		return plan, nil
	}
	// The recheck takes from the first walk the repositories whose folders
	// and links still have the times it saw (on a filesystem), and lists the
	// rest again; the blobs and the parsed manifests are shared. The plan
	// holds what it needs of the first walk's repositories, which the
	// recheck consumes.
	again, err := s.walk("recheck", inv)
	if err != nil {
		return nil, err
	}
	b, err := s.compute(again, plan.Options)
	if err != nil {
		return nil, err
	}
	return mark.Intersect(plan, b), nil
}

// walked is what the report needs of a walk once its plan is made: the
// counts and the problems. The rest of the inventory (repositories, links,
// parsed manifests: most of the heap) is not kept through the sweep and
// the report; the plan holds the digest table.
type walked struct {
	stats    walker.Stats
	problems []walker.Problem
}

// walkedOf returns what the report needs of inv.
func walkedOf(inv *walker.Inventory) walked { return walked{inv.Stats, inv.Problems} }

// execute sweeps plan (dry or not), writes the reports, and returns the
// error that sets the exit status.
func (s *session) execute(inv walked, plan *mark.Plan, dryRun bool, policyFile string) error {
	var res *sweep.Result
	opts := sweep.Options{DryRun: dryRun, Jobs: s.jobs}
	if s.trasher() != nil {
		opts.Trash = s.runID
	}
	if err := s.timed("sweep", func(c storage.Counter) (err error) {
		res, err = sweep.Execute(s.ctx, s.store, plan, opts, c)
		return err
	}); err != nil {
		return err
	}
	sweptAt := time.Now()
	rep := report.New(s.command, s.store.String(), plan, res)
	windowErr := s.closeWindow(rep, res, dryRun, sweptAt)
	if rep.WindowSeconds == 0 {
		// A dry run, or a store without a trash (S3): the registry must
		// stay read-only for the whole run.
		rep.WindowSeconds = time.Since(s.startedAt).Seconds()
	}
	rep.Phases = s.phases
	st := inv.stats
	rep.Scanned = report.Scanned{Repositories: st.Repos, Tags: st.Tags, Manifests: st.Revisions, LayerLinks: st.LayerLinks, Blobs: st.Blobs, Bytes: report.ScannedBytes(st.BlobBytes, st.BlobSizes), Uploads: st.Uploads}
	for _, p := range inv.problems {
		rep.Problems = append(rep.Problems, report.Problem{Path: p.Path, Reason: p.Err.Error()})
	}
	rep.Policy = policyFile
	rep.Warnings = append(s.warnings, rep.Warnings...)
	if err := report.Text(s.stdout, rep, s.flags.verbose); err != nil {
		return err
	}
	if !dryRun && res.Total.Blobs+res.Total.LayerLinks+res.Total.Manifests+res.Total.Tags > 0 {
		fmt.Fprint(s.stdout, nextSteps(s.live))
	}
	if err := s.flags.writeReports(rep, time.Now()); err != nil {
		return err
	}
	switch {
	case res.Interrupted:
		return context.Canceled
	case windowErr != nil:
		return windowErr
	case plan.Err != nil:
		return fmt.Errorf("%w: %v", errIncomplete, firstLine(plan.Err))
	case res.Incomplete():
		return fmt.Errorf("%w: %s failed, %s skipped", errIncomplete, report.Count(len(res.Failed), "delete"), report.Count(res.BlobsSkipped, "blob"))
	}
	return nil
}
