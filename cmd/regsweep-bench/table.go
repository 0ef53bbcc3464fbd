package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// writeText prints the comparison: what ran where, then one table.
func (res *compareResult) writeText(w io.Writer) error {
	o := res.Options
	var b strings.Builder
	mode := "keep untagged"
	if o.DeleteUntagged {
		mode = "delete-untagged"
	}
	if o.DryRun {
		mode += ", dry run"
	}
	if o.Policy != "" {
		mode += ", regsweep with policy " + o.Policy
	}
	backend := "filesystem"
	if o.Backend == "s3" {
		backend = fmt.Sprintf("S3 (versitygw on loopback, every request held %v by the proxy)", time.Duration(o.Delay))
	}
	cache := "warm page cache"
	if o.Cold {
		cache = "cold page cache (dropped before each run)"
	}
	t := res.Registry
	m := res.Machine
	fmt.Fprintf(&b, "regsweep-bench compare: %s, %s, --blobs %d --seed %d, %d round(s), %s\n", backend, mode, o.Blobs, o.Seed, o.Rounds, cache)
	fmt.Fprintf(&b, "machine: %d CPUs, %.1f GiB RAM, %s, work folder on %s\n", m.CPUs, float64(m.MemBytes)/(1<<30), m.Kernel, m.WorkFS)
	fmt.Fprintf(&b, "registry: %s objects: %s blobs, %d repositories, %s tags, %s manifests (%s revision links, %s untagged), %s layer links, %s tag index links\n",
		group(res.Objects), group(int64(t.Blobs)), t.Repos, group(int64(t.Tags)), group(int64(t.DistinctManifests)), group(int64(t.Manifests)),
		group(int64(t.Untagged)), group(int64(t.LayerLinks)), group(int64(t.TagIndexLinks)))
	fmt.Fprintf(&b, "regsweep: %s gc -q --min-age 0; upstream: distribution v3.1.2 storage.MarkAndSweep (regsweep-bench upstream-gc)\n", res.Regsweep)
	fmt.Fprintf(&b, "window: how long the registry must stay read-only: regsweep's window_seconds (on a filesystem, until the last key is out of the layout, before the trash is freed), upstream's whole run\n\n")

	up, rs := res.GCs[0].Summary, res.GCs[1].Summary
	star := func(s gcSummary, v string) string {
		if s.Predicted {
			return v + "*"
		}
		return v
	}
	rows := [][]string{{"gc", "wall median", "wall min", "window median", "CPU median", "peak RSS", "RSS/object", "objects deleted", "result"}}
	for _, g := range res.GCs {
		s := g.Summary
		rows = append(rows, []string{g.Name, star(s, fmtSec(s.WallMedian)), star(s, fmtSec(s.WallMin)), star(s, fmtSec(s.WindowMedian)), fmtSec(s.CPUMedian),
			fmtBytes(s.RSSMedian), fmtBytes(int64(math.Round(s.RSSPerObject))), group(s.Deleted), s.Check})
	}
	rows = append(rows, []string{"upstream/regsweep", star(up, fmtRatio(res.Ratios["wall_median"])), star(up, fmtRatio(res.Ratios["wall_min"])),
		star(up, fmtRatio(res.Ratios["window"])), fmtRatio(res.Ratios["cpu"]), fmtRatio(res.Ratios["max_rss"]), "", "", ""})
	writeTable(&b, rows)

	if up.Requests != nil && rs.Requests != nil {
		b.WriteString("\n")
		rows := [][]string{{"S3 requests"}}
		for k := range numKinds {
			rows[0] = append(rows[0], reqKind(k).String())
		}
		rows[0] = append(rows[0], "total")
		for _, g := range res.GCs {
			row := []string{g.Name}
			for _, n := range g.Summary.Requests.byKind() {
				row = append(row, group(n))
			}
			rows = append(rows, append(row, group(g.Summary.Requests.Total())))
		}
		ratioRow := []string{"upstream/regsweep"}
		for k, n := range up.Requests.byKind() {
			ratioRow = append(ratioRow, fmtRatio(ratio(float64(n), float64(rs.Requests.byKind()[k]))))
		}
		rows = append(rows, append(ratioRow, fmtRatio(res.Ratios["requests"])))
		writeTable(&b, rows)
	}
	if bd := res.Budget; bd != nil {
		fmt.Fprintf(&b, "\nS3 request budget: ceil(%s keys/1000) + %s tags + %s manifests + ceil(%s deleted/1000) = %d + %d + %d + %d = %s; regsweep sent %s = %.1f%% of it\n",
			group(bd.Keys), group(int64(bd.Tags)), group(int64(bd.Manifests)), group(bd.Deleted),
			ceilDiv(bd.Keys, 1000), bd.Tags, bd.Manifests, ceilDiv(bd.Deleted, 1000), group(bd.Total), group(bd.Regsweep), bd.Percent)
	}
	if p := res.Prediction; p != nil {
		d := time.Duration(o.Delay)
		if up.Predicted {
			var measured []float64
			for _, r := range res.GCs[0].Runs {
				measured = append(measured, r.MeasuredWallSeconds)
			}
			fmt.Fprintf(&b, "\n* predicted, not measured: upstream at %v would take %s (%s at zero delay + %s requests × %v), over --upstream-max %v,\n"+
				"  so each round ran it at zero delay (median %s) and adds its requests × %v.\n",
				d, fmtSec(p.Predicted), fmtSec(p.ZeroDelayWall), group(p.ZeroDelayRequests), d, time.Duration(o.UpstreamMax), fmtSec(median(measured)), d)
		} else {
			fmt.Fprintf(&b, "\nprediction check: upstream at zero delay took %s with %s requests; predicted at %v: %s + %s × %v = %s; measured at %v: %s (median), prediction off by %+.1f%%\n",
				fmtSec(p.ZeroDelayWall), group(p.ZeroDelayRequests), d, fmtSec(p.ZeroDelayWall), group(p.ZeroDelayRequests), d, fmtSec(p.Predicted),
				d, fmtSec(p.Measured), 100*(p.Predicted-p.Measured)/p.Measured)
		}
	}
	if reps := reports(res.GCs[1].Runs); len(reps) > 0 {
		last := reps[len(reps)-1]
		verb := "deleted"
		if o.DryRun {
			verb = "would delete"
		}
		fmt.Fprintf(&b, "\nregsweep's report: %s %d tags, %d manifests, %d tag index entries, %d layer links, %d blobs", verb,
			last.Tags, last.Manifests, last.TagIndex, last.LayerLinks, last.Blobs)
		phases := map[string][]float64{}
		var names []string
		for _, r := range reps {
			for _, ph := range r.Phases {
				if phases[ph.Name] == nil {
					names = append(names, ph.Name)
				}
				phases[ph.Name] = append(phases[ph.Name], ph.Seconds)
			}
		}
		if len(names) > 0 {
			b.WriteString("; phases (median):")
			for i, n := range names {
				sep := ","
				if i == 0 {
					sep = ""
				}
				fmt.Fprintf(&b, "%s %s %s", sep, n, fmtSec(median(phases[n])))
			}
		}
		b.WriteString("\n")
	}
	for _, g := range res.GCs {
		if len(g.Runs) > 0 && g.Runs[0].RSSInflated {
			fmt.Fprintf(&b, "\nwarning: no %s: peak RSS is wait4's, which counts this benchmark's own peak in\n", gnuTime)
			break
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func reports(runs []gcRun) []*regsweepReport {
	var out []*regsweepReport
	for _, r := range runs {
		if r.Report != nil {
			out = append(out, r.Report)
		}
	}
	return out
}

// writeTable aligns rows in columns: the first and the last column to the
// left, the others to the right.
func writeTable(b *strings.Builder, rows [][]string) {
	n := 0
	for _, r := range rows {
		n = max(n, len(r))
	}
	width := make([]int, n)
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, r := range rows {
		var line strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			switch {
			case i == 0:
				line.WriteString(c + pad)
			case i == n-1 && n > 2 && !isNumeric(rows, i):
				line.WriteString("  " + c)
			default:
				line.WriteString("  " + pad + c)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
}

// isNumeric reports whether the cells of column i below the header are
// numbers, ratios or durations.
func isNumeric(rows [][]string, i int) bool {
	for _, r := range rows[1:] {
		if i < len(r) && r[i] != "" && !strings.ContainsAny(r[i][:1], "0123456789-") {
			return false
		}
	}
	return true
}

// fmtSec formats seconds with three significant digits or more.
func fmtSec(s float64) string {
	switch {
	case s < 10:
		return strconv.FormatFloat(s, 'f', 2, 64) + "s"
	case s < 100:
		return strconv.FormatFloat(s, 'f', 1, 64) + "s"
	}
	return group(int64(math.Round(s))) + "s"
}

func fmtRatio(r float64) string {
	switch {
	case math.IsNaN(r) || math.IsInf(r, 0):
		return "-"
	case r < 10:
		return strconv.FormatFloat(r, 'f', 2, 64) + "x"
	case r < 100:
		return strconv.FormatFloat(r, 'f', 1, 64) + "x"
	}
	return group(int64(math.Round(r))) + "x"
}

// fmtBytes formats a size in B, KiB, MiB or GiB.
func fmtBytes(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "KiB", "MiB"} {
		if f < 1024 {
			if u == "B" {
				return fmt.Sprintf("%d B", n)
			}
			return fmt.Sprintf("%.1f %s", f, u)
		}
		f /= 1024
	}
	return fmt.Sprintf("%.2f GiB", f)
}

// group formats n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var parts []string
	for len(s) > 3 {
		parts = append(parts, s[len(s)-3:])
		s = s[:len(s)-3]
	}
	parts = append(parts, s)
	slices.Reverse(parts)
	out := strings.Join(parts, ",")
	if neg {
		return "-" + out
	}
	return out
}
