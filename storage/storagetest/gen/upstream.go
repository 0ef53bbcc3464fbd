package gen

import (
	"context"
	"fmt"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	// The filesystem driver registers itself with the factory.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// UpstreamGC runs distribution's own garbage collector over the filesystem
// registry at root exactly as `registry garbage-collect` does in v3.1.2:
// factory.Create of the filesystem driver, storage.NewRegistry with no
// options, then storage.MarkAndSweep.
func UpstreamGC(ctx context.Context, root string, opts storage.GCOpts) error {
	return UpstreamGCDriver(ctx, "filesystem", map[string]any{"rootdirectory": root}, opts)
}

// UpstreamGCDriver is UpstreamGC over any storage driver registered with
// distribution's factory (the caller imports it), built from the parameters
// of a config.yml storage section, as `registry garbage-collect` builds it.
func UpstreamGCDriver(ctx context.Context, driver string, params map[string]any, opts storage.GCOpts) error {
	d, err := factory.Create(ctx, driver, params)
	if err != nil {
		return fmt.Errorf("upstream gc: construct %s driver: %w", driver, err)
	}
	reg, err := storage.NewRegistry(ctx, d)
	if err != nil {
		return fmt.Errorf("upstream gc: construct registry: %w", err)
	}
	if err := storage.MarkAndSweep(ctx, d, reg, opts); err != nil {
		return fmt.Errorf("upstream gc: %w", err)
	}
	return nil
}
