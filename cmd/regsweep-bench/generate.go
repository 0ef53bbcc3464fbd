package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("generate", "generate --root DIR --blobs N [--seed S] [--repos R] [--expect FILE]",
		`Writes a synthetic registry of about N blobs into DIR/docker/registry/v2, byte for byte
in distribution's filesystem layout: nested repositories; schema2 images, Docker manifest
lists, OCI manifests and indexes (untagged children, attestations), OCI referrers
(signatures, SBOMs, signatures of SBOMs), cosign sha256-<hex>.sig tags; tags re-pointed
many times; untagged manifests; orphan blobs; stale uploads; an empty repository.
Every file is --age old; tags' current links spread over the last 60 days.
The same --seed gives the same registry. DIR/docker/registry/v2 must not exist or be empty.`, stderr)
	root := fs.String("root", "", "registry root `DIR` (the filesystem driver's rootdirectory)")
	blobs := fs.Int("blobs", 0, "generate about `N` blobs")
	seed := fs.Uint64("seed", 1, "seed `S` of the random source: the same seed gives the same registry")
	repos := fs.Int("repos", 0, "`R` repositories with content (default N/250, at least 4)")
	expect := fs.String("expect", "", "write what must survive GC, per mode, as JSON to `FILE`")
	age := fs.Duration("age", gen.DefaultAge, "set every file's modification time `D` before now (uploads: their start)")
	legacy := fs.Bool("legacy", false, "also write schema1 and OCI artifact manifests (distribution v3 cannot read them: upstream-gc then fails)")
	sha512 := fs.Bool("sha512", false, "make a few OCI layers sha512-addressed, stored as distribution stores them (upstream-gc deletes those blobs, then fails)")
	jobs := fs.Int("jobs", 2*runtime.GOMAXPROCS(0), "`J` files written in parallel (more contend in the kernel: ext4 on 2 cores was slower at 16 than at 4)")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError(fs, "unexpected argument %q", fs.Arg(0))
	case *root == "":
		return usageError(fs, "--root is required")
	case *blobs <= 0:
		return usageError(fs, "--blobs must be positive")
	case *age < 0:
		return usageError(fs, "--age must not be negative")
	case *jobs <= 0:
		return usageError(fs, "--jobs must be positive")
	}

	start := time.Now()
	opts := gen.Options{Blobs: *blobs, Seed: *seed, Repos: *repos, Legacy: *legacy, SHA512: *sha512, Now: start, Age: *age}
	if *age == 0 {
		opts.Age = time.Nanosecond // "now": Build treats 0 as the default
	}
	reg := gen.Build(opts)
	st, err := reg.Write(ctx, *root, *jobs)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	elapsed := time.Since(start)
	t := reg.Totals()
	if *expect != "" {
		if err := reg.Expect(opts).WriteFile(*expect); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	fmt.Fprintf(stdout, "generated %d blobs, %d repos, %d tags, %d manifests (%d untagged), %d files, %d bytes in %.2fs\n",
		t.Blobs, t.Repos, t.Tags, t.Manifests, t.Untagged, st.Files, st.Bytes, elapsed.Seconds())
	return nil
}
