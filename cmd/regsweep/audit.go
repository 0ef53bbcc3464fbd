package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/sweep"
	"github.com/regsweep/regsweep/walker"
)

// errFindings says an audit found broken images or blobs whose content is
// not what their digest says: exit status 4.
var errFindings = errors.New("audit failed")

func newAuditCommand(e env) *cobra.Command {
	var (
		pf                     planFlags
		rf                     runFlags
		verify, asJSON, asMark bool
	)
	cmd := &cobra.Command{
		Use:   "audit [flags] LOCATION | --config config.yml",
		Short: "Report where a registry's space goes, what gc would reclaim, and everything damaged; reads, never writes",
		Long: `audit walks the registry storage at LOCATION (a folder holding
docker/registry/v2, or s3://BUCKET[/ROOT]), or the one the registry's
config.yml names, reading every link file, and reports: per repository its tags,
manifests and logical, exclusive and shared size; the largest images; what a gc
with the same options would reclaim; broken images, missing blobs, corrupt link
files, orphan blobs and layer links, stale uploads, empty repositories and
foreign names. --verify-digests re-hashes every blob too. The gc flags
(--delete-untagged, --policy, --min-age, --compact, --upload-max-age) set the
gc the estimate is made for; nothing is deleted.

It never writes and takes no lock. Exit status 4 when an image is broken or a
blob's content is not what its digest says: it can gate a disaster-recovery
drill on a restored copy.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON && asMark {
				return usageError{errors.New("--json and --markdown: choose one")}
			}
			format := report.FormatText
			switch {
			case asJSON:
				format = report.FormatJSON
			case asMark:
				format = report.FormatMarkdown
			}
			return runAudit(cmd, args, &pf, &rf, verify, format, e)
		},
	}
	fl := cmd.Flags()
	pf.register(fl)
	fl.BoolVar(&verify, "verify-digests", false, "re-hash every blob and list those whose content does not match their digest")
	fl.BoolVar(&asJSON, "json", false, "write the report as JSON")
	fl.BoolVar(&asMark, "markdown", false, "write the report as Markdown (headings and tables, for a ticket)")
	rf.loc.register(fl)
	fl.IntVar(&rf.jobs, "jobs", 0, "storage operations and blob hashes at once (default 64)")
	fl.BoolVarP(&rf.quiet, "quiet", "q", false, "no progress output")
	fl.StringVar(&rf.logFormat, "log-format", "text", "log lines as text or json")
	return cmd
}

// runAudit validates the flags, then walks (reading every link), marks and
// counts a dry sweep with the gc options given, verifies digests if asked,
// and writes the report. It returns errFindings when the registry cannot
// serve an image whole or a blob is damaged.
func runAudit(cmd *cobra.Command, args []string, pf *planFlags, rf *runFlags, verify bool, format string, e env) error {
	ctx := cmd.Context()
	p, err := prepare(cmd, args, pf, rf, e)
	if err != nil {
		return err
	}
	loc, opts, startedAt := p.loc, p.opts, p.startedAt
	s, err := openSession(ctx, loc, rf, false, "audit", startedAt, e)
	if err != nil {
		return err
	}
	defer s.Close()
	location := s.store.String()
	s.store = storage.ReadOnly(s.store) // even a bug cannot write

	var inv *walker.Inventory
	if err := s.timed("walk", func(c storage.Counter) (err error) {
		inv, err = walker.Walk(ctx, s.store, walker.Options{Jobs: s.jobs, ReadLinks: true, StartedAt: time.Now(), BlobsHint: s.blobsHint}, c)
		return err
	}); err != nil {
		return err
	}
	var plan *mark.Plan
	var gc *sweep.Result
	if err := s.timed("mark", func(storage.Counter) (err error) {
		if plan, err = s.compute(inv, opts); err != nil {
			return err
		}
		// A dry sweep only counts, touching no storage: its counts are
		// those of gc --dry-run with the same options.
		gc, err = sweep.Execute(ctx, s.store, plan, sweep.Options{DryRun: true, Jobs: 1}, nil)
		return err
	}); err != nil {
		return err
	}
	var ver *walker.Verification
	if verify {
		t := time.Now()
		p := newByteProgress(e.stdout, s.log, "verify", rf.quiet)
		ver, err = walker.Verify(ctx, s.store, inv, walker.VerifyOptions{Jobs: s.jobs}, p)
		p.Done()
		s.phases = append(s.phases, report.Phase{Name: "verify", Seconds: time.Since(t).Seconds()})
		if err != nil {
			return err
		}
	}

	a := report.NewAudit(inv, plan, gc, ver)
	a.Location = location
	a.Policy = pf.policyFile
	a.Phases = s.phases
	if a.Digests != nil {
		a.Digests.Seconds = s.phases[len(s.phases)-1].Seconds
	}
	switch format {
	case report.FormatJSON:
		err = report.AuditJSON(e.stdout, a)
	case report.FormatMarkdown:
		err = report.AuditMarkdown(e.stdout, a)
	default:
		err = report.AuditText(e.stdout, a)
	}
	if err != nil {
		return fmt.Errorf("write the audit: %w", err)
	}
	if a.Failed() {
		return fmt.Errorf("%w: %s", errFindings, strings.Join(a.Findings(), ", "))
	}
	return nil
}

// newByteProgress returns the counter of a stage that counts bytes: a bar
// with the rate on a terminal; otherwise a log line every 30 seconds and one
// at the end, so that a long verification shows life in a CI log.
func newByteProgress(stdout io.Writer, log *slog.Logger, name string, quiet bool) phaseProgress {
	if quiet {
		return &lineProgress{}
	}
	if bar := newBar(stdout, name, progressbar.OptionShowBytes(true)); bar != nil {
		return bar
	}
	return newByteLines(log, name, 30*time.Second)
}

// byteLines logs a stage's bytes and rate every interval, and at its end.
type byteLines struct {
	log   *slog.Logger
	name  string
	start time.Time
	n     atomic.Int64
	total atomic.Int64
	stop  chan struct{}
	done  sync.WaitGroup
}

var _ phaseProgress = (*byteLines)(nil)

func newByteLines(log *slog.Logger, name string, every time.Duration) *byteLines {
	b := &byteLines{log: log, name: name, start: time.Now(), stop: make(chan struct{})}
	b.done.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.line("progress")
			}
		}
	})
	return b
}

func (b *byteLines) Add(n int64)    { b.n.Add(n) }
func (b *byteLines) SetMax(n int64) { b.total.Store(n) }

func (b *byteLines) Done() {
	close(b.stop)
	b.done.Wait()
	b.line("phase done")
}

func (b *byteLines) line(msg string) {
	n, secs := b.n.Load(), time.Since(b.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(n) / secs
	}
	b.log.Info(msg, "phase", b.name, "bytes", n, "of", b.total.Load(), "seconds", math.Round(secs*1000)/1000,
		"rate", report.Bytes(int64(rate))+"/s")
}
