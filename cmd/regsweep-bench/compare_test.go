package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/sirupsen/logrus"
)

// TestMain lets compare start this test binary as regsweep-bench
// upstream-gc: with envRunMain set, the binary is the command.
func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
	}
	storagetest.UseMemoryTempDir()
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var (
	buildOnce   sync.Once
	regsweepBin string
	buildErr    error
	buildDir    string
)

// buildRegsweep builds ./cmd/regsweep once for the tests of this package.
func buildRegsweep(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "regsweep-bench-test-")
		if buildErr != nil {
			return
		}
		regsweepBin = filepath.Join(buildDir, "regsweep")
		out, err := exec.Command("go", "build", "-o", regsweepBin, "github.com/regsweep/regsweep/cmd/regsweep").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return regsweepBin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string {
	return "go build ./cmd/regsweep: " + e.err.Error() + "\n" + e.out
}

func TestProxyCountsAndDelays(t *testing.T) {
	var mu sync.Mutex
	var hosts []string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Path", r.URL.RequestURI())
		w.WriteHeader(http.StatusOK)
	}))
	defer backend.Close()
	p, err := newS3Proxy(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const delay = 40 * time.Millisecond
	p.SetDelay(delay)

	reqs := []struct {
		method, path string
		want         reqKind
	}{
		{"GET", "/bucket?list-type=2&prefix=registry%2F", kindList},
		{"GET", "/bucket?prefix=a&delimiter=%2F", kindList},
		{"GET", "/bucket/registry/docker/registry/v2/blobs/sha256/ab/abcd/data", kindGet},
		{"HEAD", "/bucket/key", kindHead},
		{"PUT", "/bucket/key", kindPut},
		{"POST", "/bucket?delete", kindDeleteBatch},
		{"DELETE", "/bucket/key", kindDelete},
		{"POST", "/bucket/key?uploads", kindOther},
	}
	var want [numKinds]int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, rq := range reqs {
		want[rq.want]++
		wg.Go(func() {
			req, err := http.NewRequest(rq.method, p.URL+rq.path, strings.NewReader("body"))
			if err != nil {
				t.Error(err)
				return
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK || res.Header.Get("X-Path") != rq.path {
				t.Errorf("%s %s: status %d, path at backend %q", rq.method, rq.path, res.StatusCode, res.Header.Get("X-Path"))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if got := p.Counts().byKind(); got != want {
		t.Errorf("counts %v, want %v", got, want)
	}
	// Concurrent requests are delayed concurrently, each by delay.
	if elapsed < delay || elapsed > 20*delay {
		t.Errorf("%d concurrent requests took %v with a delay of %v", len(reqs), elapsed, delay)
	}
	start = time.Now()
	res, err := http.Get(p.URL + "/bucket/key")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if d := time.Since(start); d < delay {
		t.Errorf("one request took %v, want at least the delay %v", d, delay)
	}
	for _, h := range hosts {
		if "http://"+h != p.URL {
			t.Errorf("backend saw Host %q, want the proxy's %q (the host clients sign for)", h, p.URL)
		}
	}
	p.Reset()
	if n := p.Counts().Total(); n != 0 {
		t.Errorf("after Reset: %d requests", n)
	}
}

// compareJSON runs compare with args and returns its JSON result.
func compareJSON(t *testing.T, args ...string) (string, compareResult) {
	t.Helper()
	logrus.SetOutput(io.Discard)
	jsonFile := filepath.Join(t.TempDir(), "result.json")
	out, err := runCLI(t, append([]string{"compare", "--regsweep", buildRegsweep(t), "--work", t.TempDir(), "--json", jsonFile}, args...)...)
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var res compareResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return out, res
}

func checkTable(t *testing.T, out string, res compareResult, rounds int) {
	t.Helper()
	for _, row := range []string{"\nupstream ", "\nregsweep ", "\nupstream/regsweep "} {
		if !strings.Contains(out, row) {
			t.Errorf("table has no %q row", strings.TrimSpace(row))
		}
	}
	if len(res.GCs) != 2 || res.GCs[0].Name != gcUpstream || res.GCs[1].Name != gcRegsweep {
		t.Fatalf("gcs %+v", res.GCs)
	}
	for _, g := range res.GCs {
		if len(g.Runs) != rounds {
			t.Errorf("%s: %d runs, want %d", g.Name, len(g.Runs), rounds)
		}
		first := 0
		for _, r := range g.Runs {
			if r.First {
				first++
			}
			if r.WindowSeconds <= 0 || r.WindowSeconds > r.WallSeconds {
				t.Errorf("%s round %d: window %vs, wall %vs", g.Name, r.Round, r.WindowSeconds, r.WallSeconds)
			}
		}
		if 2*first != rounds {
			t.Errorf("%s went first in %d of %d rounds, want half", g.Name, first, rounds)
		}
		for _, r := range g.Runs {
			if r.WallSeconds <= 0 || r.MaxRSSBytes <= 0 || r.UserSeconds+r.SysSeconds <= 0 {
				t.Errorf("%s round %d: not measured: %+v", g.Name, r.Round, r)
			}
			if r.ObjectsDeleted <= 0 {
				t.Errorf("%s round %d deleted nothing", g.Name, r.Round)
			}
		}
	}
	if c := res.GCs[1].Summary.Check; c != "matches" {
		t.Errorf("regsweep's result: %s", c)
	}
}

func TestCompareFilesystem(t *testing.T) {
	out, res := compareJSON(t, "--blobs", "300", "--rounds", "1", "--delete-untagged")
	checkTable(t, out, res, 2) // rounded up: each collector goes first once
	if !strings.Contains(out, "window median") || res.Ratios["window"] <= res.Ratios["wall_median"] {
		t.Errorf("no window column, or regsweep's window (ratio %v) is no shorter than its run (ratio %v)", res.Ratios["window"], res.Ratios["wall_median"])
	}
	// Upstream deletes referrers of kept manifests: its result differs.
	if up := res.GCs[0].Runs[0]; up.Differences == 0 || up.DiffKinds["missing revision"] == 0 {
		t.Errorf("upstream with --delete-untagged matches the expectation: %+v", up)
	}
	if res.Objects != res.Registry.Files || res.Objects == 0 {
		t.Errorf("objects %d, files generated %d", res.Objects, res.Registry.Files)
	}
}

func TestCompareFilesystemDryRun(t *testing.T) {
	out, res := compareJSON(t, "--blobs", "200", "--rounds", "2", "--dry-run", "--delete-untagged")
	for _, g := range res.GCs {
		if g.Summary.Check != "untouched" || g.Summary.Deleted != 0 {
			t.Errorf("%s in a dry run: %s, %d deleted", g.Name, g.Summary.Check, g.Summary.Deleted)
		}
	}
	if !strings.Contains(out, "regsweep's report: would delete ") {
		t.Error("no dry-run report line")
	}
}

func TestCompareS3(t *testing.T) {
	if os.Getenv(envS3Endpoint) == "" {
		t.Skip("no S3 server: set " + envS3Endpoint + " (eval \"$(bash .ci/s3-server.sh start)\")")
	}
	// Upstream at 2ms is predicted over 1ms: it runs at zero delay.
	out, res := compareJSON(t, "--backend", "s3", "--blobs", "100", "--rounds", "1", "--delete-untagged", "--delay", "2ms", "--upstream-max", "1ms")
	checkTable(t, out, res, 2)
	up, rs := res.GCs[0].Runs[0], res.GCs[1].Runs[0]
	if !up.Predicted || up.Delay != 0 || up.WallSeconds <= up.MeasuredWallSeconds {
		t.Errorf("upstream was not predicted: %+v", up)
	}
	if rs.Predicted || time.Duration(rs.Delay) != 2*time.Millisecond {
		t.Errorf("regsweep did not run at the delay: %+v", rs)
	}
	if up.Requests == nil || rs.Requests == nil || up.Requests.List == 0 || rs.Requests.List == 0 || rs.Requests.DeleteBatch == 0 {
		t.Errorf("requests not counted: upstream %v, regsweep %v", up.Requests, rs.Requests)
	}
	if res.Budget == nil || res.Budget.Total <= 0 || !strings.Contains(out, "S3 request budget: ") || !strings.Contains(out, "* predicted") {
		t.Errorf("no budget or prediction note: %+v", res.Budget)
	}
}
