package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/regsweep/regsweep/storage/storagetest"
)

// commands lists the path of every command a user can run, root first
// ("help" left out: it takes any words as a topic).
func commands(t *testing.T) [][]string {
	t.Helper()
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.Name() == "help" {
			return
		}
		out = append(out, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk(newRoot(env{stdout: io.Discard, stderr: io.Discard}), nil)
	if len(out) < 8 {
		t.Fatalf("found %d commands: %v", len(out), out)
	}
	return out
}

// TestBadCommandLineExitsTwo runs every command with each kind of bad
// command line: an unknown flag, each flag that takes a value without one,
// each numeric flag with a word, too many arguments, an unknown command.
// Every one exits 2 (usage), says why on stderr, and prints nothing on
// stdout.
func TestBadCommandLineExitsTwo(t *testing.T) {
	t.Parallel()
	var lines [][]string
	for _, path := range commands(t) {
		lines = append(lines, append(append([]string(nil), path...), "--no-such-flag"))
		lines = append(lines, append(append([]string(nil), path...), "-Z"))
		if len(path) > 0 {
			lines = append(lines, append(append([]string(nil), path...), "a", "b", "c"))
		}
		root := newRoot(env{stdout: io.Discard, stderr: io.Discard})
		c, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			switch f.Value.Type() {
			case "bool":
				lines = append(lines, append(append([]string(nil), path...), "--"+f.Name+"=maybe"))
				return
			case "int", "duration", "float64":
				lines = append(lines, append(append([]string(nil), path...), "--"+f.Name+"=many"))
			}
			// The value missing: the flag last on the line.
			lines = append(lines, append(append([]string(nil), path...), "--"+f.Name))
		})
	}
	lines = append(lines, nil, []string{"gcc"}, []string{"frobnicate", "x"}, []string{"plan", "show"}, []string{"help", "gcc"}, []string{"help", "plan", "shw"})
	for _, args := range lines {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		if code != exitUsage || !strings.HasPrefix(stderr.String(), "regsweep: ") && len(args) > 0 {
			t.Errorf("regsweep %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, exitUsage, stdout.String(), stderr.String())
		}
		if stdout.Len() > 0 {
			t.Errorf("regsweep %s: wrote to stdout: %s", strings.Join(args, " "), stdout.String())
		}
	}
	t.Logf("%d command lines", len(lines))
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != exitOK {
			t.Fatalf("regsweep %v: exit %d: %s", args, code, stderr.String())
		}
		bi, ok := debug.ReadBuildInfo()
		if want := "regsweep " + version(bi, ok) + "\n"; stdout.String() != want {
			t.Errorf("regsweep %v: %q, want %q", args, stdout.String(), want)
		}
	}
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, c := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{nil, "devel (commit unknown)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel (commit unknown)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3 (commit unknown)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("vcs.revision", "abc123", "vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "true")},
			"devel (commit abc123, 2026-12-01T10:00:00Z, modified)"},
		{&debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261201100000-abc123abc123"}, Settings: vcs("vcs.revision", "abc123", "vcs.modified", "false")},
			"v0.0.0-20261201100000-abc123abc123 (commit abc123)"},
	} {
		if got := version(c.bi, c.bi != nil); got != c.want {
			t.Errorf("version(%+v) = %q, want %q", c.bi, got, c.want)
		}
	}
}

// noAWSCredentials empties every source of the AWS SDK's credential chain,
// the instance metadata service included (disabled, so that nothing is
// sent off this machine).
func noAWSCredentials(t *testing.T) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "", "AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
}

// TestS3WithoutCredentialsSaysHowToGiveThem: every command that opens S3
// says, in one sentence, how credentials are given, and not what the SDK's
// last resort (the instance metadata service) answered.
func TestS3WithoutCredentialsSaysHowToGiveThem(t *testing.T) {
	noAWSCredentials(t)
	s3 := []string{"--s3-endpoint", "http://127.0.0.1:9", "--s3-force-path-style", "s3://bucket/registry"}
	plan := filepath.Join(t.TempDir(), "p.plan")
	for _, args := range [][]string{
		append([]string{"gc", "-q", "--dry-run"}, s3...),
		append([]string{"gc", "-q", "--registry-stopped"}, s3...),
		append([]string{"plan", "-q", "-o", plan}, s3...),
		append([]string{"audit", "-q"}, s3...),
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		msg := stderr.String()
		if code != exitError || !strings.Contains(msg, "no S3 credentials found: give them in AWS_ACCESS_KEY_ID") ||
			!strings.Contains(msg, "accesskey and secretkey") || strings.Contains(msg, "IMDS") || strings.Count(strings.TrimSpace(msg), "\n") > 0 {
			t.Errorf("regsweep %s: exit %d\n%s", strings.Join(args, " "), code, msg)
		}
	}
}

// TestEveryCommandsFlags lists the flags of every command: each one acts
// (a test shows it), none is registered for show. A flag added to a
// command is added here with the test that shows it working.
func TestEveryCommandsFlags(t *testing.T) {
	t.Parallel()
	location := []string{"config", "s3-endpoint", "s3-force-path-style", "s3-region", "s3-requests-per-second"}
	window := []string{"after-window", "after-window-timeout", "keep-trash"}
	planning := []string{"allow-delete-all", "compact", "delete-untagged", "min-age", "policy", "upload-max-age"}
	cat := func(lists ...[]string) []string {
		var out []string
		for _, l := range lists {
			out = append(out, l...)
		}
		slices.Sort(out)
		return out
	}
	want := map[string][]string{
		"":              {"version"},
		"gc":            cat(location, planning, window, []string{"archive", "break-lock", "dry-run", "jobs", "log-format", "quiet", "registry-stopped", "report", "report-format", "verbose", "verify-links"}),
		"plan":          cat(location, planning, []string{"jobs", "log-format", "output", "quiet", "verbose", "verify-links"}),
		"plan show":     {"verbose"},
		"apply":         cat(location, window, []string{"allow-delete-all", "archive", "break-lock", "jobs", "log-format", "max-plan-age", "quiet", "registry-stopped", "report", "report-format", "verbose", "verify-links"}),
		"restore":       cat(location, []string{"break-lock", "log-format", "quiet", "registry-stopped"}),
		"audit":         cat(location, planning, []string{"jobs", "json", "log-format", "markdown", "quiet", "verify-digests"}),
		"version":       nil,
		"shard":         nil,
		"shard mark":    cat(location, planning, []string{"break-lock", "index", "jobs", "log-format", "quiet", "registry-stopped", "run", "shards"}),
		"shard sweep":   cat(location, []string{"index", "jobs", "log-format", "quiet", "registry-stopped", "run", "shards"}),
		"shard report":  cat(location, []string{"log-format", "quiet", "remove-run", "report", "report-format", "run"}),
		"trash":         nil,
		"trash list":    cat(location, []string{"log-format", "quiet"}),
		"trash restore": cat(location, []string{"break-lock", "jobs", "log-format", "quiet", "registry-stopped"}),
		"trash purge":   cat(location, []string{"break-lock", "jobs", "log-format", "quiet"}),
	}
	root := newRoot(env{stdout: io.Discard, stderr: io.Discard})
	for path, flags := range want {
		c, _, err := root.Find(strings.Fields(path))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" {
				got = append(got, f.Name)
			}
		})
		slices.Sort(got)
		if !slices.Equal(got, flags) {
			t.Errorf("regsweep %s: flags %v, want %v (a new flag goes into this list with a test that shows it acts; a flag a command does not act on is not registered)", path, got, flags)
		}
	}
}

// TestMeaninglessFlagCombinationsExitTwo: flags that a run would ignore
// because of another flag are a bad command line, refused before storage
// is read.
func TestMeaninglessFlagCombinationsExitTwo(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "sample")
	storagetest.CopyTree(t, sampleDir, root)
	before := storagetest.Snapshot(t, root)
	archive := filepath.Join(t.TempDir(), "a.tar.zst")
	plan := filepath.Join(t.TempDir(), "p.plan")
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"gc", "--dry-run", "--archive", archive, root}, "--dry-run and --archive"},
		{[]string{"gc", "--dry-run", "--break-lock", root}, "--dry-run and --break-lock"},
		{[]string{"gc", "--dry-run", "--keep-trash", root}, "--dry-run and --keep-trash"},
		{[]string{"gc", "--dry-run", "--after-window", "true", root}, "--dry-run and --after-window"},
		{[]string{"gc", "--dry-run", "-v", root}, "--verbose lists the tag decisions of a policy"},
		{[]string{"gc", "--dry-run", "--compact", "repos,links", "--upload-max-age", "1h", root}, "--upload-max-age"},
		{[]string{"gc", "--compact", "none", "--upload-max-age", "1h", root}, "--upload-max-age"},
		{[]string{"plan", "-o", plan, "--compact", "links", "--upload-max-age", "1h", root}, "--upload-max-age"},
		{[]string{"audit", "--compact", "none", "--upload-max-age", "1h", root}, "--upload-max-age"},
		{[]string{"restore", "--archive", archive, archive, root}, "unknown flag: --archive"},
		{[]string{"restore", "--report", "r.json", archive, root}, "unknown flag: --report"},
		{[]string{"restore", "-v", archive, root}, "unknown shorthand flag: 'v'"},
		{[]string{"plan", "-o", plan, "--report", "r.json", root}, "unknown flag: --report"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), c.says) {
			t.Errorf("regsweep %s: exit %d, want %d saying %q\n%s", strings.Join(c.args, " "), code, exitUsage, c.says, stderr.String())
		}
	}
	for _, f := range []string{archive, plan} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s written by a refused command line: %v", f, err)
		}
	}
	if d := cmp.Diff(before, storagetest.Snapshot(t, root)); d != "" {
		t.Errorf("a refused command line changed the registry:\n%s", d)
	}
}
