package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Open streams key through the wrapped store when that store can stream
// (FS, S3): a read-only store is for reading. Another store fails with an
// error wrapping errors.ErrUnsupported.
func (r readOnly) Open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	o, ok := r.Store.(interface {
		Open(context.Context, string) (io.ReadCloser, Object, error)
	})
	if !ok {
		return nil, Object{}, fmt.Errorf("open %s: %s cannot stream files: %w", key, r.Store, errors.ErrUnsupported)
	}
	return o.Open(ctx, key)
}
