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
	return loc, l.applyS3(&loc)
}

// applyS3 sets the S3 flags on loc; they are refused for a folder.
func (l *locationFlags) applyS3(loc *storage.Location) error {
	if loc.Kind != storage.KindS3 {
		if l.s3Given() {
			return usageError{fmt.Errorf("--s3-* flags given for the folder %s", loc.Dir)}
		}
		return nil
	}
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
	return nil
}

// s3Given reports whether an S3 flag that changes where requests go is set.
func (l *locationFlags) s3Given() bool { return l.endpoint != "" || l.region != "" || l.pathStyle }

// resolveRecorded finds where a plan or an archive that records rec is to
// act. Without LOCATION or --config it is rec itself, read from the file and
// not from the working directory: the absolute folder, or the bucket at the
// recorded endpoint, region and addressing (--s3-* flags, when given,
// override them, which names another location explicitly). A LOCATION or
// --config names it explicitly; an s3:// LOCATION given without --s3-* flags
// goes through the recorded endpoint, region and addressing, never through
// AWS's default endpoint when the file names another. recErr, when set, says why
// the file's record cannot be used: then only an explicit location does.
func (l *locationFlags) resolveRecorded(args []string, rec storage.Place, recErr error) (loc storage.Location, explicit bool, err error) {
	if len(args) == 0 && l.config == "" {
		if recErr != nil {
			return loc, false, usageError{fmt.Errorf("%w: name the LOCATION (or --config) on the command line", recErr)}
		}
		loc = rec.Location()
		return loc, l.s3Given(), l.applyS3(&loc)
	}
	if loc, err = l.resolve(args); err != nil {
		return loc, true, err
	}
	if recErr == nil && l.config == "" && loc.Kind == storage.KindS3 && rec.Kind == storage.KindS3 {
		if l.endpoint == "" {
			loc.S3.Endpoint = rec.Endpoint
		}
		if l.region == "" {
			loc.S3.Region = rec.Region
		}
		if !l.pathStyle {
			loc.S3.ForcePathStyle = rec.PathStyle
		}
	}
	return loc, true, nil
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

// appliesTo is where apply acts on the plan file name made at rec: the
// recorded place, or a LOCATION or --config naming that same storage.
// Anything else is refused: the plan's keys come from that storage's walk.
func appliesTo(l *locationFlags, name string, args []string, rec storage.Place) (storage.Location, error) {
	loc, _, err := l.resolveRecorded(args, rec, nil)
	if err != nil {
		return loc, err
	}
	place, err := loc.Place()
	if err != nil {
		return loc, err
	}
	if !place.Same(rec) {
		return loc, usageError{fmt.Errorf("plan %s is for %s, not %s: apply acts only where its plan was made", name, rec, place)}
	}
	return loc, nil
}
