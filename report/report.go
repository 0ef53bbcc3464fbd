package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/sweep"
)

// Report is one run's outcome. Its JSON form is documented in the README.
type Report struct {
	// Command is the command that ran: gc or apply.
	Command        string    `json:"command"`
	Location       string    `json:"location"`
	DryRun         bool      `json:"dry_run"`
	StartedAt      time.Time `json:"started_at"`
	DeleteUntagged bool      `json:"delete_untagged"`
	MinAge         string    `json:"min_age"`
	sweep.Counts
	Repositories []Repository `json:"repositories"`
	// Scanned counts what the walk found.
	Scanned Scanned   `json:"scanned"`
	Kept    mark.Kept `json:"kept"`
	// Broken lists kept images that cannot be served whole.
	Broken []BrokenImage `json:"broken_images"`
	// Failed lists deletes that failed; the next run retries them.
	Failed       []sweep.Failure `json:"failed"`
	BlobsSkipped int             `json:"blobs_skipped"`
	// Problems are paths the walk found wrong and left alone.
	Problems []Problem `json:"problems"`
	// Policy is the policy file applied, if any.
	Policy string `json:"policy,omitempty"`
	// Warnings are what an admin should see, such as a policy deleting
	// every tag of a repository.
	Warnings []string `json:"warnings"`
	// Doubts say why repositories kept untagged manifests.
	Doubts []string `json:"doubts"`
	// Errors say why a run is incomplete; empty on a complete run.
	Errors      []string `json:"errors"`
	Interrupted bool     `json:"interrupted"`
	Phases      []Phase  `json:"phases"`
	// WindowSeconds is the time from the run's start to the moment the
	// registry could leave read-only mode: the last key moved out of the
	// layout (into the trash, on a filesystem), before the trash is freed.
	// On S3 and in dry runs, the run's whole duration.
	WindowSeconds float64 `json:"window_seconds"`
	// Trashed counts the keys moved into the trash rather than deleted.
	Trashed int `json:"keys_trashed"`
	// TrashKept names the trash run folder kept (--keep-trash): an undo
	// with regsweep trash restore, freed by the next run or trash purge.
	TrashKept string `json:"trash_kept,omitempty"`
	// TrashFallback says why keys were deleted in place though the run
	// moves them into a trash (the trash is on another filesystem).
	TrashFallback string `json:"trash_fallback,omitempty"`
	// AfterWindow is what --after-window did.
	AfterWindow *AfterWindow `json:"after_window,omitempty"`
}

// AfterWindow is the outcome of the command run when the window closed.
type AfterWindow struct {
	Command string  `json:"command"`
	Seconds float64 `json:"seconds"`
	// Error is empty when the command exited 0.
	Error string `json:"error,omitempty"`
}

// Repository is the deletions of one repository.
type Repository struct {
	Name string `json:"name"`
	sweep.Counts
	// Tags are the policy's decisions on every tag, kept and deleted.
	Tags []TagVerdict `json:"tags,omitempty"`
}

// Scanned counts what a walk listed.
type Scanned struct {
	Repositories int `json:"repositories"`
	Tags         int `json:"tags"`
	Manifests    int `json:"manifests"`
	LayerLinks   int `json:"layer_links"`
	Blobs        int `json:"blobs"`
	// Bytes is the size of every blob; nil when the walk did not read it
	// (a filesystem walk lists blobs by name, without --verify-links).
	Bytes   *int64 `json:"bytes,omitempty"`
	Uploads int    `json:"uploads"`
}

// bytes is " (size)" when the size is known.
func (sc Scanned) bytes() string {
	if sc.Bytes == nil {
		return ""
	}
	return " (" + Bytes(*sc.Bytes) + ")"
}

// ScannedBytes returns n as Scanned.Bytes, nil unless known.
func ScannedBytes(n int64, known bool) *int64 {
	if !known {
		return nil
	}
	return &n
}

// Problem is a path left alone and why.
type Problem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Phase is the wall time of one stage.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// New fills the Report of command from a plan and the result of its sweep.
func New(command, location string, plan *mark.Plan, res *sweep.Result) *Report {
	r := &Report{
		Command:        command,
		Location:       location,
		DryRun:         res.DryRun,
		StartedAt:      plan.Options.StartedAt.UTC(),
		DeleteUntagged: plan.Options.DeleteUntagged,
		MinAge:         plan.Options.MinAge.String(),
		Counts:         res.Total,
		Kept:           plan.Kept,
		Broken:         brokenImages(plan.Broken),
		Failed:         res.Failed,
		BlobsSkipped:   res.BlobsSkipped,
		Interrupted:    res.Interrupted,
		Trashed:        res.Trashed,
		TrashFallback:  res.TrashFallback,
		Repositories:   []Repository{},
		Problems:       []Problem{},
		Errors:         []string{},
		Warnings:       []string{},
		Doubts:         Doubts(plan),
	}
	if r.Failed == nil {
		r.Failed = []sweep.Failure{}
	}
	names := make([]string, 0, len(res.Repos))
	for n := range res.Repos {
		names = append(names, n)
	}
	sort.Strings(names)
	decisions := map[string][]TagVerdict{}
	for _, d := range plan.Decisions {
		decisions[d.Repo] = append(decisions[d.Repo], TagVerdict{TagDecision: d, Reason: TagReason(d.Why)})
	}
	for _, n := range names {
		ds := decisions[n]
		sort.Slice(ds, func(i, j int) bool { return ds[i].Tag < ds[j].Tag })
		r.Repositories = append(r.Repositories, Repository{Name: n, Counts: *res.Repos[n], Tags: ds})
	}
	r.Warnings = append(r.Warnings, PlanWarnings(plan)...)
	if plan.Err != nil {
		r.Errors = append(r.Errors, strings.Split(plan.Err.Error(), "\n")...)
	}
	return r
}

// JSON writes the report as an indented JSON document.
func JSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Text writes the human summary: repositories with deletions, totals, what
// was kept and why, problems, and the time per phase. Verbose adds a line
// per tag decision.
func Text(w io.Writer, r *Report, verbose bool) error {
	verb := "deleted"
	if r.DryRun {
		verb = "would delete"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "regsweep %s %s (dry run: %v, delete untagged: %v, min age: %s)\n", r.Command, r.Location, r.DryRun, r.DeleteUntagged, r.MinAge)
	sc := r.Scanned
	fmt.Fprintf(w, "scanned %s, %s, %s, %s, %s%s, %s\n\n", Count(sc.Repositories, "repository"), Count(sc.Tags, "tag"),
		Count(sc.Manifests, "manifest"), Count(sc.LayerLinks, "layer link"), Count(sc.Blobs, "blob"), sc.bytes(), Count(sc.Uploads, "upload"))
	fmt.Fprintf(tw, "REPOSITORY\tTAGS\tMANIFESTS\tLAYER LINKS\tBLOBS\tRECLAIMED\t\n")
	quiet := 0
	for _, repo := range r.Repositories {
		c := repo.Counts
		if c == (sweep.Counts{}) {
			quiet++
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t\n", repo.Name, c.Tags, c.Manifests, c.LayerLinks, c.Blobs, Bytes(c.Bytes))
	}
	if quiet > 0 {
		fmt.Fprintf(tw, "(%d more with nothing to delete)\t\t\t\t\t\t\n", quiet)
	}
	c := r.Counts
	fmt.Fprintf(tw, "TOTAL %s\t%d\t%d\t%d\t%d\t%s\t\n", verb, c.Tags, c.Manifests, c.LayerLinks, c.Blobs, Bytes(c.Bytes))
	if err := tw.Flush(); err != nil {
		return err
	}
	if verbose {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, repo := range r.Repositories {
			for _, d := range repo.Tags {
				verdict := "delete"
				if d.Keep {
					verdict = "keep"
				}
				rule := "-"
				if d.Rule > 0 {
					rule = fmt.Sprintf("rule %d", d.Rule)
				}
				fmt.Fprintf(tw, "%s\t%s:%s\t%s\t%s\n", verdict, repo.Name, d.Tag, rule, d.Reason)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "\nwarning: %s\n", warn)
	}
	if !r.DryRun {
		fmt.Fprintf(w, "\nwindow: %.1f s from the start until every key deleted was out of the layout and the registry could leave read-only mode (%s moved into the trash)\n", r.WindowSeconds, Count(r.Trashed, "key"))
	}
	if r.TrashKept != "" {
		fmt.Fprintf(w, "trash kept: %s (undo: regsweep trash restore %s; free: regsweep trash purge, or the next run)\n", r.TrashKept, r.TrashKept)
	}
	if a := r.AfterWindow; a != nil {
		outcome := "exited 0"
		if a.Error != "" {
			outcome = "failed: " + a.Error
		}
		fmt.Fprintf(w, "after window: %s (%.1f s) %s\n", a.Command, a.Seconds, outcome)
	}
	if c.Uploads+c.Repositories+c.Multipart > 0 || c.TagIndexEntries > 0 {
		fmt.Fprintf(w, "\nalso %s: %s; compaction: %s (%s), %s aborted, %s\n",
			verb, Count(c.TagIndexEntries, "tag history entry"), Count(c.Uploads, "stale upload"), Bytes(c.UploadBytes),
			Count(c.Multipart, "multipart upload"), Count(c.Repositories, "empty repository"))
	}
	if kept := keptParts(r.Kept); len(kept) > 0 {
		fmt.Fprintf(w, "\nkept though unreferenced: %s\n", strings.Join(kept, ", "))
	}
	if len(r.Broken) > 0 {
		fmt.Fprintf(w, "\nbroken images (kept, cannot be served whole): %d\n", len(r.Broken))
		for _, b := range limit(r.Broken, 20) {
			name := b.Repo + "@" + b.Digest
			if b.Tag != "" {
				name = b.Repo + ":" + b.Tag
			}
			fmt.Fprintf(w, "  %s: %s\n", name, b.Reason)
		}
	}
	for _, d := range r.Doubts {
		fmt.Fprintf(w, "\n%s\n", d)
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "\nleft alone: %s\n", Count(len(r.Problems), "path"))
		for _, p := range limit(r.Problems, 20) {
			fmt.Fprintf(w, "  %s: %s\n", p.Path, p.Reason)
		}
	}
	if len(r.Failed) > 0 {
		fmt.Fprintf(w, "\nfailed: %s (the next run retries them)\n", Count(len(r.Failed), "delete"))
		for _, f := range limit(r.Failed, 20) {
			fmt.Fprintf(w, "  %s: %s\n", f.Key, f.Err)
		}
	}
	if r.BlobsSkipped > 0 {
		fmt.Fprintf(w, "\nnot deleted because an earlier delete failed: %s\n", Count(r.BlobsSkipped, "blob"))
	}
	if r.Interrupted {
		fmt.Fprintf(w, "\ninterrupted: the run stopped before its end; run it again to finish\n")
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nerror: %s\n", e)
	}
	if len(r.Phases) > 0 {
		parts := make([]string, len(r.Phases))
		for i, p := range r.Phases {
			parts[i] = fmt.Sprintf("%s %.2fs", p.Name, p.Seconds)
		}
		fmt.Fprintf(w, "\ntime: %s\n", strings.Join(parts, ", "))
	}
	return nil
}

// keptParts says what was kept though unreferenced, and why: only the
// reasons that kept something.
func keptParts(k mark.Kept) []string {
	var out []string
	add := func(n int, noun, why string) {
		if n > 0 {
			out = append(out, Count(n, noun)+" "+why)
		}
	}
	add(k.BlobsTooRecent, "blob", "too recent")
	add(k.RevisionsTooRecent, "revision", "too recent")
	add(k.LayerLinksTooRecent, "layer link", "too recent")
	add(k.BlobsUnswept, "blob", "unswept (graph incomplete)")
	add(k.RevisionsInDoubt, "revision", "in doubt")
	add(k.ChangedDuringRun, "object", "reachable again at the recheck")
	return out
}

func limit[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Bytes formats a byte count in binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
