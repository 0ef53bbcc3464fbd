package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/regsweep/regsweep/sweep"
)

// TestPrometheusWindow: regsweep_window_seconds is the report's window,
// one sample labelled as the run was (dry or real).
func TestPrometheusWindow(t *testing.T) {
	t.Parallel()
	for _, r := range []Report{{WindowSeconds: 12.25}, {WindowSeconds: 3.5, DryRun: true}} {
		var buf bytes.Buffer
		if err := Prometheus(&buf, &r, time.Unix(1_800_000_000, 0), time.Time{}); err != nil {
			t.Fatal(err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(&buf)
		if err != nil {
			t.Fatal(err)
		}
		f := fams["regsweep_window_seconds"]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Fatalf("regsweep_window_seconds: %v", f)
		}
		got := f.GetMetric()[0]
		want := "false"
		if r.DryRun {
			want = "true"
		}
		if got.GetGauge().GetValue() != r.WindowSeconds || len(got.GetLabel()) != 1 || got.GetLabel()[0].GetName() != "dry_run" || got.GetLabel()[0].GetValue() != want {
			t.Errorf("window %v (dry %v): %v", r.WindowSeconds, r.DryRun, got)
		}
	}
}

// TestPrometheusLastSuccess: only a complete real run stamps its time; a
// dry, interrupted, failed or incomplete run carries over the previous one
// (or leaves it out when there was none), and LastSuccess reads it back.
func TestPrometheusLastSuccess(t *testing.T) {
	t.Parallel()
	now, prev := time.Unix(1_800_000_000, 0), time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name string
		r    Report
		prev time.Time
		want time.Time
	}{
		{"complete", Report{}, prev, now},
		{"complete, none before", Report{}, time.Time{}, now},
		{"dry", Report{DryRun: true}, prev, prev},
		{"dry, none before", Report{DryRun: true}, time.Time{}, time.Time{}},
		{"interrupted", Report{Interrupted: true}, prev, prev},
		{"incomplete", Report{Errors: []string{"graph incomplete"}}, prev, prev},
		{"failed deletes", Report{Failed: []sweep.Failure{{Key: "k", Err: "x"}}}, prev, prev},
	} {
		var buf bytes.Buffer
		if err := Prometheus(&buf, &tc.r, now, tc.prev); err != nil {
			t.Fatal(err)
		}
		got, err := LastSuccess(&buf)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%s: last success %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if got, err := LastSuccess(strings.NewReader("other 1\nregsweep_last_success_timestamp_seconds 1.7e+09\n")); err != nil || got.Unix() != 1_700_000_000 {
		t.Errorf("untyped sample: %v, %v", got, err)
	}
	for _, bad := range []string{
		"# TYPE regsweep_last_success_timestamp_seconds counter\nregsweep_last_success_timestamp_seconds 1\n",
		"regsweep_last_success_timestamp_seconds{",
		"regsweep_last_success_timestamp_seconds NaN\n",
		"regsweep_last_success_timestamp_seconds -1\n",
		"regsweep_last_success_timestamp_seconds{a=\"1\"} 1\nregsweep_last_success_timestamp_seconds{a=\"2\"} 2\n",
	} {
		if _, err := LastSuccess(strings.NewReader(bad)); err == nil {
			t.Errorf("LastSuccess(%q) accepted", bad)
		}
	}
}
