package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/sirupsen/logrus"

	// The s3 driver ("s3aws") registers itself with the factory.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"

	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

func runUpstreamGC(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("upstream-gc", "upstream-gc [--delete-untagged] [--dry-run] [--s3-* flags] ROOT | s3://BUCKET[/ROOTDIRECTORY] | --config config.yml",
		`Runs distribution v3.1.2's storage.MarkAndSweep, as 'registry garbage-collect' does, over
the filesystem registry whose rootdirectory is ROOT, over a registry in an S3 bucket
through distribution's s3-aws driver, or over the storage a registry's config.yml names,
and prints the wall time. Without --dry-run it deletes.

For s3://, the driver gets bucket, rootdirectory, region, regionendpoint (--s3-endpoint),
forcepathstyle, secure (false for an http:// endpoint), v4auth and the keys of
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (without them, the driver's default chain).`, stderr)
	deleteUntagged := fs.Bool("delete-untagged", false, "delete manifests that no tag currently points at (GCOpts.RemoveUntagged)")
	dryRun := fs.Bool("dry-run", false, "mark and list only, delete nothing (GCOpts.DryRun)")
	verbose := fs.Bool("verbose", false, "let upstream print what it marks and deletes (GCOpts.Quiet=false) and log each deletion")
	config := fs.String("config", "", "run over the storage section of the registry's `config.yml` (REGISTRY_STORAGE_* overrides applied)")
	endpoint := fs.String("s3-endpoint", "", "S3 endpoint `URL` (the driver's regionendpoint)")
	region := fs.String("s3-region", "us-east-1", "S3 `region`")
	pathStyle := fs.Bool("s3-force-path-style", false, "address the bucket in the path, not the host name (forcepathstyle)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var driver string
	var params map[string]any
	switch {
	case *config != "" && fs.NArg() > 0:
		return usageError(fs, "give a ROOT or --config, not both")
	case *config != "":
		f, err := os.Open(*config)
		if err != nil {
			return fmt.Errorf("upstream-gc: %w", err)
		}
		cfg, err := configuration.Parse(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("upstream-gc: parse %s: %w", *config, err)
		}
		driver, params = cfg.Storage.Type(), cfg.Storage.Parameters()
	case fs.NArg() != 1:
		return usageError(fs, "want exactly one ROOT, got %d arguments", fs.NArg())
	case strings.HasPrefix(fs.Arg(0), "s3://"):
		bucket, root, _ := strings.Cut(strings.TrimPrefix(fs.Arg(0), "s3://"), "/")
		if bucket == "" {
			return usageError(fs, "%s: no bucket", fs.Arg(0))
		}
		driver, params = "s3aws", s3DriverParameters(bucket, root, *endpoint, *region, *pathStyle)
	default:
		driver, params = "filesystem", map[string]any{"rootdirectory": fs.Arg(0)}
	}
	if !*verbose {
		// garbage-collect logs each deletion at info level through logrus.
		logrus.SetLevel(logrus.WarnLevel)
	}
	start := time.Now()
	err := gen.UpstreamGCDriver(ctx, driver, params, storage.GCOpts{DryRun: *dryRun, RemoveUntagged: *deleteUntagged, Quiet: !*verbose})
	elapsed := time.Since(start)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "upstream-gc delete-untagged=%t dry-run=%t: %.2fs\n", *deleteUntagged, *dryRun, elapsed.Seconds())
	return nil
}

// s3DriverParameters are the s3-aws driver's parameters for a registry
// under root in bucket, as storage/storagetest configures the driver for
// the S3 server of the tests.
func s3DriverParameters(bucket, root, endpoint, region string, pathStyle bool) map[string]any {
	p := map[string]any{
		"bucket":         bucket,
		"region":         region,
		"forcepathstyle": pathStyle,
		"rootdirectory":  root,
		"secure":         !strings.HasPrefix(endpoint, "http://"),
		"v4auth":         true,
	}
	if endpoint != "" {
		p["regionendpoint"] = endpoint
	}
	if id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		p["accesskey"], p["secretkey"] = id, secret
	}
	return p
}
