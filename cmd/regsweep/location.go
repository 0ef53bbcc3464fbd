package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
)

// locationFlags are the flags every subcommand takes to find the storage:
// a LOCATION argument (a folder or s3://BUCKET[/ROOT]) or the registry's
// own config file, and S3 client settings.
type locationFlags struct {
	config    string
	endpoint  string
	region    string
	pathStyle bool
	rps       float64
}

func (l *locationFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&l.config, "config", "", "read the storage location from the registry's `config.yml` (its storage: section, REGISTRY_STORAGE_* overrides applied)")
	fl.StringVar(&l.endpoint, "s3-endpoint", "", "S3 endpoint `URL` (an S3-compatible server)")
	fl.StringVar(&l.region, "s3-region", "", "S3 region (default: from the AWS configuration)")
	fl.BoolVar(&l.pathStyle, "s3-force-path-style", false, "address the bucket in the path, not the host name")
	fl.Float64Var(&l.rps, "s3-requests-per-second", 0, "limit S3 requests (0: no limit), for throttled buckets")
}

// resolve turns the arguments and flags into a Location.
func (l *locationFlags) resolve(args []string) (storage.Location, error) {
	var loc storage.Location
	var err error
	switch {
	case l.config != "" && len(args) > 0:
		return loc, usageError{fmt.Errorf("give a LOCATION or --config, not both")}
	case l.config != "":
		loc, err = storage.LocationFromConfig(l.config)
	case len(args) == 1:
		loc, err = storage.ParseLocation(args[0])
	default:
		return loc, usageError{fmt.Errorf("want one LOCATION (a folder or s3://BUCKET[/ROOT]) or --config FILE, got %s", report.Count(len(args), "argument"))}
	}
	if err != nil {
		return loc, usageError{err}
	}
	if loc.Kind == storage.KindS3 {
		if l.endpoint != "" {
			loc.S3.Endpoint = l.endpoint
		}
		if l.region != "" {
			loc.S3.Region = l.region
		}
		if l.pathStyle {
			loc.S3.ForcePathStyle = true
		}
		loc.S3.RequestsPerSecond = l.rps
	} else if l.endpoint != "" || l.region != "" || l.pathStyle {
		return loc, usageError{fmt.Errorf("--s3-* flags given for the folder %s", loc.Dir)}
	}
	return loc, nil
}

// open opens the store of loc, wrapped by wrap if set; the returned func
// releases it.
func open(ctx context.Context, loc storage.Location, wrap func(storage.Location, storage.Store) storage.Store) (storage.Store, func(), error) {
	s, err := storage.Open(ctx, loc)
	if err != nil {
		return nil, nil, err
	}
	release := func() {
		if c, ok := s.(io.Closer); ok {
			c.Close()
		}
	}
	if wrap != nil {
		return wrap(loc, s), release, nil
	}
	return s, release, nil
}
