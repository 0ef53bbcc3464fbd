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
	"syscall"

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
	// The inventory is most of the heap and lives the whole run: collect at
	// half the growth of the default, trading a little CPU (the run waits on
	// storage anyway) for a peak RSS closer to the live heap.
	debug.SetGCPercent(50)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// env is what a command line runs with besides its arguments.
type env struct {
	stdout, stderr io.Writer
	// wrapStore, when set, wraps every store a command opens, given its
	// location: the fault-injection tests put storagetest.Faulty there.
	wrapStore func(storage.Location, storage.Store) storage.Store
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, env{stdout: stdout, stderr: stderr})
}

// runEnv is run in env e.
func runEnv(ctx context.Context, args []string, e env) int {
	stdout, stderr := e.stdout, e.stderr
	root := &cobra.Command{
		Use:           "regsweep",
		Short:         "Offline garbage collection for registry storage (CNCF Distribution layout)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newGCCommand(e), newPlanCommand(e), newApplyCommand(e), newRestoreCommand(e), newAuditCommand(e))
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
	default:
		fmt.Fprintf(stderr, "regsweep: %v\n", err)
		return exitError
	}
}

// usageError marks errors in the command line.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func isUsage(err error) bool {
	var u usageError
	return errors.As(err, &u)
}
