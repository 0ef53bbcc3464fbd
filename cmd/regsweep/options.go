package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
)

// planFlags are the flags that decide what a run deletes: gc and plan take
// them; apply takes its plan's.
type planFlags struct {
	deleteUntagged bool
	minAge         time.Duration
	policyFile     string
	allowDeleteAll bool
	compact        []string
	uploadMaxAge   time.Duration
}

func (p *planFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&p.deleteUntagged, "delete-untagged", false, "also delete manifests no tag reaches (children of kept indexes and referrers of kept manifests stay)")
	fl.DurationVar(&p.minAge, "min-age", time.Hour, "keep unreferenced blobs and revisions modified less than this before the run started")
	fl.StringVar(&p.policyFile, "policy", "", "apply the tag retention policy in `FILE` (YAML, see README)")
	fl.BoolVar(&p.allowDeleteAll, "allow-delete-all", false, "accept a policy that may delete every tag of a repository (rules matching every repository that keep no newest tag, or a run leaving a repository with tags without any)")
	fl.StringSliceVar(&p.compact, "compact", []string{"all"}, "compaction to do: any of uploads, repos, links; all; or none")
	fl.DurationVar(&p.uploadMaxAge, "upload-max-age", 7*24*time.Hour, "remove uploads started longer ago than this (with --compact uploads)")
}

// options validates the plan flags into mark.Options, reading and checking
// the policy before anything is read from storage. It returns the policy's
// text too, for plan files.
func (p *planFlags) options(cmd *cobra.Command, startedAt time.Time) (mark.Options, string, error) {
	var data []byte
	if p.policyFile != "" {
		var err error
		if data, err = os.ReadFile(p.policyFile); err != nil {
			return mark.Options{StartedAt: startedAt}, "", usageError{fmt.Errorf("--policy: %w", err)}
		}
	}
	o, err := p.validate(data, cmd.Flags().Changed("delete-untagged"), startedAt)
	if err == nil && cmd.Flags().Changed("upload-max-age") && !o.Compact.Uploads {
		err = usageError{fmt.Errorf("--upload-max-age: only with --compact uploads (or all), which this run does not do")}
	}
	return o, string(data), err
}

// validate is the one check of the options that decide what a run deletes,
// for the command line and for the options a plan file holds (see
// planFlagsOf): policy is the policy file's content (nil for none), and
// untaggedGiven says that deleteUntagged wins over the policy's untagged.
func (p *planFlags) validate(policy []byte, untaggedGiven bool, startedAt time.Time) (mark.Options, error) {
	o := mark.Options{DeleteUntagged: p.deleteUntagged, MinAge: p.minAge, StartedAt: startedAt}
	if p.minAge < 0 {
		return o, usageError{fmt.Errorf("--min-age %s: must not be negative", p.minAge)}
	}
	var err error
	if o.Compact, err = parseCompact(p.compact, p.uploadMaxAge); err != nil {
		return o, err
	}
	if policy == nil {
		return o, nil
	}
	if o.Policy, err = mark.ParsePolicy(p.policyFile, policy, p.allowDeleteAll); err != nil {
		return o, usageError{err}
	}
	// --delete-untagged, when given, wins over the policy's untagged.
	if !untaggedGiven && o.Policy.Untagged == "delete" {
		o.DeleteUntagged = true
	}
	return o, nil
}

// planFlagsOf is the command line that gives the options o of a plan file,
// with its policy file's name, for validate.
func planFlagsOf(o mark.Options, policyFile string, allowDeleteAll bool) planFlags {
	var kinds []string
	for _, k := range []struct {
		on   bool
		name string
	}{{o.Compact.Uploads, "uploads"}, {o.Compact.Repos, "repos"}, {o.Compact.Links, "links"}} {
		if k.on {
			kinds = append(kinds, k.name)
		}
	}
	if len(kinds) == 0 {
		kinds = []string{"none"}
	}
	return planFlags{deleteUntagged: o.DeleteUntagged, minAge: o.MinAge, policyFile: policyFile, allowDeleteAll: allowDeleteAll,
		compact: kinds, uploadMaxAge: o.Compact.UploadMaxAge}
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

// runFlags are the flags of a run that deletes (gc, apply) or reads (plan).
type runFlags struct {
	loc             locationFlags
	jobs            int
	quiet           bool
	verbose         bool
	reports         []string
	reportFormats   []string
	logFormat       string
	breakLock       bool
	registryStopped bool
	archive         string
	window          windowFlags
	verifyLinks     bool
}

// runFlagSet selects the flags of runFlags a command registers besides the
// location, -q and --log-format: a command registers only flags it acts on.
type runFlagSet uint8

const (
	withJobs        runFlagSet = 1 << iota // --jobs
	withReports                            // --report, --report-format
	withVerbose                            // -v: every tag decision of the policy
	withLock                               // --break-lock, --registry-stopped
	withArchive                            // --archive
	withStopped                            // --registry-stopped alone (withLock has it too)
	withWindow                             // --after-window, --after-window-timeout, --keep-trash
	withVerifyLinks                        // --verify-links
)

func (r *runFlags) register(fl *pflag.FlagSet, set runFlagSet) {
	r.loc.register(fl)
	if set&withJobs != 0 {
		fl.IntVar(&r.jobs, "jobs", 0, "storage operations at once (default 64)")
	}
	fl.BoolVarP(&r.quiet, "quiet", "q", false, "no progress output")
	if set&withVerbose != 0 {
		fl.BoolVarP(&r.verbose, "verbose", "v", false, "list every tag decision of the policy")
	}
	if set&withReports != 0 {
		fl.StringArrayVar(&r.reports, "report", nil, "also write the report to `FILE` (repeatable)")
		fl.StringArrayVar(&r.reportFormats, "report-format", nil, "format of the matching --report: json, text, markdown or prometheus (default: from the file's extension .json .txt .md .prom, else json)")
	}
	fl.StringVar(&r.logFormat, "log-format", "text", "log lines as text or json")
	if set&withLock != 0 {
		fl.BoolVar(&r.breakLock, "break-lock", false, "remove a lock left by a run that died, then take it")
	}
	if set&(withLock|withStopped) != 0 {
		fl.BoolVar(&r.registryStopped, "registry-stopped", false, "the registry is stopped (or read-only) while the run writes: a --config need not be in read-only maintenance mode, and a plain LOCATION is not warned about")
	}
	if set&withWindow != 0 {
		r.window.register(fl)
	}
	if set&withVerifyLinks != 0 {
		fl.BoolVar(&r.verifyLinks, "verify-links", false, "read every link file and stat every blob during the walk (as audit does), reporting links whose content disagrees with their folder; by default a sha256 link is known by its folder's name, and only the blobs the run would delete are stat'ed")
	}
	if set&withArchive != 0 {
		fl.StringVar(&r.archive, "archive", "", "before deleting, write everything the run deletes into this zstd tar `FILE` (see regsweep restore)")
	}
}

// check validates what can be checked before storage is touched.
func (r *runFlags) check() error {
	if r.jobs < 0 {
		return usageError{fmt.Errorf("--jobs %d: must be positive", r.jobs)}
	}
	if len(r.reportFormats) > len(r.reports) {
		return usageError{fmt.Errorf("%d --report-format for %d --report", len(r.reportFormats), len(r.reports))}
	}
	for _, f := range r.reportFormats {
		switch f {
		case report.FormatJSON, report.FormatText, report.FormatMarkdown, report.FormatPrometheus:
		default:
			return usageError{fmt.Errorf("--report-format %q: want json, text, markdown or prometheus", f)}
		}
	}
	if r.logFormat != "text" && r.logFormat != "json" {
		return usageError{fmt.Errorf("--log-format %q: want text or json", r.logFormat)}
	}
	return nil
}

// defaultJobs is how many storage operations run at once unless --jobs
// says otherwise, on every backend: what limits a walk or a sweep is how
// many requests the storage serves at once, not the CPUs. S3 requests wait
// on the network; a filesystem's wait on its disk when the tree is not in
// the page cache: a cold dry run of a 1M-blob registry on a virtio disk took
// 174 s with 16 jobs and 99 s with 64, the same 3.5 s either way when warm.
const defaultJobs = 64

// jobsFor is --jobs, or the default.
func (r *runFlags) jobsFor() int {
	if r.jobs > 0 {
		return r.jobs
	}
	return defaultJobs
}

// writeReports writes every --report file in its format, each through a
// temporary file renamed into place. A Prometheus file of a dry or
// incomplete run keeps the previous file's time of the last complete run.
func (r *runFlags) writeReports(rep *report.Report, now time.Time) error {
	for i, name := range r.reports {
		format := r.reportFormat(i)
		var last time.Time
		if format == report.FormatPrometheus {
			var err error
			if last, err = previousSuccess(name); err != nil {
				return fmt.Errorf("write report %s: %w; not replaced, so that its last success time stays", name, err)
			}
		}
		if err := writeFileAtomic(name, 0o644, func(w io.Writer) error {
			return report.Write(w, rep, format, now, last)
		}); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}

// reportFormat is the format of the i-th --report.
func (r *runFlags) reportFormat(i int) string {
	if i < len(r.reportFormats) {
		return r.reportFormats[i]
	}
	return report.FormatFor(r.reports[i])
}

// previousSuccess reads the last success time of the Prometheus file name
// replaces, if there is one.
func previousSuccess(name string) (time.Time, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	return report.LastSuccess(f)
}

// checkOutputs checks every file the run writes, extra ones included, before
// storage is read (see checkOutputs), and that a previous Prometheus file
// parses, so that its last success time can be carried over.
func (r *runFlags) checkOutputs(loc storage.Location, extra ...output) error {
	if err := checkOutputs(loc, r.outputs(extra...)); err != nil {
		return err
	}
	for i, name := range r.reports {
		if r.reportFormat(i) != report.FormatPrometheus {
			continue
		}
		if _, err := previousSuccess(name); err != nil {
			return usageError{fmt.Errorf("--report %s: %w: replacing it would lose its last success time; move it away or name another file", name, err)}
		}
	}
	return nil
}

// outputs lists the files the run writes besides the storage.
func (r *runFlags) outputs(extra ...output) []output {
	outs := extra
	for _, name := range r.reports {
		outs = append(outs, output{"--report", name})
	}
	if r.archive != "" {
		outs = append(outs, output{"--archive", r.archive})
	}
	return outs
}

// prepared is a command line checked before storage is touched: where, with
// which plan options, since when.
type prepared struct {
	loc        storage.Location
	opts       mark.Options
	policyText string
	startedAt  time.Time
}

// prepare resolves the location and validates the run and plan flags; the
// policy is parsed here, before anything is read from storage.
// Every output file, extra ones included, is checked here too.
func prepare(cmd *cobra.Command, args []string, pf *planFlags, rf *runFlags, e env, extra ...output) (prepared, error) {
	p := prepared{startedAt: e.startTime()}
	var err error
	if p.loc, err = rf.loc.resolve(args); err != nil {
		return p, err
	}
	if err := rf.check(); err != nil {
		return p, err
	}
	if err := rf.checkOutputs(p.loc, extra...); err != nil {
		return p, err
	}
	p.opts, p.policyText, err = pf.options(cmd, p.startedAt)
	return p, err
}
