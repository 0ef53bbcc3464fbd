package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/regsweep/regsweep/shard"
)

// indexEnv is the variable Kubernetes sets in each pod of an Indexed Job:
// the pod's completion index, 0 to completions-1.
const indexEnv = "JOB_COMPLETION_INDEX"

// shardFlags are the flags that place one shard in a sharded run.
type shardFlags struct {
	run    string
	shards int
	index  int
	// removeRun: report removes the run folder once the run is complete.
	removeRun bool
}

// register adds --run, and with withShards --shards and --index.
func (f *shardFlags) register(fl *pflag.FlagSet, withShards bool, what string) {
	fl.StringVar(&f.run, "run", "", "the sharded run's `ID` (letters, digits, '.', '_', '-'; the same for every shard of the run)")
	if withShards {
		fl.IntVar(&f.shards, "shards", 0, "how many "+what+" shards the run has")
		fl.IntVar(&f.index, "index", -1, "this shard's index, 0 to --shards - 1 (default: $"+indexEnv+", set by a Kubernetes Indexed Job)")
	}
}

// check validates the flags: the run ID, and with withShards the shard
// count and this shard's index, taken from $JOB_COMPLETION_INDEX unless
// --index is given. A missing or out-of-range index is a bad command line.
func (f *shardFlags) check(cmd *cobra.Command, withShards bool, e env) error {
	if f.run == "" {
		return usageError{fmt.Errorf("--run ID is required")}
	}
	if err := shard.ValidRunID(f.run); err != nil {
		return usageError{fmt.Errorf("--run: %w", err)}
	}
	if !withShards {
		return nil
	}
	if f.shards < 1 || f.shards > shard.MaxShards {
		return usageError{fmt.Errorf("--shards %d: want 1 to %d", f.shards, shard.MaxShards)}
	}
	if !cmd.Flags().Changed("index") {
		v, ok := e.lookupEnv(indexEnv)
		if !ok || v == "" {
			return usageError{fmt.Errorf("no shard index: give --index or set $%s (Kubernetes sets it in each pod of an Indexed Job)", indexEnv)}
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return usageError{fmt.Errorf("$%s %q: not a number", indexEnv, v)}
		}
		f.index = n
		if f.index < 0 || f.index >= f.shards {
			return usageError{fmt.Errorf("$%s %d: out of range for --shards %d (0 to %d)", indexEnv, f.index, f.shards, f.shards-1)}
		}
		return nil
	}
	if f.index < 0 || f.index >= f.shards {
		return usageError{fmt.Errorf("--index %d: out of range for --shards %d (0 to %d)", f.index, f.shards, f.shards-1)}
	}
	return nil
}

func newShardCommand(e env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shard",
		Short: "Run one garbage collection as N mark shards, then K sweep shards, then a report (Kubernetes Indexed Jobs)",
		Long: `A sharded run spreads one gc over N mark shards and K sweep shards that
share nothing but the storage: each mark shard decides for the repositories
whose name hashes to its index (tags, untagged manifests, what they keep) and
writes what it keeps into the run folder (regsweep/runs/ID/ at the storage
root, outside docker/); once every mark shard has committed, each sweep
shard deletes the unreferenced blobs of its range of blob prefixes. report
merges the shards' parts into gc's reports. --index defaults to
$JOB_COMPLETION_INDEX, so that one pod spec serves every index of a
Kubernetes Indexed Job.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(e.stderr)
			_ = cmd.Usage()
			return usageError{fmt.Errorf("shard: give mark, sweep or report")}
		},
	}
	cmd.AddCommand(newShardMarkCommand(e), newShardSweepCommand(e), newShardReportCommand(e))
	return cmd
}

func newShardMarkCommand(e env) *cobra.Command {
	var (
		sf shardFlags
		pf planFlags
		rf runFlags
	)
	cmd := &cobra.Command{
		Use:   "mark --run ID --shards N [--index I] [flags] LOCATION | --config config.yml",
		Short: "Mark shard I of N: apply the policy to its repositories, delete their tags and untagged manifests, record what they keep",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sf.check(cmd, true, e); err != nil {
				return err
			}
			return runShardMark(cmd, args, &sf, &pf, &rf, e)
		},
	}
	fl := cmd.Flags()
	sf.register(fl, true, "mark")
	pf.register(fl)
	rf.register(fl, withJobs|withLock)
	return cmd
}

func newShardSweepCommand(e env) *cobra.Command {
	var (
		sf shardFlags
		rf runFlags
	)
	cmd := &cobra.Command{
		Use:   "sweep --run ID --shards K [--index J] [flags] LOCATION | --config config.yml",
		Short: "Sweep shard J of K: once every mark shard committed, delete the unreferenced blobs of its prefix range",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sf.check(cmd, true, e); err != nil {
				return err
			}
			return runShardSweep(cmd, args, &sf, &rf, e)
		},
	}
	fl := cmd.Flags()
	sf.register(fl, true, "sweep")
	// The lock is the run's, taken by its mark shards: nothing to break.
	rf.register(fl, withJobs|withStopped)
	return cmd
}

func newShardReportCommand(e env) *cobra.Command {
	var (
		sf shardFlags
		rf runFlags
	)
	cmd := &cobra.Command{
		Use:   "report --run ID [--report FILE …] [--remove-run] LOCATION | --config config.yml",
		Short: "Merge the parts of a sharded run into gc's reports, naming missing shards; release the run's lock once it is complete",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sf.check(cmd, false, e); err != nil {
				return err
			}
			return runShardReport(cmd, args, &sf, &rf, e)
		},
	}
	fl := cmd.Flags()
	sf.register(fl, false, "")
	fl.BoolVar(&sf.removeRun, "remove-run", false, "once every shard is done and the reports are written, remove the run folder (regsweep/runs/ID/); an incomplete run's stays")
	rf.register(fl, withReports)
	return cmd
}

// lookupEnv is os.LookupEnv unless the test set one.
func (e env) lookupEnv(key string) (string, bool) {
	if e.getenv != nil {
		return e.getenv(key)
	}
	return os.LookupEnv(key)
}
