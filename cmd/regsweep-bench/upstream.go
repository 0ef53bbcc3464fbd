package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/sirupsen/logrus"

	"github.com/regsweep/regsweep/cmd/regsweep-bench/gen"
)

func runUpstreamGC(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("upstream-gc", "upstream-gc [--delete-untagged] [--dry-run] ROOT",
		`Runs distribution v3.1.2's storage.MarkAndSweep over the filesystem registry whose
rootdirectory is ROOT, as 'registry garbage-collect' does, and prints the wall time.
Without --dry-run it deletes.`, stderr)
	deleteUntagged := fs.Bool("delete-untagged", false, "delete manifests that no tag currently points at (GCOpts.RemoveUntagged)")
	dryRun := fs.Bool("dry-run", false, "mark and list only, delete nothing (GCOpts.DryRun)")
	verbose := fs.Bool("verbose", false, "let upstream print what it marks and deletes (GCOpts.Quiet=false) and log each deletion")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError(fs, "want exactly one ROOT, got %d arguments", fs.NArg())
	}
	root := fs.Arg(0)
	if !*verbose {
		// garbage-collect logs each deletion at info level through logrus.
		logrus.SetLevel(logrus.WarnLevel)
	}
	start := time.Now()
	err := gen.UpstreamGC(ctx, root, storage.GCOpts{DryRun: *dryRun, RemoveUntagged: *deleteUntagged, Quiet: !*verbose})
	elapsed := time.Since(start)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "upstream-gc delete-untagged=%t dry-run=%t: %.2fs\n", *deleteUntagged, *dryRun, elapsed.Seconds())
	return nil
}
