// Command regsweep garbage-collects the storage of a CNCF Distribution
// ("docker registry v2") registry offline.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/storage"
)

// Exit statuses.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitIncomplete  = 3
	exitFindings    = 4 // audit: broken images or digest mismatches
	exitInterrupted = 130
)

// errIncomplete says a run finished but left planned work undone; the report
// says what and why.
var errIncomplete = errors.New("run incomplete")

func main() {
	// The inventory is most of the heap and lives the whole run: until the
	// walk tells how large the registry is (memoryBudget), collect when the
	// heap has grown by a fifth, not doubled. GOGC in the environment
	// overrides it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(20)
	}
	// A closed stdout or stderr (regsweep gc … | head) must not kill the
	// run: Go's runtime dies of SIGPIPE on a write to a closed fd 1 or 2
	// unless the signal is ignored; the write then fails with EPIPE, and
	// stream (see stop.go) drops the rest.
	signal.Ignore(syscall.SIGPIPE)
	os.Exit(mainRun(os.Args[1:], os.Stdout, os.Stderr))
}

// Memory budget of a run (memoryBudget): budgetPerBlob bytes a blob the
// walk estimates, at least budgetFloor.
const (
	budgetPerBlob = 220
	budgetFloor   = 128 << 20
)

// memoryBudget is called once by a walk with its estimate of the blobs
// stored (walker.Options.BlobsHint). The runtime then collects at the
// default pace (the heap doubling) within a memory limit of budgetPerBlob
// bytes a blob, at least budgetFloor: a registry of a few hundred thousand
// blobs runs without collecting much, a large one stays within its budget
// (at a million blobs, 2.5 million objects, a limit of 210 MiB: ~92 B an
// object with the binary). A limit is a target, not a cap: a heap that
// outgrows it (a registry with far more links or manifests a blob than
// usual) is collected more often, at most half the CPU, never refused.
// Only the regsweep process sets it (tests run commands in-process);
// GOGC or GOMEMLIMIT in the environment overrides it.
func memoryBudget(blobs int) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(max(budgetFloor, budgetPerBlob*int64(blobs)))
	debug.SetGCPercent(100)
}

// env is what a command line runs with besides its arguments.
type env struct {
	stdout, stderr io.Writer
	// wrapStore, when set, wraps every store a command opens, given its
	// location: the fault-injection tests put storagetest.Faulty there.
	wrapStore func(storage.Location, storage.Store) storage.Store
	// holds, when set, is where a run registers the lock it takes, for a
	// forced exit to release (see mainRun).
	holds *holds
	// getenv, when set, replaces os.LookupEnv (tests set
	// $JOB_COMPLETION_INDEX this way).
	getenv func(string) (string, bool)
	// now, when set, is the clock a run's start time is read from: tests
	// run two commands as of one instant (an audit and the gc it
	// estimates), so that no object's age falls between them.
	now func() time.Time
	// memoryBudget, when set, is given a walk's estimate of the blobs
	// stored (the regsweep process sets it: see memoryBudget).
	memoryBudget func(blobs int)
}

// startTime is when a run starts: the one reading of the clock a run's
// decisions depend on.
func (e env) startTime() time.Time {
	if e.now != nil {
		return e.now()
	}
	return time.Now()
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, env{stdout: stdout, stderr: stderr})
}

// runEnv is run in env e.
func runEnv(ctx context.Context, args []string, e env) int {
	stderr := e.stderr
	root := newRoot(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		fmt.Fprintln(stderr, "regsweep: interrupted")
		return exitInterrupted
	case errors.Is(err, errIncomplete):
		fmt.Fprintf(stderr, "regsweep: %v\n", err)
		return exitIncomplete
	case errors.Is(err, errFindings):
		fmt.Fprintf(stderr, "regsweep: %v\n", err)
		return exitFindings
	case isUsage(err):
		fmt.Fprintf(stderr, "regsweep: %v\n", err)
		return exitUsage
	case errors.Is(err, storage.ErrNoS3Credentials):
		fmt.Fprintf(stderr, "regsweep: %v: %s\n", err, s3CredentialsHelp)
		return exitError
	default:
		fmt.Fprintf(stderr, "regsweep: %v\n", err)
		return exitError
	}
}

// s3CredentialsHelp names the ways to give S3 credentials.
const s3CredentialsHelp = "give them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, in a profile of the shared AWS config (AWS_PROFILE, ~/.aws/credentials), or, with --config, in the registry config's storage.s3 accesskey and secretkey"

// newRoot is the command tree, writing to e's streams.
func newRoot(e env) *cobra.Command {
	root := &cobra.Command{
		Use:           "regsweep",
		Short:         "Offline garbage collection for registry storage (CNCF Distribution layout)",
		Version:       version(debug.ReadBuildInfo()),
		SilenceUsage:  true,
		SilenceErrors: true,
		// Without a command: the usage, and the status of a bad command line.
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(e.stderr)
			_ = cmd.Usage()
			return usageError{errors.New("no command given")}
		},
		SuggestionsMinimumDistance: 2,
	}
	root.SetVersionTemplate("regsweep {{.Version}}\n")
	root.Flags().Bool("version", false, "print regsweep's version and commit")
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.AddCommand(newGCCommand(e), newPlanCommand(e), newApplyCommand(e), newRestoreCommand(e), newTrashCommand(e), newAuditCommand(e), newShardCommand(e), newVersionCommand(root.Version))
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(_ *cobra.Command, args []string) error {
			c, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return usageError{fmt.Errorf("help: no command %q (see regsweep --help)", strings.Join(args, " "))}
			}
			return c.Help()
		},
	})
	usageErrors(root)
	return root
}

// usageError marks errors in the command line.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// usageErrors makes every error of the command line itself a usageError, in
// root and all its subcommands: a flag cobra cannot parse, a wrong number of
// arguments, an unknown command.
func usageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	// Root runs only when no command matched: an argument is an unknown
	// command (cobra finds commands before it validates arguments).
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			msg := fmt.Sprintf("unknown command %q (see %s --help)", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean %s?", strings.Join(s, " or "))
			}
			return usageError{errors.New(msg)}
		}
		return nil
	}
	var wrap func(*cobra.Command)
	wrap = func(c *cobra.Command) {
		if c != root && c.Args != nil {
			args := c.Args
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return usageError{fmt.Errorf("%s: %w", strings.TrimPrefix(cmd.CommandPath(), root.Name()+" "), err)}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			wrap(sub)
		}
	}
	wrap(root)
}

// newVersionCommand prints what --version prints.
func newVersionCommand(v string) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print regsweep's version and the commit it was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "regsweep %s\n", v)
			return err
		},
	}
}

// version describes the build: the module version ("devel" when built from
// a checkout without one) and the VCS commit, its time and whether the tree
// was modified ("unknown" when the build recorded none, as with -buildvcs=false
// or a build outside a repository).
func version(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "devel (commit unknown)"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return v + " (commit unknown)"
	}
	out := v + " (commit " + rev
	if at != "" {
		out += ", " + at
	}
	if modified == "true" {
		out += ", modified"
	}
	return out + ")"
}
