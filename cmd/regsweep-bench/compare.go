package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

// The two collectors compare runs.
const (
	gcUpstream = "upstream"
	gcRegsweep = "regsweep"
)

// envRunMain makes a test binary run main: compare starts upstream-gc as
// its own executable, which in tests is the test binary (see TestMain).
const envRunMain = "REGSWEEP_BENCH_RUN_MAIN"

// compareOpts is the compare command line, validated.
type compareOpts struct {
	Backend        string  `json:"backend"`
	Blobs          int     `json:"blobs"`
	Seed           uint64  `json:"seed"`
	Rounds         int     `json:"rounds"`
	DeleteUntagged bool    `json:"delete_untagged"`
	DryRun         bool    `json:"dry_run"`
	Policy         string  `json:"policy,omitempty"`
	Cold           bool    `json:"cold"`
	Delay          jsonDur `json:"delay"`
	UpstreamMax    jsonDur `json:"upstream_max"`
	Regsweep       string  `json:"regsweep"`
	Work           string  `json:"work"`
	Keep           bool    `json:"keep"`
	GenJobs        int     `json:"-"`
	JSON           string  `json:"-"`
	RequestLog     string  `json:"-"`

	s3 s3Server
}

// jsonDur is a duration that marshals as "20ms".
type jsonDur time.Duration

func (d jsonDur) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *jsonDur) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = jsonDur(v)
	return err
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compare", "compare --blobs N [--seed S] [--rounds R] [--delete-untagged] [--dry-run] [--policy FILE] [--backend fs|s3] [--delay D] [--upstream-max D] [--cold] [--regsweep PATH] [--work DIR] [--keep] [--json FILE] [--request-log FILE]",
		`Generates one registry (and what must survive GC) into the work folder, then for each
round makes two fresh identical copies of it and runs upstream's garbage collector
('regsweep-bench upstream-gc') on one and 'regsweep gc -q --min-age 0' on the other, each
in its own process, alternating which goes first. It measures wall time (and regsweep's
window: its report's window_seconds, against upstream's whole run), user+sys CPU time
and peak RSS (rusage of the process), counts the objects deleted, checks what each left
against the expectation (blobs and revision links), and prints one table.

--backend fs: copies are written again from the generated model (the same bytes and
modification times; faster than copying the tree). With --dry-run nothing is deleted, so
both collectors run on the generated registry itself, which must stay untouched.

--backend s3: the generated tree is uploaded into fresh buckets (under rootdirectory
"`+s3Root+`") of the S3 server $`+envS3Endpoint+` (.ci/s3-server.sh start), and both collectors reach
it through a proxy on loopback that holds every request --delay and counts requests by
kind. With --upstream-max, when upstream at --delay would take longer (predicted from a
run at zero delay: its time + requests × delay), upstream runs at zero delay and its time
at --delay is reported as predicted.

A registry already generated in --work with the same --blobs and --seed is reused.`, stderr)
	var o compareOpts
	fs.IntVar(&o.Blobs, "blobs", 0, "generate about `N` blobs")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed `S` of the generator")
	fs.IntVar(&o.Rounds, "rounds", 2, "`R` rounds, each on fresh copies; an odd R is rounded up, so that each collector goes first in half of them")
	fs.BoolVar(&o.DeleteUntagged, "delete-untagged", false, "run both collectors with --delete-untagged")
	fs.BoolVar(&o.DryRun, "dry-run", false, "run both collectors with --dry-run")
	fs.StringVar(&o.Policy, "policy", "", "give regsweep this tag retention policy `FILE` (upstream has none; results are not checked)")
	fs.StringVar(&o.Backend, "backend", "fs", "storage: fs or s3")
	delay := fs.Duration("delay", 0, "S3: hold every request `D` in the proxy (a round-trip time), e.g. 20ms")
	upstreamMax := fs.Duration("upstream-max", 0, "S3: when upstream at --delay is predicted to take longer than `D`, run it at zero delay and report the prediction (0: always run it at --delay)")
	fs.BoolVar(&o.Cold, "cold", false, "drop the page cache (sync; echo 3 > /proc/sys/vm/drop_caches) before each run (needs root)")
	fs.StringVar(&o.Regsweep, "regsweep", "", "the regsweep binary `PATH` (default: go build ./cmd/regsweep into the work folder)")
	fs.StringVar(&o.Work, "work", "", "work folder `DIR` (default: a temporary folder, removed at the end)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work folder, the copies and the buckets")
	fs.StringVar(&o.JSON, "json", "", "also write the results as JSON to `FILE`")
	fs.StringVar(&o.RequestLog, "request-log", "", "S3: write every request the proxy sees (collector, round, kind, method, URI) to `FILE`")
	fs.IntVar(&o.GenJobs, "gen-jobs", 4, "files written at once when generating")
	fs.StringVar(&o.s3.Endpoint, "s3-endpoint", os.Getenv(envS3Endpoint), "S3 server `URL` (default $"+envS3Endpoint+")")
	fs.StringVar(&o.s3.Region, "s3-region", "", "S3 `region` (default $"+envS3Region+", else us-east-1)")
	fs.StringVar(&o.s3.AccessKey, "s3-access-key", "", "S3 access `key` (default $"+envS3AccessKey+")")
	fs.StringVar(&o.s3.SecretKey, "s3-secret-key", "", "S3 secret `key` (default $"+envS3SecretKey+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	o.s3.Region = cmpOr(o.s3.Region, os.Getenv(envS3Region), "us-east-1")
	o.s3.AccessKey = cmpOr(o.s3.AccessKey, os.Getenv(envS3AccessKey))
	o.s3.SecretKey = cmpOr(o.s3.SecretKey, os.Getenv(envS3SecretKey))
	o.Delay, o.UpstreamMax = jsonDur(*delay), jsonDur(*upstreamMax)
	if o.Rounds > 0 && o.Rounds%2 == 1 {
		// Each collector goes first in half the rounds: the second run of
		// a round meets what the first left in the caches and the disk's
		// queue (a discard-mounted disk trims the first run's deletes for
		// a while after it).
		fmt.Fprintf(stderr, "compare: --rounds %d rounded up to %d, so that each collector goes first as often\n", o.Rounds, o.Rounds+1)
		o.Rounds++
	}
	switch {
	case fs.NArg() > 0:
		return usageError(fs, "unexpected argument %q", fs.Arg(0))
	case o.Blobs <= 0:
		return usageError(fs, "--blobs must be positive")
	case o.Rounds <= 0:
		return usageError(fs, "--rounds must be positive")
	case o.Backend != "fs" && o.Backend != "s3":
		return usageError(fs, "--backend must be fs or s3")
	case *delay < 0 || *upstreamMax < 0:
		return usageError(fs, "--delay and --upstream-max must not be negative")
	case o.Backend == "fs" && (*delay > 0 || *upstreamMax > 0):
		return usageError(fs, "--delay and --upstream-max are for --backend s3")
	case o.Backend == "s3" && o.s3.Endpoint == "":
		return usageError(fs, "--backend s3 needs --s3-endpoint or $%s (eval \"$(bash .ci/s3-server.sh start)\")", envS3Endpoint)
	case o.GenJobs <= 0:
		return usageError(fs, "--gen-jobs must be positive")
	}
	if o.Policy != "" {
		p, err := filepath.Abs(o.Policy)
		if err != nil {
			return err
		}
		o.Policy = p
	}
	res, err := compare(ctx, o, stderr)
	if err != nil {
		return err
	}
	if err := res.writeText(stdout); err != nil {
		return err
	}
	if o.JSON != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.JSON, append(b, '\n'), 0o666); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
	}
	return nil
}

// s3Settle is the time left between the end of an upload and a run on it.
const s3Settle = 2500 * time.Millisecond

// fsSettle is the time left between the end of a filesystem copy and a run
// on it.
const fsSettle = 3 * time.Second

// cmpOr returns the first of its arguments that is not empty.
func cmpOr(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// gcRun is one collector's run on one fresh copy.
type gcRun struct {
	Round int  `json:"round"`
	First bool `json:"first"` // ran before the other collector in its round
	// WallSeconds is the wall time at the configured delay: measured, or
	// with Predicted, MeasuredWallSeconds + requests × delay.
	WallSeconds         float64 `json:"wall_seconds"`
	MeasuredWallSeconds float64 `json:"measured_wall_seconds"`
	// WindowSeconds is how long the registry had to stay read-only:
	// regsweep's report's window_seconds; upstream's whole run.
	WindowSeconds float64 `json:"window_seconds"`
	Predicted     bool    `json:"predicted"`
	Delay         jsonDur `json:"delay"` // the delay the run's requests had
	UserSeconds   float64 `json:"user_seconds"`
	SysSeconds    float64 `json:"sys_seconds"`
	MaxRSSBytes   int64   `json:"max_rss_bytes"`
	// RSSInflated: no GNU time, so MaxRSSBytes is wait4's, at least this
	// benchmark's own RSS (see measure).
	RSSInflated    bool      `json:"rss_inflated,omitempty"`
	Requests       *Requests `json:"requests,omitempty"`
	ObjectsAfter   int64     `json:"objects_after"`
	ObjectsDeleted int64     `json:"objects_deleted"`
	// Check is "matches", "N differences", "untouched" (dry run) or "not checked".
	Check       string         `json:"check"`
	Differences int            `json:"differences"`
	DiffKinds   map[string]int `json:"difference_kinds,omitempty"`
	DiffSample  []string       `json:"difference_sample,omitempty"`
	// Report is what regsweep's --report said (regsweep runs only).
	Report *regsweepReport `json:"report,omitempty"`
}

func (r gcRun) cpu() float64 { return r.UserSeconds + r.SysSeconds }

// regsweepReport is the part of regsweep's JSON report compare reads.
type regsweepReport struct {
	Tags       int `json:"tags_deleted"`
	Manifests  int `json:"manifests_deleted"`
	TagIndex   int `json:"tag_index_entries_deleted"`
	LayerLinks int `json:"layer_links_deleted"`
	Blobs      int `json:"blobs_deleted"`
	// WindowSeconds is how long the registry had to stay read-only.
	WindowSeconds float64 `json:"window_seconds"`
	Phases        []struct {
		Name    string  `json:"name"`
		Seconds float64 `json:"seconds"`
	} `json:"phases"`
	Errors []string `json:"errors"`
}

// gcResult is one collector's runs and their summary.
type gcResult struct {
	Name    string    `json:"name"`
	Runs    []gcRun   `json:"runs"`
	Summary gcSummary `json:"summary"`
}

// gcSummary sums up the runs: medians, and the fastest wall time.
type gcSummary struct {
	WallMedian   float64   `json:"wall_seconds_median"`
	WallMin      float64   `json:"wall_seconds_min"`
	WindowMedian float64   `json:"window_seconds_median"`
	CPUMedian    float64   `json:"cpu_seconds_median"`
	RSSMedian    int64     `json:"max_rss_bytes_median"`
	RSSPerObject float64   `json:"max_rss_bytes_per_object"`
	Requests     *Requests `json:"requests_median,omitempty"`
	Deleted      int64     `json:"objects_deleted_median"`
	Predicted    bool      `json:"predicted"`
	Check        string    `json:"check"`
}

// prediction validates "time at delay = time at zero delay + requests ×
// delay" for upstream: a run at zero delay against the runs at the delay.
type prediction struct {
	ZeroDelayWall     float64 `json:"zero_delay_wall_seconds"`
	ZeroDelayRequests int64   `json:"zero_delay_requests"`
	Predicted         float64 `json:"predicted_wall_seconds"`
	// Measured is the median wall time at the delay; 0 when upstream was
	// not run at the delay (the prediction exceeded --upstream-max).
	Measured float64 `json:"measured_wall_seconds"`
}

// budget is the S3 request budget of the issue for regsweep:
// ceil(keys/1000) + tags + manifests + ceil(deleted/1000).
type budget struct {
	Keys      int64   `json:"keys"`
	Tags      int     `json:"tags"`
	Manifests int     `json:"manifests"`
	Deleted   int64   `json:"deleted"`
	Total     int64   `json:"total"`
	Regsweep  int64   `json:"regsweep_requests"`
	Percent   float64 `json:"regsweep_percent"`
}

// machine describes where the benchmark ran.
type machine struct {
	CPUs     int    `json:"cpus"`
	MemBytes int64  `json:"mem_bytes"`
	Kernel   string `json:"kernel"`
	WorkFS   string `json:"work_fs"`
}

// compareResult is everything compare measured; --json writes it.
type compareResult struct {
	Options    compareOpts        `json:"options"`
	Machine    machine            `json:"machine"`
	Registry   gen.Totals         `json:"registry"`
	Objects    int64              `json:"objects"`
	Regsweep   string             `json:"regsweep_binary"`
	GCs        []*gcResult        `json:"gcs"` // upstream, regsweep
	Ratios     map[string]float64 `json:"ratios_upstream_to_regsweep"`
	Prediction *prediction        `json:"prediction,omitempty"`
	Budget     *budget            `json:"budget,omitempty"`
}

// comparison holds the state of one compare run.
type comparison struct {
	o        compareOpts
	log      io.Writer
	work     string
	source   string // the generated registry
	reg      *gen.Registry
	exp      *gen.Expectation
	objects  int64
	self     string // this executable, for upstream-gc
	regsweep string
	env      []string

	// S3
	proxy  *s3Proxy
	client *s3.Client
	files  []s3File
	shared *replica // the dry run's single copy
	reqLog *os.File
}

// replica is one copy of the registry a collector runs on.
type replica struct {
	label   string
	readyAt time.Time // when the copy was complete
	dir     string    // fs
	bucket  string    // s3
	shared  bool      // not a fresh copy: the dry run's, removed at the end
}

func compare(ctx context.Context, o compareOpts, log io.Writer) (res *compareResult, err error) {
	c := &comparison{o: o, log: log}
	if c.work = o.Work; c.work == "" {
		if c.work, err = os.MkdirTemp("", "regsweep-bench-compare-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(c.work, 0o777); err != nil {
		return nil, err
	}
	if c.work, err = filepath.Abs(c.work); err != nil {
		return nil, err
	}
	defer func() {
		if !o.Keep && o.Work == "" {
			c.logf("removing %s", c.work)
			if rerr := removeTree(context.WithoutCancel(ctx), c.work); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()
	if err := c.prepare(ctx); err != nil {
		return nil, err
	}
	if o.Backend == "s3" {
		if err := c.setupS3(ctx); err != nil {
			return nil, err
		}
		defer c.proxy.Close()
		defer func() {
			if c.reqLog != nil {
				c.reqLog.Close()
			}
		}()
		defer func() {
			if c.shared != nil {
				c.remove(context.WithoutCancel(ctx), c.shared)
			}
		}()
	}
	return c.runRounds(ctx)
}

func (c *comparison) logf(format string, a ...any) {
	fmt.Fprintf(c.log, "compare: "+format+"\n", a...)
}

// prepare generates (or reuses) the registry and finds both collectors.
func (c *comparison) prepare(ctx context.Context) error {
	c.source = filepath.Join(c.work, "registry")
	expFile := filepath.Join(c.work, "expect.json")
	opts := gen.Options{Blobs: c.o.Blobs, Seed: c.o.Seed}
	if exp, err := gen.ReadExpectation(expFile); err == nil && exp.Generator.Blobs == c.o.Blobs && exp.Generator.Seed == c.o.Seed &&
		!exp.Generator.Legacy && !exp.Generator.SHA512 && exp.Generator.Repos == 0 {
		age, _ := time.ParseDuration(exp.Generator.Age)
		opts.Now, opts.Age = exp.Generator.Now, age
		start := time.Now()
		c.reg, c.exp = gen.Build(opts), exp
		n, err := countFiles(ctx, filepath.Join(c.source, filepath.FromSlash(gen.V2Path)))
		if err != nil {
			return err
		}
		if n != exp.Totals.Files {
			return fmt.Errorf("compare: %s holds %d files, %s says %d: remove both to generate again", c.source, n, expFile, exp.Totals.Files)
		}
		c.logf("reusing the registry in %s (%d files; model rebuilt in %.1fs)", c.source, n, time.Since(start).Seconds())
	} else {
		if err := removeTree(ctx, c.source); err != nil {
			return err
		}
		os.Remove(expFile)
		start := time.Now()
		opts.Now = start
		c.reg = gen.Build(opts)
		st, err := c.reg.Write(ctx, c.source, c.o.GenJobs)
		if err != nil {
			return fmt.Errorf("compare: generate: %w", err)
		}
		c.exp = c.reg.Expect(opts)
		if err := c.exp.WriteFile(expFile); err != nil {
			return err
		}
		c.logf("generated %d files (%d blobs) into %s in %.1fs", st.Files, c.exp.Totals.Blobs, c.source, time.Since(start).Seconds())
	}
	c.objects = c.exp.Totals.Files

	var err error
	if c.self, err = os.Executable(); err != nil {
		return err
	}
	c.env = append(os.Environ(), envRunMain+"=1")
	c.regsweep = c.o.Regsweep
	if c.regsweep == "" {
		c.regsweep = filepath.Join(c.work, "regsweep")
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", c.regsweep, "github.com/regsweep/regsweep/cmd/regsweep")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("compare: build regsweep (run in the module, or give --regsweep): %w\n%s", err, out)
		}
		c.logf("built %s in %.1fs", c.regsweep, time.Since(start).Seconds())
	} else if c.regsweep, err = filepath.Abs(c.regsweep); err != nil {
		return err
	}
	return nil
}

// fresh makes a copy of the generated registry named label.
func (c *comparison) fresh(ctx context.Context, label string) (*replica, error) {
	if c.o.DryRun && c.shared != nil {
		return c.shared, nil
	}
	start := time.Now()
	var r *replica
	switch c.o.Backend {
	case "fs":
		if c.o.DryRun {
			// Nothing is deleted: both run on the generated registry.
			c.shared = &replica{label: "source", dir: c.source, shared: true}
			return c.shared, nil
		}
		r = &replica{label: label, dir: filepath.Join(c.work, label)}
		if err := removeTree(ctx, r.dir); err != nil {
			return nil, err
		}
		if _, err := c.reg.Write(ctx, r.dir, c.o.GenJobs); err != nil {
			return nil, fmt.Errorf("compare: copy: %w", err)
		}
	case "s3":
		r = &replica{label: label, bucket: newBucketName(label)}
		if err := uploadBucket(ctx, c.client, r.bucket, c.files); err != nil {
			c.remove(context.WithoutCancel(ctx), r)
			return nil, err
		}
		if c.o.DryRun {
			r.shared = true
			c.shared = r
		}
	}
	r.readyAt = time.Now()
	c.logf("copy %s ready in %.1fs", c.where(r), time.Since(start).Seconds())
	return r, nil
}

func (c *comparison) where(r *replica) string {
	if r.bucket != "" {
		return "s3://" + r.bucket + "/" + s3Root
	}
	return r.dir
}

// remove deletes a copy, unless --keep.
func (c *comparison) remove(ctx context.Context, r *replica) {
	if c.o.Keep || r == nil || (r.dir != "" && r.dir == c.source) {
		return
	}
	var err error
	if r.bucket != "" {
		err = removeBucket(ctx, c.client, r.bucket)
	} else {
		err = removeTree(ctx, r.dir)
	}
	if err != nil {
		c.logf("warning: %v", err)
	}
}

// scan reads what a copy holds.
func (c *comparison) scan(ctx context.Context, r *replica) (*gen.OnDisk, int64, error) {
	if r.bucket != "" {
		return scanBucket(ctx, c.client, r.bucket)
	}
	disk, err := gen.Scan(ctx, r.dir)
	if err != nil {
		return nil, 0, err
	}
	n, err := countFiles(ctx, filepath.Join(r.dir, filepath.FromSlash(gen.V2Path)))
	return disk, n, err
}

// command returns the command line of one collector on r.
func (c *comparison) command(gc string, r *replica) (string, []string) {
	var flags []string
	if c.o.DeleteUntagged {
		flags = append(flags, "--delete-untagged")
	}
	if c.o.DryRun {
		flags = append(flags, "--dry-run")
	}
	loc := []string{r.dir}
	if r.bucket != "" {
		loc = []string{"--s3-endpoint", c.proxy.URL, "--s3-region", c.o.s3.Region, "--s3-force-path-style", "s3://" + r.bucket + "/" + s3Root}
	}
	if gc == gcUpstream {
		return c.self, slices.Concat([]string{"upstream-gc"}, flags, loc)
	}
	args := slices.Concat([]string{"gc", "-q", "--min-age", "0", "--report", c.reportFile()}, flags)
	if c.o.Policy != "" {
		args = append(args, "--policy", c.o.Policy)
	}
	return c.regsweep, append(args, loc...)
}

func (c *comparison) reportFile() string { return filepath.Join(c.work, "regsweep-report.json") }

// runGC runs one collector on r with the proxy holding requests delay, and
// checks what it left.
func (c *comparison) runGC(ctx context.Context, gc string, r *replica, delay time.Duration, label string) (gcRun, error) {
	if r.bucket != "" && gc == gcRegsweep {
		// LastModified is the upload's time, in whole seconds, and regsweep
		// keeps what changed within a second of its start as too recent,
		// even with --min-age 0: let that second pass. (Upstream has no
		// grace period.)
		if wait := time.Until(r.readyAt.Add(s3Settle)); wait > 0 {
			time.Sleep(wait)
		}
	}
	if r.dir != "" && !r.shared {
		// The files of a copy carry the generator's times, its folders the
		// time they were written: a registry is not written seconds before
		// its collection, and regsweep's recheck lists again what changed
		// within 2 s of its walk. Both collectors wait alike.
		if wait := time.Until(r.readyAt.Add(fsSettle)); wait > 0 {
			time.Sleep(wait)
		}
	}
	if c.o.Cold {
		if err := dropCaches(); err != nil {
			return gcRun{}, err
		}
	} else {
		syscall.Sync() // the copy just written must not be written back during the run
	}
	if c.proxy != nil {
		c.proxy.Reset()
		c.proxy.SetDelay(delay)
		if c.reqLog != nil {
			c.proxy.SetLog(c.reqLog, gc+" "+label)
		}
	}
	os.Remove(c.reportFile())
	name, args := c.command(gc, r)
	u, _, err := measure(ctx, c.env, name, args...)
	if err != nil {
		return gcRun{}, fmt.Errorf("compare: %s: %w", gc, err)
	}
	out := gcRun{
		WallSeconds: u.Wall.Seconds(), MeasuredWallSeconds: u.Wall.Seconds(), Delay: jsonDur(delay),
		UserSeconds: u.User.Seconds(), SysSeconds: u.Sys.Seconds(), MaxRSSBytes: u.MaxRSS, RSSInflated: u.RSSFromWait4,
	}
	if c.proxy != nil {
		rq := c.proxy.Counts()
		out.Requests = &rq
	}
	if gc == gcRegsweep {
		if b, err := os.ReadFile(c.reportFile()); err == nil {
			var rep regsweepReport
			if json.Unmarshal(b, &rep) == nil {
				out.Report = &rep
				out.WindowSeconds = rep.WindowSeconds
			}
		}
	}
	disk, n, err := c.scan(ctx, r)
	if err != nil {
		return gcRun{}, err
	}
	out.ObjectsAfter, out.ObjectsDeleted = n, c.objects-n
	switch {
	case c.o.DryRun:
		if n == c.objects {
			out.Check = "untouched"
		} else {
			out.Check = fmt.Sprintf("DRY RUN DELETED %d objects", c.objects-n)
			out.Differences = int(c.objects - n)
			if r.shared {
				return out, fmt.Errorf("compare: %s deleted %d objects of %s in a dry run: later runs would be wrong", gc, c.objects-n, c.where(r))
			}
		}
	case c.o.Policy != "":
		out.Check = "not checked (policy)"
	default:
		mode := gen.ModeKeepUntagged
		if c.o.DeleteUntagged {
			mode = gen.ModeDeleteUntagged
		}
		diffs := gen.Compare(c.exp.Modes[mode], disk, false)
		out.Differences = len(diffs)
		if len(diffs) == 0 {
			out.Check = "matches"
			break
		}
		out.DiffKinds = map[string]int{}
		for i, d := range diffs {
			k := "extra " + d.What
			if d.Missing {
				k = "missing " + d.What
			}
			out.DiffKinds[k]++
			if i < 20 {
				out.DiffSample = append(out.DiffSample, d.String())
			}
		}
		out.Check = diffSummary(len(diffs), out.DiffKinds)
	}
	return out, nil
}

func diffSummary(n int, kinds map[string]int) string {
	keys := make([]string, 0, len(kinds))
	for k := range kinds {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", kinds[k], k)
	}
	return fmt.Sprintf("%d differences (%s)", n, strings.Join(parts, ", "))
}

func (c *comparison) runRounds(ctx context.Context) (*compareResult, error) {
	res := &compareResult{Options: c.o, Machine: describeMachine(c.work), Registry: c.exp.Totals, Objects: c.objects, Regsweep: c.regsweep,
		GCs: []*gcResult{{Name: gcUpstream}, {Name: gcRegsweep}}}
	res.Options.Work = c.work
	delay := time.Duration(c.o.Delay)
	predictUpstream := false
	var probe *gcRun // upstream's run at zero delay, which is round 1's when predicted
	if c.proxy != nil && delay > 0 {
		// Upstream sends its requests one at a time: at delay d it takes
		// its time at zero delay + requests × d. Measure the first.
		r, err := c.fresh(ctx, "probe-upstream")
		if err != nil {
			return nil, err
		}
		p, err := c.runGC(ctx, gcUpstream, r, 0, "probe")
		if !r.shared {
			c.remove(context.WithoutCancel(ctx), r)
		}
		if err != nil {
			return nil, err
		}
		pred := p.WallSeconds + float64(p.Requests.Total())*delay.Seconds()
		res.Prediction = &prediction{ZeroDelayWall: p.WallSeconds, ZeroDelayRequests: p.Requests.Total(), Predicted: pred}
		predictUpstream = c.o.UpstreamMax > 0 && pred > time.Duration(c.o.UpstreamMax).Seconds()
		if predictUpstream {
			probe = &p
		}
		c.logf("upstream at zero delay: %.2fs, %d requests (%s): predicted at %v: %.1fs%s", p.WallSeconds, p.Requests.Total(), p.Requests, delay, pred,
			ifThen(predictUpstream, fmt.Sprintf(", over --upstream-max %v: upstream runs at zero delay", time.Duration(c.o.UpstreamMax))))
	}
	for round := range c.o.Rounds {
		if err := c.runRound(ctx, res, round, delay, predictUpstream, probe); err != nil {
			return nil, err
		}
	}
	for _, g := range res.GCs {
		g.Summary = summarize(g.Runs, c.objects)
	}
	up, rs := res.GCs[0].Summary, res.GCs[1].Summary
	res.Ratios = map[string]float64{
		"wall_median": ratio(up.WallMedian, rs.WallMedian),
		"wall_min":    ratio(up.WallMin, rs.WallMin),
		"window":      ratio(up.WindowMedian, rs.WindowMedian),
		"cpu":         ratio(up.CPUMedian, rs.CPUMedian),
		"max_rss":     ratio(float64(up.RSSMedian), float64(rs.RSSMedian)),
	}
	if up.Requests != nil && rs.Requests != nil {
		res.Ratios["requests"] = ratio(float64(up.Requests.Total()), float64(rs.Requests.Total()))
		b := &budget{Keys: c.objects, Tags: c.exp.Totals.Tags, Manifests: c.exp.Totals.DistinctManifests, Deleted: rs.Deleted}
		b.Total = ceilDiv(b.Keys, 1000) + int64(b.Tags) + int64(b.Manifests) + ceilDiv(b.Deleted, 1000)
		b.Regsweep = rs.Requests.Total()
		b.Percent = 100 * float64(b.Regsweep) / float64(b.Total)
		res.Budget = b
	}
	if res.Prediction != nil && !predictUpstream {
		res.Prediction.Measured = up.WallMedian
	}
	return res, nil
}

// ifThen returns s when cond holds, else "".
func ifThen(cond bool, s string) string {
	if cond {
		return s
	}
	return ""
}

// runRound runs both collectors, alternating which goes first, each on a
// copy written just before its run and removed right after it, even on an
// error: a run never shares the machine with the other's copy or what the
// other left of it (with both copies made first, a 300k-blob run of
// regsweep on tmpfs took 7.6 s going first and 8.7 to 9.3 s going after
// upstream's 440,000 deletions on the other copy).
func (c *comparison) runRound(ctx context.Context, res *compareResult, round int, delay time.Duration, predictUpstream bool, probe *gcRun) error {
	order := []*gcResult{res.GCs[0], res.GCs[1]}
	if round%2 == 1 {
		slices.Reverse(order)
	}
	reps := map[string]*replica{}
	defer func() {
		for _, r := range reps {
			if !r.shared {
				c.remove(context.WithoutCancel(ctx), r)
			}
		}
	}()
	for i, g := range order {
		d := delay
		if g.Name == gcUpstream && predictUpstream {
			d = 0
		}
		var r gcRun
		if round == 0 && g.Name == gcUpstream && probe != nil {
			r = *probe // it ran on a fresh copy at zero delay, as this round would
		} else {
			rep, err := c.fresh(ctx, fmt.Sprintf("round%d-%s", round+1, g.Name))
			if err != nil {
				return err
			}
			reps[g.Name] = rep
			if r, err = c.runGC(ctx, g.Name, rep, d, fmt.Sprintf("round%d", round+1)); err != nil {
				return err
			}
			if !rep.shared {
				c.remove(context.WithoutCancel(ctx), rep)
				delete(reps, g.Name)
			}
		}
		if d != delay && r.Requests != nil {
			r.Predicted = true
			r.WallSeconds = r.MeasuredWallSeconds + float64(r.Requests.Total())*delay.Seconds()
		}
		if g.Name == gcUpstream || r.WindowSeconds == 0 {
			r.WindowSeconds = r.WallSeconds // no window of its own: the whole run
		}
		r.Round, r.First = round+1, i == 0
		g.Runs = append(g.Runs, r)
		c.logf("round %d/%d: %s %.2fs%s, cpu %.2fs, rss %s, deleted %d, %s", round+1, c.o.Rounds, g.Name, r.WallSeconds,
			ifThen(r.Predicted, " (predicted)"), r.cpu(), fmtBytes(r.MaxRSSBytes), r.ObjectsDeleted, r.Check)
	}
	return nil
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func median[T int64 | float64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func summarize(runs []gcRun, objects int64) gcSummary {
	var wall, window, cpu []float64
	var rss, deleted []int64
	var kinds [numKinds][]int64
	for _, r := range runs {
		wall = append(wall, r.WallSeconds)
		window = append(window, r.WindowSeconds)
		cpu = append(cpu, r.cpu())
		rss = append(rss, r.MaxRSSBytes)
		deleted = append(deleted, r.ObjectsDeleted)
		if r.Requests != nil {
			for k, n := range r.Requests.byKind() {
				kinds[k] = append(kinds[k], n)
			}
		}
	}
	s := gcSummary{WallMedian: median(wall), WallMin: slices.Min(wall), WindowMedian: median(window), CPUMedian: median(cpu), RSSMedian: median(rss), Deleted: median(deleted)}
	s.RSSPerObject = float64(s.RSSMedian) / float64(objects)
	if runs[0].Requests != nil {
		s.Requests = &Requests{List: median(kinds[kindList]), Get: median(kinds[kindGet]), Head: median(kinds[kindHead]), Put: median(kinds[kindPut]),
			DeleteBatch: median(kinds[kindDeleteBatch]), Delete: median(kinds[kindDelete]), Other: median(kinds[kindOther])}
	}
	checks := map[string]bool{}
	for _, r := range runs {
		s.Predicted = s.Predicted || r.Predicted
		checks[r.Check] = true
	}
	if len(checks) == 1 {
		s.Check = runs[0].Check
	} else {
		var all []string
		for _, r := range runs {
			all = append(all, fmt.Sprintf("round %d: %s", r.Round, r.Check))
		}
		s.Check = strings.Join(all, "; ")
	}
	return s
}

// describeMachine reads the CPU count, memory, kernel and the file system
// type of the work folder.
func describeMachine(dir string) machine {
	m := machine{CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for line := range strings.SplitSeq(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				m.MemBytes = kb * 1024
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.WorkFS = fsType(dir)
	return m
}

// fsType names the file system holding dir, from /proc/self/mounts: the
// longest mount point that is a prefix of dir.
func fsType(dir string) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "unknown"
	}
	best, typ := -1, "unknown"
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > best {
			best, typ = len(mp), f[2]+" on "+f[0]
		}
	}
	return typ
}

// setupS3 lists the files to upload, starts the proxy and gives the
// collectors the server's keys.
func (c *comparison) setupS3(ctx context.Context) error {
	c.client = c.o.s3.client()
	var err error
	if c.files, err = listTree(c.source); err != nil {
		return err
	}
	if int64(len(c.files)) != c.objects {
		return fmt.Errorf("compare: %s holds %d files, the generator wrote %d", c.source, len(c.files), c.objects)
	}
	if c.proxy, err = newS3Proxy(c.o.s3.Endpoint); err != nil {
		return err
	}
	c.env = append(c.env, "AWS_ACCESS_KEY_ID="+c.o.s3.AccessKey, "AWS_SECRET_ACCESS_KEY="+c.o.s3.SecretKey,
		"AWS_REGION="+c.o.s3.Region, "AWS_EC2_METADATA_DISABLED=true")
	if c.o.RequestLog != "" {
		if c.reqLog, err = os.Create(c.o.RequestLog); err != nil {
			return err
		}
	}
	c.logf("S3 server %s behind the proxy %s (delay %v)", c.o.s3.Endpoint, c.proxy.URL, time.Duration(c.o.Delay))
	return nil
}
