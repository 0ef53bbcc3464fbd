package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/regsweep/regsweep/storage/storagetest"
)

// regsweep runs any command line in-process.
func regsweep(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := runT(context.Background(), args, &out, &out)
	t.Logf("regsweep %s: exit %d\n%s", strings.Join(args, " "), code, out.String())
	return code, out.String()
}

func TestPlanThenApplyEqualsGC(t *testing.T) {
	f := newFixture(t)
	other := filepath.Join(t.TempDir(), "copy")
	storagetest.CopyTree(t, f.reg.Root, other)

	if code, _, _ := gc(t, "--delete-untagged", f.reg.Root); code != 0 {
		t.Fatalf("gc: exit %d", code)
	}
	plan := filepath.Join(t.TempDir(), "gc.plan")
	if code, _ := regsweep(t, "plan", "-q", "-o", plan, "--delete-untagged", "--min-age", "0", other); code != 0 {
		t.Fatalf("plan: exit %d", code)
	}
	code, out := regsweep(t, "plan", "show", "--verbose", plan)
	if code != 0 || !strings.Contains(out, "untagged manifest") || !strings.Contains(out, "referenced by no kept manifest") || !strings.Contains(out, "blobs/sha256/") {
		t.Fatalf("plan show: exit %d\n%s", code, out)
	}
	if code, _ := regsweep(t, "apply", "-q", plan); code != 0 {
		t.Fatalf("apply: exit %d", code)
	}
	want, got := storagetest.Snapshot(t, f.reg.Root), storagetest.Snapshot(t, other)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("apply of a plan differs from gc (-gc +apply):\n%s", d)
	}
	// The plan was consumed by the storage: applying it again deletes nothing more.
	code, out = regsweep(t, "apply", "-q", plan)
	if code != 0 || !strings.Contains(out, "TOTAL deleted                    0     0          0            0      0 B") {
		t.Errorf("second apply: exit %d\n%s", code, out)
	}
}

func TestApplySkipsWhatBecameReachable(t *testing.T) {
	f := newFixture(t)
	plan := filepath.Join(t.TempDir(), "gc.plan")
	if code, _ := regsweep(t, "plan", "-q", "-o", plan, "--delete-untagged", "--min-age", "0", f.reg.Root); code != 0 {
		t.Fatal("plan failed")
	}
	// Between plan and apply, someone tags an image the plan deletes.
	img := f.untagged[0]
	f.reg.Tag(img.Repo, "rescued", img)
	rep := filepath.Join(t.TempDir(), "r.json")
	code, out := regsweep(t, "apply", "-q", "--report", rep, plan)
	if code != 0 {
		t.Fatalf("apply: exit %d", code)
	}
	if !strings.Contains(out, "reachable again at the recheck") {
		t.Errorf("apply does not report what it skipped:\n%s", out)
	}
	f.reg.Reopen()
	if err := f.reg.Serves(context.Background(), img.Repo, "rescued"); err != nil {
		t.Errorf("the image tagged after the plan was made: %v", err)
	}
	f.assertServes(t)
}

func TestApplyRefusesAnotherLocationOrAStalePlan(t *testing.T) {
	f := newFixture(t)
	plan := filepath.Join(t.TempDir(), "gc.plan")
	if code, _ := regsweep(t, "plan", "-q", "-o", plan, f.reg.Root); code != 0 {
		t.Fatal("plan failed")
	}
	other := filepath.Join(t.TempDir(), "other")
	storagetest.CopyTree(t, f.reg.Root, other)
	if code, out := regsweep(t, "apply", plan, other); code != exitUsage || !strings.Contains(out, "is for "+f.reg.Root) {
		t.Errorf("apply to another location: exit %d, %s", code, out)
	}
	if code, out := regsweep(t, "apply", "--max-plan-age", "1ns", plan); code != exitUsage || !strings.Contains(out, "--max-plan-age") {
		t.Errorf("stale plan: exit %d, %s", code, out)
	}
	if err := os.WriteFile(plan, []byte("not a plan"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := regsweep(t, "apply", plan); code == 0 || !strings.Contains(out, "plan") {
		t.Errorf("garbage plan: exit %d, %s", code, out)
	}
}

func TestReportFormats(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sample")
	storagetest.CopyTree(t, sampleDir, root)
	dir := t.TempDir()
	files := map[string]string{"json": "r.json", "text": "r.txt", "markdown": "r.md", "prometheus": "r.prom"}
	args := []string{"gc", "-q", "--delete-untagged", "--min-age", "0"}
	for _, name := range files {
		args = append(args, "--report", filepath.Join(dir, name))
	}
	if code, _ := regsweep(t, append(args, root)...); code != 0 {
		t.Fatal("gc failed")
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	prom := read(files["prometheus"])
	parser := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(prom))
	if err != nil {
		t.Fatalf("prometheus output does not parse: %v\n%s", err, prom)
	}
	for name, want := range map[string]float64{"regsweep_bytes_reclaimed": 6052} {
		f := fams[name]
		if f == nil || f.GetMetric()[0].GetGauge().GetValue() != want {
			t.Errorf("%s = %v, want %v", name, f, want)
		}
	}
	for _, name := range []string{"regsweep_objects_deleted", "regsweep_run_duration_seconds", "regsweep_last_success_timestamp_seconds"} {
		if fams[name] == nil {
			t.Errorf("no %s in\n%s", name, prom)
		}
	}
	var blobKind bool
	for _, m := range fams["regsweep_objects_deleted"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "kind" && l.GetValue() == "blob" && m.GetGauge().GetValue() == 13 {
				blobKind = true
			}
		}
	}
	if !blobKind {
		t.Errorf("regsweep_objects_deleted{kind=\"blob\"} is not 13:\n%s", prom)
	}
	md := read(files["markdown"])
	for _, want := range []string{"# regsweep gc: ", "| repository | tags |", "| `team/app` | 0 | 4 | 7 | 10 |", "| **total** | 0 | 5 | 9 | 13 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if txt := read(files["text"]); !strings.Contains(txt, "TOTAL deleted") {
		t.Errorf("text report:\n%s", txt)
	}
	if js := read(files["json"]); !strings.Contains(js, `"bytes_reclaimed": 6052`) {
		t.Errorf("json report:\n%s", js)
	}
	// The window gauge is the JSON report's window_seconds.
	var rep struct {
		Window *float64 `json:"window_seconds"`
	}
	if err := json.Unmarshal([]byte(read(files["json"])), &rep); err != nil || rep.Window == nil || *rep.Window <= 0 {
		t.Errorf("json report's window_seconds: %v, %v", rep.Window, err)
	} else if w := fams["regsweep_window_seconds"]; w == nil || w.GetMetric()[0].GetGauge().GetValue() != *rep.Window {
		t.Errorf("regsweep_window_seconds = %v, the json report's window_seconds %v", w, *rep.Window)
	}
	// --report-format overrides the extension.
	out := filepath.Join(dir, "metrics.txt")
	root2 := filepath.Join(t.TempDir(), "sample")
	storagetest.CopyTree(t, sampleDir, root2)
	if code, _ := regsweep(t, "gc", "-q", "--dry-run", "--report", out, "--report-format", "prometheus", root2); code != 0 {
		t.Fatal("gc failed")
	}
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), "# TYPE regsweep_bytes_reclaimed gauge") || strings.Contains(string(b), "last_success") {
		t.Errorf("dry-run prometheus report:\n%s", b)
	}
	if code, _ := regsweep(t, "gc", "--report-format", "yaml", "--report", out, root2); code != exitUsage {
		t.Errorf("bad --report-format accepted")
	}
}

func TestLogFormatJSON(t *testing.T) {
	root := filepath.Join(t.TempDir(), "sample")
	storagetest.CopyTree(t, sampleDir, root)
	var stdout, stderr bytes.Buffer
	if code := runT(context.Background(), []string{"gc", "--dry-run", "--min-age", "0", "--log-format", "json", root}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("log: %q", stderr.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") || !strings.Contains(l, `"msg":"phase done"`) {
			t.Errorf("not a JSON phase line: %s", l)
		}
	}
}
