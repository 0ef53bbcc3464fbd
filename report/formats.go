package report

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// Formats a report can be written in.
const (
	FormatJSON       = "json"
	FormatText       = "text"
	FormatMarkdown   = "markdown"
	FormatPrometheus = "prometheus"
)

// Write writes r in format; now stamps the Prometheus success metric of a
// complete real run, and lastSuccess (zero: none) is the one an incomplete
// or dry run carries over from the previous file (see LastSuccess).
func Write(w io.Writer, r *Report, format string, now, lastSuccess time.Time) error {
	switch format {
	case FormatJSON:
		return JSON(w, r)
	case FormatText:
		return Text(w, r, true)
	case FormatMarkdown:
		return Markdown(w, r)
	case FormatPrometheus:
		return Prometheus(w, r, now, lastSuccess)
	}
	return fmt.Errorf("report format %q: want json, text, markdown or prometheus", format)
}

// FormatFor guesses a report format from a file name's extension.
func FormatFor(name string) string {
	switch {
	case strings.HasSuffix(name, ".txt"):
		return FormatText
	case strings.HasSuffix(name, ".md"):
		return FormatMarkdown
	case strings.HasSuffix(name, ".prom"):
		return FormatPrometheus
	}
	return FormatJSON
}

// Markdown writes the report as a document an admin can paste into a
// ticket: a summary, the repositories with deletions, and what went wrong.
func Markdown(w io.Writer, r *Report) error {
	mode := "real run"
	if r.DryRun {
		mode = "dry run"
	}
	fmt.Fprintf(w, "# regsweep %s: %s\n\n", r.Command, r.Location)
	fmt.Fprintf(w, "- %s, started %s\n- delete untagged: %v, min age: %s", mode, r.StartedAt.Format(time.RFC3339), r.DeleteUntagged, r.MinAge)
	if r.Policy != "" {
		fmt.Fprintf(w, ", policy: `%s`", r.Policy)
	}
	sc := r.Scanned
	fmt.Fprintf(w, "\n- scanned: %s, %s, %s, %s%s\n\n",
		Count(sc.Repositories, "repository"), Count(sc.Tags, "tag"), Count(sc.Manifests, "manifest"), Count(sc.Blobs, "blob"), sc.bytes())
	fmt.Fprintf(w, "| repository | tags | manifests | layer links | blobs | reclaimed |\n|---|---:|---:|---:|---:|---:|\n")
	for _, repo := range r.Repositories {
		c := repo.Counts
		if c.Tags+c.Manifests+c.LayerLinks+c.Blobs == 0 {
			continue
		}
		fmt.Fprintf(w, "| `%s` | %d | %d | %d | %d | %s |\n", repo.Name, c.Tags, c.Manifests, c.LayerLinks, c.Blobs, Bytes(c.Bytes))
	}
	c := r.Counts
	fmt.Fprintf(w, "| **total** | %d | %d | %d | %d | **%s** |\n\n", c.Tags, c.Manifests, c.LayerLinks, c.Blobs, Bytes(c.Bytes))
	fmt.Fprintf(w, "Compaction: %s (%s), %s, %s.\n\n", Count(c.Uploads, "upload"), Bytes(c.UploadBytes), Count(c.TagIndexEntries, "tag history entry"), Count(c.Repositories, "empty repository"))
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(w, "## %s\n\n", title)
		for _, l := range lines {
			fmt.Fprintf(w, "- %s\n", l)
		}
		fmt.Fprintln(w)
	}
	var broken, problems, failed []string
	for _, b := range r.Broken {
		broken = append(broken, fmt.Sprintf("`%s:%s` (%s): %s", b.Repo, b.Tag, b.Digest, b.Reason))
	}
	for _, p := range r.Problems {
		problems = append(problems, fmt.Sprintf("`%s`: %s", p.Path, p.Reason))
	}
	for _, f := range r.Failed {
		failed = append(failed, fmt.Sprintf("`%s`: %s", f.Key, f.Err))
	}
	section("Errors", r.Errors)
	section("Warnings", r.Warnings)
	section("Broken images", broken)
	section("Failed deletes", failed)
	section("Left alone", problems)
	section("Kept untagged manifests", r.Doubts)
	return nil
}

// successMetric is the time of the last complete real run.
const successMetric = "regsweep_last_success_timestamp_seconds"

// Prometheus writes the node_exporter textfile collector's format, so an
// alert can watch GC as it watches disk space: bytes reclaimed, objects
// deleted by kind, run time by phase, the maintenance window (the report's
// window_seconds), and the time of the last complete real
// run: now for such a run; for a dry or incomplete one, lastSuccess as the
// previous file had it (left out when zero), so that an alert on its age
// still fires after a dry run overwrote the file.
func Prometheus(w io.Writer, r *Report, now, lastSuccess time.Time) error {
	gauge := func(name, help string, ms ...*dto.Metric) *dto.MetricFamily {
		return &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: dto.MetricType_GAUGE.Enum(), Metric: ms}
	}
	m := func(v float64, labels ...string) *dto.Metric {
		var lp []*dto.LabelPair
		for i := 0; i+1 < len(labels); i += 2 {
			lp = append(lp, &dto.LabelPair{Name: proto.String(labels[i]), Value: proto.String(labels[i+1])})
		}
		return &dto.Metric{Label: lp, Gauge: &dto.Gauge{Value: proto.Float64(v)}}
	}
	dry := "false"
	if r.DryRun {
		dry = "true"
	}
	c := r.Counts
	kinds := map[string]int{"tag": c.Tags, "manifest": c.Manifests, "tag_index_entry": c.TagIndexEntries, "layer_link": c.LayerLinks, "blob": c.Blobs, "upload": c.Uploads, "multipart_upload": c.Multipart, "repository": c.Repositories}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	var objs []*dto.Metric
	for _, k := range names {
		objs = append(objs, m(float64(kinds[k]), "kind", k, "dry_run", dry))
	}
	var phases []*dto.Metric
	total := 0.0
	for _, p := range r.Phases {
		phases = append(phases, m(p.Seconds, "phase", p.Name))
		total += p.Seconds
	}
	phases = append(phases, m(total, "phase", "total"))
	fams := []*dto.MetricFamily{
		gauge("regsweep_bytes_reclaimed", "Bytes of blob data the last run deleted (or would delete, dry).", m(float64(c.Bytes), "dry_run", dry)),
		gauge("regsweep_upload_bytes_reclaimed", "Bytes of stale uploads the last run deleted.", m(float64(c.UploadBytes), "dry_run", dry)),
		gauge("regsweep_objects_deleted", "Objects the last run deleted, by kind.", objs...),
		gauge("regsweep_run_duration_seconds", "Wall time of the last run, by phase.", phases...),
		gauge("regsweep_window_seconds", "Seconds from the last run's start until the registry could leave read-only mode (dry runs and S3: the whole run).", m(r.WindowSeconds, "dry_run", dry)),
		gauge("regsweep_broken_images", "Kept images that cannot be served whole.", m(float64(len(r.Broken)))),
		gauge("regsweep_failed_deletes", "Deletes of the last run that failed.", m(float64(len(r.Failed)))),
	}
	if len(r.Errors) == 0 && len(r.Failed) == 0 && !r.Interrupted && !r.DryRun {
		lastSuccess = now
	}
	if !lastSuccess.IsZero() {
		fams = append(fams, gauge(successMetric, "Unix time the last complete real run ended.", m(float64(lastSuccess.Unix()))))
	}
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(w, f); err != nil {
			return err
		}
	}
	return nil
}

// LastSuccess reads the time of the last complete real run from a previous
// Prometheus file: zero when the file has none. A file that does not parse
// as the text format, or holds the metric other than as one gauge sample, is
// an error.
func LastSuccess(r io.Reader) (time.Time, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return time.Time{}, fmt.Errorf("previous prometheus file: %w", err)
	}
	f := fams[successMetric]
	if f == nil {
		return time.Time{}, nil
	}
	if len(f.GetMetric()) != 1 {
		return time.Time{}, fmt.Errorf("previous prometheus file: %d samples of %s, want one", len(f.GetMetric()), successMetric)
	}
	var v float64
	switch m := f.GetMetric()[0]; f.GetType() {
	case dto.MetricType_GAUGE:
		v = m.GetGauge().GetValue()
	case dto.MetricType_UNTYPED: // written without a TYPE line
		v = m.GetUntyped().GetValue()
	default:
		return time.Time{}, fmt.Errorf("previous prometheus file: %s is a %s, not a gauge", successMetric, f.GetType())
	}
	if math.IsNaN(v) || v <= 0 || v > math.MaxInt32*4 {
		return time.Time{}, fmt.Errorf("previous prometheus file: %s = %v is no time", successMetric, v)
	}
	return time.Unix(int64(v), 0), nil
}
