package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/shard"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/sweep"
	"github.com/regsweep/regsweep/walker"
)

// shardLockID is the lock's run ID for every shard of sharded run id: the
// shards of one run share the lock, another run is refused.
func shardLockID(id string) string { return "shard:" + id }

// joinLock takes the lock for sharded run id, or joins it when another
// shard of the same run holds it. It is released by shard report once the
// run is complete. A lock of another run is refused (or, with breakLock,
// broken unless its holder is alive on this host).
func (s *session) joinLock(id, command string, breakLock bool) error {
	if lv, err := checkLive(s.flags, s.loc); err != nil {
		return err
	} else if lv == liveUnchecked {
		s.log.Warn(uncheckedNotice)
	}
	host, _ := os.Hostname()
	info := storage.LockInfo{Host: host, PID: os.Getpid(), StartedAt: s.startedAt, RunID: shardLockID(id), Command: command}
	holder, err := storage.ReadLock(s.ctx, s.store)
	if err == nil && holder.RunID == info.RunID {
		return nil // another shard of this run, or an earlier attempt of this one
	}
	if err != nil && !storage.IsNotFound(err) && !breakLock {
		return err
	}
	_, broken, err := storage.AcquireLock(s.ctx, s.store, info, breakLock)
	if errors.Is(err, storage.ErrLocked) {
		// Two shards of this run racing for the lock: one wrote it.
		if h, rerr := storage.ReadLock(s.ctx, s.store); rerr == nil && h.RunID == info.RunID {
			return nil
		}
	}
	if err != nil {
		return err
	}
	if broken != nil {
		s.warnings = append(s.warnings, "broke the lock held by "+broken.String())
		s.log.Warn("broke a stale lock", "holder", broken.String())
	}
	return nil
}

// shardOptions are the recorded form of a run's plan options.
func shardOptions(o mark.Options, policyText string, allowDeleteAll bool) shard.Options {
	pf := planFlagsOf(o, "", allowDeleteAll)
	return shard.Options{DeleteUntagged: o.DeleteUntagged, MinAge: o.MinAge, PolicyText: policyText, AllowDeleteAll: allowDeleteAll,
		Compact: pf.compact, UploadMaxAge: o.Compact.UploadMaxAge}
}

// runOptions validates a run's recorded options again, as a command
// line's (the run folder is untrusted), at the run's start.
func runOptions(r *shard.Run) (mark.Options, error) {
	o := r.Options
	// The policy is the text recorded, whatever file it came from.
	pf := planFlags{deleteUntagged: o.DeleteUntagged, minAge: o.MinAge, policyFile: shard.RunKey(r.ID) + " policy_text", allowDeleteAll: o.AllowDeleteAll, compact: o.Compact, uploadMaxAge: o.UploadMaxAge}
	var policy []byte
	if o.PolicyText != "" {
		policy = []byte(o.PolicyText)
	}
	opts, err := pf.validate(policy, true, r.StartedAt)
	if err != nil {
		// Not the command line's fault: the run folder's (exit 1).
		var u usageError
		if errors.As(err, &u) {
			err = u.error
		}
		return opts, fmt.Errorf("run %s: its recorded options (%s): %w", r.ID, shard.RunKey(r.ID), err)
	}
	return opts, nil
}

// shardTrash is the trash folder shard what i of run id moves what it
// deletes into: on a filesystem, as gc does (a blob, a link or a tag folder
// goes with one rename, so that a kill leaves no half-deleted folder and
// the window is short); "" on S3.
func (s *session) shardTrash(id, what string, i int) string {
	if s.loc.Kind != storage.KindFilesystem || storage.CapabilitiesOf(s.store).Trasher == nil {
		return ""
	}
	return shard.TrashRun(id, what, i)
}

// freeShardTrash frees a shard's trash folder: what it moved there, or what
// a killed earlier attempt of it left.
func (s *session) freeShardTrash(name string) error {
	t := storage.CapabilitiesOf(s.store).Trasher
	if name == "" || t == nil {
		return nil
	}
	runs, err := t.Trashes(s.ctx)
	if err != nil || !slices.Contains(runs, name) {
		return err
	}
	return s.timed("free trash", func(storage.Counter) error {
		if err := sweep.FreeTrashRun(s.ctx, t, name, s.jobs); err != nil {
			return fmt.Errorf("free the trash %s/%s/%s: %w", s.store, storage.TrashDir, name, err)
		}
		return nil
	})
}

// runShardMark is mark shard I of N: it decides for the repositories whose
// name hashes to I, deletes their tags and untagged manifests (sweep's
// order), writes its marks and layer links, then its commit.
func runShardMark(cmd *cobra.Command, args []string, sf *shardFlags, pf *planFlags, rf *runFlags, e env) error {
	p, err := prepare(cmd, args, pf, rf, e)
	if err != nil {
		return err
	}
	s, err := openSession(cmd.Context(), p.loc, rf, false, "shard mark", p.startedAt, e)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.joinLock(sf.run, "shard mark", rf.breakLock); err != nil {
		return err
	}
	run, err := shard.Join(s.ctx, s.store, shard.Run{ID: sf.run, Shards: sf.shards, StartedAt: p.startedAt, PolicyFile: pf.policyFile,
		Options: shardOptions(p.opts, p.policyText, pf.allowDeleteAll)})
	if err != nil {
		if errors.Is(err, shard.ErrOptions) {
			return usageError{err}
		}
		return err
	}
	// Every shard decides as of the run's start, the first shard's.
	opts, err := runOptions(run)
	if err != nil {
		return err
	}
	trash := s.shardTrash(run.ID, "mark", sf.index)
	if c, err := shard.ReadCommit(s.ctx, s.store, run, sf.index); err != nil {
		return err
	} else if c != nil {
		fmt.Fprintf(s.stdout, "mark shard %d of %d of run %s is committed already: nothing to do\n", sf.index, sf.shards, sf.run)
		return s.freeShardTrash(trash)
	}

	// Only this shard's repositories are listed and read, and no blob: the
	// manifests they hold are read by path, and the sweep shards, which
	// list the blobs, judge every other blob.
	var inv *walker.Inventory
	if err := s.timed("walk", func(c storage.Counter) (err error) {
		inv, err = walker.Walk(s.ctx, s.store, walker.Options{Jobs: s.jobs, StartedAt: s.startedAt, NoBlobListing: true,
			Repos: func(name string) bool { return shard.RepoShard(name, run.Shards) == sf.index }}, c)
		return err
	}); err != nil {
		return err
	}
	var ms *mark.MarkShard
	owned := func(u storage.MultipartUpload) bool { return shard.KeyShard(u.Key, run.Shards) == sf.index }
	err = s.timed("mark", func(storage.Counter) error {
		ms = mark.ComputeMarkShard(inv, opts, owned)
		if repos := ms.Plan.LinkAgesWanted(); len(repos) > 0 {
			if err := walker.AgeLayerLinks(s.ctx, s.store, inv, repos, s.jobs); err != nil {
				return err
			}
			ms = mark.ComputeMarkShard(inv, opts, owned)
		}
		return nil
	})
	if err != nil {
		return err
	}
	plan := ms.Plan
	if err := refuseDeletesEveryTag(plan, pf.allowDeleteAll); err != nil {
		return err
	}
	var res *sweep.Result
	if err := s.timed("sweep", func(c storage.Counter) (err error) {
		res, err = sweep.Execute(s.ctx, s.store, plan, sweep.Options{Jobs: s.jobs, Trash: trash}, c)
		return err
	}); err != nil {
		return err
	}
	sweptAt := e.startTime()
	if !res.Interrupted {
		if err := s.freeShardTrash(trash); err != nil {
			return err
		}
	}
	rep := s.partReport("shard mark", plan, res, rf.quiet)
	shardWindow(rep, res, run, sweptAt)
	rep.Policy = pf.policyFile
	st := &rep.Scanned
	emptied := map[string]bool{}
	for _, i := range plan.EmptyRepos {
		emptied[plan.Repo(i)] = true
	}
	// What the sweep shards need: the marks, and the layer links of the
	// repositories that stay (those of emptied ones are gone), indexed by
	// part (4 bytes a mark, 8 a link); each part's records are made when
	// it is written.
	t := inv.Digests
	var marksOf [shard.Buckets + 1][]walker.ID
	var linksOf [shard.Buckets + 1][][2]uint32
	slot := func(d storage.Digest) int {
		if _, ok := d.Sum256(); ok {
			return shard.BucketOf(d)
		}
		return shard.Buckets // the other part
	}
	for id := walker.ID(1); int(id) <= t.Len(); id++ {
		if ms.Marked.Has(id) {
			b := slot(t.Digest(id))
			marksOf[b] = append(marksOf[b], id)
		}
	}
	for ri, r := range inv.Repos {
		st.Repositories++
		st.Tags += len(r.Tags)
		st.Manifests += len(r.Revisions)
		st.LayerLinks += len(r.Layers)
		st.Uploads += len(r.Uploads)
		if r.Unreadable != nil || storage.ValidRepoName(r.Name) != nil || emptied[r.Name] {
			continue
		}
		for li, l := range r.Layers {
			if l.Corrupt() {
				continue
			}
			route := l.ID
			if l.Target() != 0 {
				route = l.Target()
			}
			b := slot(t.Digest(route))
			linksOf[b] = append(linksOf[b], [2]uint32{uint32(ri), uint32(li)})
		}
	}
	source := func(b int, mark func(storage.Digest), link func(shard.Link)) {
		if b < 0 {
			b = shard.Buckets
		}
		for _, id := range marksOf[b] {
			mark(t.Digest(id))
		}
		for _, at := range linksOf[b] {
			r := inv.Repos[at[0]]
			l := r.Layers[at[1]]
			sl := shard.Link{Repo: r.Name, Digest: t.Digest(l.ID), ModTime: int64(l.ModTime)}
			if l.Target() != 0 {
				sl.Target = t.Digest(l.Target())
			}
			link(sl)
		}
		marksOf[b], linksOf[b] = nil, nil // written: their memory goes
	}
	for _, pr := range inv.Problems {
		rep.Problems = append(rep.Problems, report.Problem{Path: pr.Path, Reason: pr.Err.Error()})
	}
	if err := s.textReport(rep); err != nil {
		return err
	}
	switch {
	case res.Interrupted:
		return context.Canceled
	case res.Incomplete():
		// No commit: the sweep must not run while a manifest this shard
		// meant to delete still stands; a rerun retries.
		return fmt.Errorf("%w: %s failed; mark shard %d not committed, run it again", errIncomplete, report.Count(len(res.Failed), "delete"), sf.index)
	}
	infos, err := shard.WriteParts(s.ctx, s.store, run.ID, sf.index, s.jobs, source)
	if err != nil {
		return err
	}
	effect, _ := json.Marshal(plan.PolicyEffect)
	rj, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if err := shard.WriteCommit(s.ctx, s.store, shard.Commit{Run: run.ID, Shard: sf.index, Shards: run.Shards, Parts: infos,
		Sweepable: ms.Sweepable, PolicyEffect: effect, Report: rj}); err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "\nmark shard %d of %d of run %s committed\n", sf.index, run.Shards, run.ID)
	return nil
}

// shardWindow records a shard's window in its part, as gc's: from the
// run's start (its first mark shard's) to sweptAt, when the shard's last
// key was out of the layout; the merged report's is the longest part's,
// the time the registry had to stay read-only.
func shardWindow(rep *report.Report, res *sweep.Result, run *shard.Run, sweptAt time.Time) {
	rep.WindowSeconds = max(sweptAt.Sub(run.StartedAt).Seconds(), 0)
	if res.TrashFallback != "" {
		rep.Warnings = append(rep.Warnings, "deleted in place, not moved into the trash: "+res.TrashFallback)
	}
}

// partReport is the report of one shard's part, without the policy's
// effect (report merges it over every shard).
func (s *session) partReport(command string, plan *mark.Plan, res *sweep.Result, quiet bool) *report.Report {
	effect := plan.PolicyEffect
	plan.PolicyEffect = mark.PolicyEffect{}
	rep := report.New(command, s.store.String(), plan, res)
	plan.PolicyEffect = effect
	rep.Phases = s.phases
	rep.Warnings = append(s.warnings, rep.Warnings...)
	return rep
}

// textReport prints a shard's part, unless -q.
func (s *session) textReport(rep *report.Report) error {
	if s.flags.quiet {
		return nil
	}
	return report.Text(s.stdout, rep, false)
}

// openedRun is a sharded run as a sweep or report shard reads it back.
type openedRun struct {
	*shard.Run
	// opts are the run's recorded options, validated again (runOptions).
	opts mark.Options
	// commits holds the commit of each mark shard, nil for those missing.
	commits []*shard.Commit
	missing []int
}

// openRun opens the session of a command that reads run id back (shard
// sweep, shard report; the lock is the run's, joined later if at all),
// and reads the run, its options and its mark shards' commits. With
// --report flags, their files are checked first.
func openRun(cmd *cobra.Command, args []string, id string, rf *runFlags, command string, startedAt time.Time, e env) (*session, *openedRun, error) {
	loc, err := rf.loc.resolve(args)
	if err != nil {
		return nil, nil, err
	}
	if err := rf.check(); err != nil {
		return nil, nil, err
	}
	if err := rf.checkOutputs(loc); err != nil {
		return nil, nil, err
	}
	s, err := openSession(cmd.Context(), loc, rf, false, command, startedAt, e)
	if err != nil {
		return nil, nil, err
	}
	r, err := func() (*openedRun, error) {
		run, err := shard.ReadRun(s.ctx, s.store, id)
		if err != nil {
			return nil, err
		}
		r := &openedRun{Run: run}
		if r.opts, err = runOptions(run); err != nil {
			return nil, err
		}
		r.commits, r.missing, err = shard.Commits(s.ctx, s.store, run)
		return r, err
	}()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, r, nil
}

// runShardSweep is sweep shard J of K: once every mark shard committed, it
// deletes the unreferenced blobs of its prefix range and the layer links
// to them, then writes its report part.
func runShardSweep(cmd *cobra.Command, args []string, sf *shardFlags, rf *runFlags, e env) error {
	s, run, err := openRun(cmd, args, sf.run, rf, "shard sweep", e.startTime(), e)
	if err != nil {
		return err
	}
	defer s.Close()
	opts, commits, missing := run.opts, run.commits, run.missing
	if len(missing) > 0 {
		return fmt.Errorf("refused: %w: %s %s not committed; nothing deleted", shard.ErrIncomplete, shard.Missing("mark", missing, run.Shards), plural(len(missing), "has", "have"))
	}
	if err := s.joinLock(run.ID, "shard sweep", false); err != nil {
		return err
	}
	if err := shard.JoinSweep(s.ctx, s.store, run.ID, sf.shards); err != nil {
		if errors.Is(err, shard.ErrOptions) {
			return usageError{err}
		}
		return err
	}
	trash := s.shardTrash(run.ID, "sweep", sf.index)
	if parts, _, err := shard.SweepParts(s.ctx, s.store, run.ID, sf.shards); err != nil {
		return err
	} else if parts[sf.index] != nil {
		fmt.Fprintf(s.stdout, "sweep shard %d of %d of run %s is done already: nothing to do\n", sf.index, sf.shards, run.ID)
		return s.freeShardTrash(trash)
	}
	lo, hi := shard.SweepRange(sf.index, sf.shards)
	var inv *walker.Inventory
	if err := s.timed("walk", func(c storage.Counter) (err error) {
		inv, err = walker.WalkBlobs(s.ctx, s.store, lo, hi, s.jobs, c)
		return err
	}); err != nil {
		return err
	}
	var plan *mark.Plan
	sweepable := true
	var unswept []int
	if err := s.timed("mark", func(storage.Counter) error {
		t := inv.Digests
		var markedIDs []walker.ID
		repos := map[string]*walker.Repo{}
		inRange := func(d storage.Digest) bool { b := shard.BucketOf(d); return b >= lo && b < hi }
		for i, c := range commits {
			if !c.Sweepable {
				sweepable = false
				unswept = append(unswept, i)
			}
			for _, pi := range c.Parts {
				if pi.Bucket >= 0 && (pi.Bucket < lo || pi.Bucket >= hi) {
					continue
				}
				other := pi.Bucket < 0
				err := shard.ReadPart(s.ctx, s.store, run.Run, i, pi, func(marks []storage.Digest, links []shard.Link) {
					for _, d := range marks {
						markedIDs = append(markedIDs, t.Intern(d))
					}
					for _, l := range links {
						if other && !inRange(l.Digest) && (l.Target.IsZero() || !inRange(l.Target)) {
							continue
						}
						r := repos[l.Repo]
						if r == nil {
							r = &walker.Repo{Name: l.Repo}
							repos[l.Repo] = r
						}
						wl := walker.Link{ID: t.Intern(l.Digest), ModTime: walker.Time(l.ModTime)}
						if !l.Target.IsZero() {
							wl = walker.NewLink(wl.ID, wl.ModTime, t.Intern(l.Target), false)
						}
						r.Layers = append(r.Layers, wl)
					}
				})
				if err != nil {
					return err
				}
			}
		}
		for _, r := range repos {
			inv.Repos = append(inv.Repos, r)
		}
		slices.SortFunc(inv.Repos, func(a, b *walker.Repo) int { return cmpString(a.Name, b.Name) })
		// The mark shards listed no blob: the age of a link to a blob gone
		// is read here, where the blobs are listed.
		if err := walker.StatOrphanLayerLinks(s.ctx, s.store, inv, s.jobs); err != nil {
			return err
		}
		marked := mark.NewBitset(t.Len())
		for _, id := range markedIDs {
			marked.Set(id)
		}
		plan = mark.ComputeSweepShard(inv, marked, opts, sweepable)
		return nil
	}); err != nil {
		return err
	}
	var res *sweep.Result
	if err := s.timed("sweep", func(c storage.Counter) (err error) {
		res, err = sweep.Execute(s.ctx, s.store, plan, sweep.Options{Jobs: s.jobs, Trash: trash}, c)
		return err
	}); err != nil {
		return err
	}
	sweptAt := e.startTime()
	if !res.Interrupted {
		if err := s.freeShardTrash(trash); err != nil {
			return err
		}
	}
	rep := s.partReport("shard sweep", plan, res, rf.quiet)
	shardWindow(rep, res, run.Run, sweptAt)
	rep.Scanned = report.Scanned{Blobs: inv.Stats.Blobs, Bytes: report.ScannedBytes(inv.Stats.BlobBytes, true)}
	rep.Repositories = slices.DeleteFunc(rep.Repositories, func(r report.Repository) bool { return r.Counts == (sweep.Counts{}) })
	for _, pr := range inv.Problems {
		rep.Problems = append(rep.Problems, report.Problem{Path: pr.Path, Reason: pr.Err.Error()})
	}
	if !sweepable {
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s found a kept manifest unreadable or a repository left alone: no blob swept (see their errors)", shard.Missing("mark", unswept, run.Shards)))
	}
	if err := s.textReport(rep); err != nil {
		return err
	}
	switch {
	case res.Interrupted:
		return context.Canceled
	case res.Incomplete():
		return fmt.Errorf("%w: %s failed, %s skipped; sweep shard %d has no report part, run it again", errIncomplete, report.Count(len(res.Failed), "delete"), report.Count(res.BlobsSkipped, "blob"), sf.index)
	}
	rj, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if err := shard.WriteSweepPart(s.ctx, s.store, shard.SweepPart{Run: run.ID, Shard: sf.index, Shards: sf.shards, Report: rj}); err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "\nsweep shard %d of %d of run %s done\n", sf.index, sf.shards, run.ID)
	return nil
}

// runShardReport merges the parts of a sharded run into one report, as gc
// writes it, naming the shards missing; a complete run's lock is released.
func runShardReport(cmd *cobra.Command, args []string, sf *shardFlags, rf *runFlags, e env) error {
	s, run, err := openRun(cmd, args, sf.run, rf, "shard report", time.Now(), e)
	if err != nil {
		return err
	}
	defer s.Close()
	opts, commits, missingMarks := run.opts, run.commits, run.missing
	var parts []*report.Report
	var phases []report.Phase
	var effects []mark.PolicyEffect
	decode := func(what string, i int, raw json.RawMessage) error {
		var r report.Report
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("run %s: report of %s shard %d: %w", run.ID, what, i, err)
		}
		for _, p := range r.Phases {
			phases = append(phases, report.Phase{Name: fmt.Sprintf("%s %d %s", what, i, p.Name), Seconds: p.Seconds})
		}
		parts = append(parts, &r)
		return nil
	}
	for i, c := range commits {
		if c == nil {
			continue
		}
		if err := decode("mark", i, c.Report); err != nil {
			return err
		}
		var pe mark.PolicyEffect
		if len(c.PolicyEffect) > 0 {
			dec := json.NewDecoder(bytes.NewReader(c.PolicyEffect))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&pe); err != nil {
				return fmt.Errorf("run %s: policy effect of mark shard %d: %w", run.ID, i, err)
			}
		}
		effects = append(effects, pe)
	}
	var missing []string
	if len(missingMarks) > 0 {
		missing = append(missing, shard.Missing("mark", missingMarks, run.Shards))
	}
	sw, err := shard.ReadSweep(s.ctx, s.store, run.ID)
	if err != nil {
		return err
	}
	if sw == nil {
		missing = append(missing, "every sweep shard (none has started)")
	} else {
		sparts, missingSweeps, err := shard.SweepParts(s.ctx, s.store, run.ID, sw.Shards)
		if err != nil {
			return err
		}
		for j, p := range sparts {
			if p == nil {
				continue
			}
			if err := decode("sweep", j, p.Report); err != nil {
				return err
			}
		}
		if len(missingSweeps) > 0 {
			missing = append(missing, shard.Missing("sweep", missingSweeps, sw.Shards))
		}
	}
	rep := report.Merge("shard", parts)
	if len(parts) == 0 {
		rep.Location, rep.StartedAt, rep.DeleteUntagged, rep.MinAge, rep.Policy = s.store.String(), run.StartedAt.UTC(), opts.DeleteUntagged, opts.MinAge.String(), run.PolicyFile
	}
	rep.Phases = phases
	// The policy's effect, over every shard: a rule matches no repository
	// only if it matched none in any shard.
	if opts.Policy != nil && len(effects) == run.Shards {
		rep.Warnings = append(rep.Warnings, report.PlanWarnings(&mark.Plan{Options: opts, PolicyEffect: mergeEffects(effects)})...)
	}
	for _, m := range missing {
		rep.Errors = append(rep.Errors, "missing: "+m)
	}
	if err := report.Text(s.stdout, rep, false); err != nil {
		return err
	}
	if err := rf.writeReports(rep, time.Now()); err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: run %s: missing %s", errIncomplete, run.ID, joinAnd(missing))
	}
	if sf.removeRun {
		// Under the run's lock: no shard of it writes any more.
		n, err := shard.RemoveRun(s.ctx, s.store, run.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(s.stdout, "removed the run folder %s/%s (%s)\n", s.store, shard.RunDir(run.ID), report.Count(n, "file"))
	}
	// Complete: the lock the run's shards shared goes.
	if err := storage.ReleaseRun(context.WithoutCancel(s.ctx), s.store, shardLockID(run.ID)); err != nil {
		return err
	}
	return nil
}

// mergeEffects is the policy's effect over every mark shard.
func mergeEffects(es []mark.PolicyEffect) mark.PolicyEffect {
	var out mark.PolicyEffect
	count := map[int]int{}
	for _, e := range es {
		out.TagsOnly += e.TagsOnly
		for _, n := range e.UnmatchedRules {
			count[n]++
		}
	}
	for n, c := range count {
		if c == len(es) {
			out.UnmatchedRules = append(out.UnmatchedRules, n)
		}
	}
	slices.Sort(out.UnmatchedRules)
	return out
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " and " + s[len(s)-1]
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
