// Command regsweep-bench generates synthetic CNCF Distribution registries,
// runs distribution's own garbage collector over them as a baseline, and
// checks what a collector left against what must survive.
//
// Usage:
//
//	regsweep-bench generate --root DIR --blobs N [--seed S] [--repos R] [--expect FILE]
//	regsweep-bench upstream-gc [--delete-untagged] [--dry-run] ROOT
//	regsweep-bench check --root DIR --expect FILE --mode keep_untagged|delete_untagged
//	regsweep-bench compare --blobs N [--rounds R] [--delete-untagged] [--dry-run] [--backend fs|s3] [--delay D] ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// errUsage marks a command line error: usage has been printed, exit 2.
var errUsage = errors.New("usage")

// errDiffer marks a check that found differences: exit 1 without more text.
var errDiffer = errors.New("registry differs from expectation")

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"generate", "write a synthetic registry (and what must survive GC) into DIR", runGenerate},
	{"upstream-gc", "run distribution v3.1.2's garbage collector over ROOT (or s3://BUCKET/ROOT) and time it", runUpstreamGC},
	{"check", "compare the blobs, revisions and layer links in DIR with an --expect file", runCheck},
	{"compare", "run upstream's GC and regsweep on copies of one generated registry and tabulate time, CPU, memory, requests", runCompare},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: regsweep-bench <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'regsweep-bench <command> -h' for a command's flags.\n")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "regsweep-bench: unknown command %q\n\n", args[0])
	usage(stderr)
	return errUsage
}

// exitCode maps an error to the process exit status: 0 ok, 1 failure or
// differences, 2 usage, 130 interrupted.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "regsweep-bench: interrupted")
		return 130
	case errors.Is(err, errDiffer):
		return 1
	default:
		fmt.Fprintf(stderr, "regsweep-bench: %v\n", err)
		return 1
	}
}

// newFlagSet returns a FlagSet whose usage prints synopsis, description and flags.
func newFlagSet(name, synopsis, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: regsweep-bench %s\n\n%s\n\nFlags:\n", synopsis, description)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, turning a parse error into errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// usageError prints msg and the flag set's usage, and returns errUsage.
func usageError(fs *flag.FlagSet, format string, a ...any) error {
	fmt.Fprintf(fs.Output(), "regsweep-bench %s: %s\n\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return errUsage
}
