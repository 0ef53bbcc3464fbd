package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
)

// Location kinds.
const (
	KindFilesystem = "filesystem"
	KindS3         = "s3"
)

// DefaultFilesystemRoot is the filesystem driver's rootdirectory when the
// configuration names none.
const DefaultFilesystemRoot = "/var/lib/registry"

// Location says where a registry's storage is, before it is opened.
type Location struct {
	// Kind is KindFilesystem or KindS3.
	Kind string
	// Dir is the filesystem driver's rootdirectory (KindFilesystem).
	Dir string
	// S3 locates the bucket and tunes the client (KindS3).
	S3 S3Options
	// ReadOnlyMaintenance is storage.maintenance.readonly.enabled of the
	// registry's configuration: the registry refuses pushes, the state in
	// which a GC that deletes is safe to run against a live registry.
	ReadOnlyMaintenance bool
}

// String names the location as ParseLocation reads it.
func (l Location) String() string {
	switch l.Kind {
	case KindS3:
		if root := strings.Trim(l.S3.RootDirectory, "/"); root != "" {
			return "s3://" + l.S3.Bucket + "/" + root
		}
		return "s3://" + l.S3.Bucket
	}
	return l.Dir
}

// ParseLocation reads a location argument: s3://BUCKET[/ROOTDIRECTORY], or a
// filesystem path (the filesystem driver's rootdirectory). Other URL schemes
// are refused.
func ParseLocation(arg string) (Location, error) {
	if arg == "" {
		return Location{}, errors.New("empty storage location")
	}
	if rest, ok := strings.CutPrefix(arg, "s3://"); ok {
		bucket, root, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return Location{}, fmt.Errorf("storage location %q: no bucket (want s3://BUCKET[/ROOTDIRECTORY])", arg)
		}
		return Location{Kind: KindS3, S3: S3Options{Bucket: bucket, RootDirectory: strings.Trim(root, "/")}}, nil
	}
	if scheme, _, ok := strings.Cut(arg, "://"); ok && !strings.ContainsAny(scheme, "/\\") {
		return Location{}, fmt.Errorf("storage location %q: unsupported scheme %q (want s3://BUCKET[/ROOTDIRECTORY] or a folder)", arg, scheme)
	}
	return Location{Kind: KindFilesystem, Dir: filepath.Clean(arg)}, nil
}

// LocationFromConfig reads the storage section of a registry's config.yml
// with distribution's own parser, so that the REGISTRY_STORAGE_* environment
// overrides apply as they do for the registry. It maps the filesystem and
// s3 (s3aws) drivers; any other driver is an error naming it.
func LocationFromConfig(path string) (loc Location, err error) {
	f, err := os.Open(path)
	if err != nil {
		return Location{}, fmt.Errorf("read registry config: %w", err)
	}
	defer f.Close()
	defer func() {
		// Storage.Type panics on a config (or environment) naming two drivers.
		if p := recover(); p != nil {
			loc, err = Location{}, fmt.Errorf("parse registry config %s: %v", path, p)
		}
	}()
	cfg, err := configuration.Parse(f)
	if err != nil {
		return Location{}, fmt.Errorf("parse registry config %s: %w", path, err)
	}
	return locationFromStorage(path, cfg.Storage)
}

func locationFromStorage(path string, st configuration.Storage) (Location, error) {
	ro, err := readOnlyEnabled(st)
	if err != nil {
		return Location{}, fmt.Errorf("registry config %s: %w", path, err)
	}
	params := st.Parameters()
	str := func(k string) string {
		if v, ok := params[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	switch driver := st.Type(); driver {
	case "filesystem":
		dir := str("rootdirectory")
		if dir == "" {
			dir = DefaultFilesystemRoot
		}
		return Location{Kind: KindFilesystem, Dir: dir, ReadOnlyMaintenance: ro}, nil
	case "s3", "s3aws":
		o := S3Options{
			Bucket:        str("bucket"),
			RootDirectory: strings.Trim(str("rootdirectory"), "/"),
			Region:        str("region"),
			Endpoint:      str("regionendpoint"),
			AccessKey:     str("accesskey"),
			SecretKey:     str("secretkey"),
		}
		if o.Bucket == "" {
			return Location{}, fmt.Errorf("registry config %s: storage.%s has no bucket", path, driver)
		}
		if o.ForcePathStyle, err = boolParam(params, "forcepathstyle", false); err != nil {
			return Location{}, fmt.Errorf("registry config %s: storage.%s: %w", path, driver, err)
		}
		secure, err := boolParam(params, "secure", true)
		if err != nil {
			return Location{}, fmt.Errorf("registry config %s: storage.%s: %w", path, driver, err)
		}
		if o.Endpoint != "" && !strings.Contains(o.Endpoint, "://") {
			// The v1 SDK of distribution's driver adds the scheme from
			// "secure"; the v2 SDK wants a URL.
			if secure {
				o.Endpoint = "https://" + o.Endpoint
			} else {
				o.Endpoint = "http://" + o.Endpoint
			}
		}
		return Location{Kind: KindS3, S3: o, ReadOnlyMaintenance: ro}, nil
	case "":
		return Location{}, fmt.Errorf("registry config %s: no storage driver", path)
	default:
		return Location{}, fmt.Errorf("registry config %s: storage driver %q is not supported: regsweep reads filesystem and s3 storage", path, driver)
	}
}

// readOnlyEnabled reads storage.maintenance.readonly.enabled, as the
// registry does, accepting the string forms the environment overrides give.
func readOnlyEnabled(st configuration.Storage) (bool, error) {
	m, ok := st["maintenance"]
	if !ok {
		return false, nil
	}
	var enabled any
	switch ro := m["readonly"].(type) {
	case nil:
		return false, nil
	case map[any]any:
		enabled = ro["enabled"]
	case map[string]any:
		enabled = ro["enabled"]
	default:
		return false, fmt.Errorf("storage.maintenance.readonly must hold keys, not %T", ro)
	}
	b, err := asBool(enabled, false)
	if err != nil {
		return false, fmt.Errorf("storage.maintenance.readonly.enabled: %w", err)
	}
	return b, nil
}

// boolParam reads a driver parameter that is a bool or a string holding one,
// as distribution's getParameterAsBool does.
func boolParam(params configuration.Parameters, key string, def bool) (bool, error) {
	b, err := asBool(params[key], def)
	if err != nil {
		return false, fmt.Errorf("%s: %w", key, err)
	}
	return b, nil
}

func asBool(v any, def bool) (bool, error) {
	switch v := v.(type) {
	case nil:
		return def, nil
	case bool:
		return v, nil
	case string:
		if v == "" {
			return def, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("%q is not a boolean", v)
		}
		return b, nil
	}
	return false, fmt.Errorf("%v (%T) is not a boolean", v, v)
}

// Open opens the store a Location names: an *FS or an *S3. Flags such as an
// endpoint, a region or path style may be set on loc before.
func Open(ctx context.Context, loc Location) (Store, error) {
	switch loc.Kind {
	case KindFilesystem:
		if loc.Dir == "" {
			return nil, errors.New("open store: no folder given")
		}
		return OpenFS(loc.Dir)
	case KindS3:
		return OpenS3(ctx, loc.S3)
	}
	return nil, fmt.Errorf("open store: unknown kind %q (want %s or %s)", loc.Kind, KindFilesystem, KindS3)
}

// Place is where a plan or an archive was made, as the file records it: a
// filesystem folder as an absolute, cleaned path (a relative one would name
// another folder from another working directory), or an S3 bucket with its
// root, endpoint, region and addressing (without the endpoint, a client
// would go to AWS). Credentials and client tuning are not part of it.
type Place struct {
	Kind      string `json:"kind"`
	Dir       string `json:"dir,omitempty"`
	Bucket    string `json:"bucket,omitempty"`
	Root      string `json:"root,omitempty"`
	Endpoint  string `json:"endpoint,omitempty"`
	Region    string `json:"region,omitempty"`
	PathStyle bool   `json:"path_style,omitempty"`
}

// Place records where l is. A filesystem folder is made absolute against
// the working directory and cleaned.
func (l Location) Place() (Place, error) {
	switch l.Kind {
	case KindFilesystem:
		dir, err := filepath.Abs(l.Dir)
		if err != nil {
			return Place{}, fmt.Errorf("location %s: %w", l.Dir, err)
		}
		return Place{Kind: KindFilesystem, Dir: dir}, nil
	case KindS3:
		o := l.S3
		return Place{Kind: KindS3, Bucket: o.Bucket, Root: strings.Trim(o.RootDirectory, "/"), Endpoint: o.Endpoint, Region: o.Region, PathStyle: o.ForcePathStyle}, nil
	}
	return Place{}, fmt.Errorf("location of unknown kind %q", l.Kind)
}

// Check refuses a Place a file may not be trusted with: an unknown kind, a
// folder that is not absolute and clean, an S3 place without a bucket or
// with a root that is not plain.
func (p Place) Check() error {
	switch p.Kind {
	case KindFilesystem:
		if p.Dir == "" || !filepath.IsAbs(p.Dir) || filepath.Clean(p.Dir) != p.Dir {
			return fmt.Errorf("recorded folder %q is not an absolute, cleaned path", p.Dir)
		}
		if p.Bucket != "" || p.Root != "" || p.Endpoint != "" || p.Region != "" || p.PathStyle {
			return fmt.Errorf("recorded folder %s has S3 settings", p.Dir)
		}
		return nil
	case KindS3:
		if p.Dir != "" {
			return fmt.Errorf("recorded S3 location has a folder %q", p.Dir)
		}
		if p.Bucket == "" || strings.Contains(p.Bucket, "/") {
			return fmt.Errorf("recorded S3 bucket %q is not a bucket name", p.Bucket)
		}
		if p.Root != "" && slices.ContainsFunc(strings.Split(p.Root, "/"), notPlain) {
			return fmt.Errorf("recorded S3 root %q is not a plain key prefix", p.Root)
		}
		return nil
	}
	return fmt.Errorf("recorded location of unknown kind %q", p.Kind)
}

// Location is the location p records, to open.
func (p Place) Location() Location {
	if p.Kind == KindS3 {
		return Location{Kind: KindS3, S3: S3Options{Bucket: p.Bucket, RootDirectory: p.Root, Endpoint: p.Endpoint, Region: p.Region, ForcePathStyle: p.PathStyle}}
	}
	return Location{Kind: p.Kind, Dir: p.Dir}
}

// String names p as a LOCATION argument, with the S3 endpoint when it is
// not AWS's.
func (p Place) String() string {
	s := p.Location().String()
	if p.Kind == KindS3 && p.Endpoint != "" {
		s += " at " + p.Endpoint
	}
	return s
}

// Same reports whether p and q are one storage: the same folder (by path,
// or the same folder reached through a symlink), or the same bucket and
// root at the same endpoint. Region and addressing style do not change
// which storage it is.
func (p Place) Same(q Place) bool {
	if p.Kind != q.Kind {
		return false
	}
	if p.Kind == KindFilesystem {
		if p.Dir == q.Dir {
			return true
		}
		a, errA := os.Stat(p.Dir)
		b, errB := os.Stat(q.Dir)
		return errA == nil && errB == nil && os.SameFile(a, b)
	}
	return p.Bucket == q.Bucket && p.Root == q.Root && strings.TrimRight(p.Endpoint, "/") == strings.TrimRight(q.Endpoint, "/")
}
