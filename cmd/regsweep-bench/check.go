package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", "check --root DIR --expect FILE --mode keep_untagged|delete_untagged",
		`Compares the blobs (data files), revision links and layer links present in
DIR/docker/registry/v2 with what the --expect file (from 'generate --expect') says must
survive a collection in --mode. "missing" lines are data loss, "extra" lines are garbage
left. Exits 1 when anything differs.`, stderr)
	root := fs.String("root", "", "registry root `DIR`")
	expect := fs.String("expect", "", "expectation `FILE` written by generate --expect")
	mode := fs.String("mode", "", "collection mode: keep_untagged or delete_untagged")
	layers := fs.Bool("layers", true, "also compare _layers links")
	limit := fs.Int("max", 50, "print at most this many differences of each kind (0: all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError(fs, "unexpected argument %q", fs.Arg(0))
	case *root == "":
		return usageError(fs, "--root is required")
	case *expect == "":
		return usageError(fs, "--expect is required")
	case !slices.Contains(gen.Modes, *mode):
		return usageError(fs, "--mode must be one of %v", gen.Modes)
	}
	exp, err := gen.ReadExpectation(*expect)
	if err != nil {
		return err
	}
	disk, err := gen.Scan(ctx, *root)
	if err != nil {
		return err
	}
	diffs := gen.Compare(exp.Modes[*mode], disk, *layers)
	if len(diffs) == 0 {
		fmt.Fprintf(stdout, "ok: %s matches %s (%d blobs, %d repositories)\n", *root, *mode, len(disk.Blobs), len(disk.Repos))
		return nil
	}
	counts := map[string]int{}
	var order []string
	for _, d := range diffs {
		key := "extra " + d.What
		if d.Missing {
			key = "missing " + d.What
		}
		if counts[key] == 0 {
			order = append(order, key)
		}
		counts[key]++
		if *limit == 0 || counts[key] <= *limit {
			fmt.Fprintln(stdout, d)
		}
	}
	fmt.Fprintf(stdout, "%s differs from %s:", *root, *mode)
	for _, k := range order {
		fmt.Fprintf(stdout, " %d %s", counts[k], k)
	}
	fmt.Fprintln(stdout, " (missing = data loss, extra = garbage left)")
	return errDiffer
}
