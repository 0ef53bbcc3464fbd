package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Putter is implemented by stores that can write the registry's files back:
// only restore uses it, to put back what an archived run deleted.
type Putter interface {
	// Put writes size bytes from r under key, replacing any file there, so
	// that a reader never sees a partial file.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
}

var (
	_ Putter = (*FS)(nil)
	_ Putter = (*S3)(nil)
)

// Put writes key through a temporary file in the same folder and a rename.
func (f *FS) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := path.Dir(key)
	if err := f.root.MkdirAll(dir, 0o755); err != nil {
		return f.wrap("put", key, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	tmp := dir + "/.regsweep-" + hex.EncodeToString(b[:])
	file, err := f.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return f.wrap("put", key, err)
	}
	n, err := io.Copy(file, r)
	if err == nil && n != size {
		err = fmt.Errorf("%d bytes, want %d", n, size)
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = f.root.Rename(tmp, key)
	}
	if err != nil {
		_ = f.root.Remove(tmp)
		return f.wrap("put", key, err)
	}
	return nil
}

// Put writes key with one PutObject.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	bk := s.key(key)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(bk),
		Body:          r,
		ContentLength: aws.Int64(size),
	})
	if err != nil {
		return s.wrap("put", bk, err)
	}
	return nil
}

// ErrCannotPut is returned for a store that is no Putter.
var ErrCannotPut = errors.New("store cannot write files back")
