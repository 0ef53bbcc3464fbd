package storage

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"syscall"
)

// Open streams a regular file's content, for reads too large for ReadFile
// (re-hashing a blob); the caller closes the reader. The file is resolved
// as ReadFile resolves it: beneath the root, refusing a symlink anywhere in
// the path (one openat2 call on Linux, os.Root elsewhere). It is opened
// non-blocking, so that a FIFO planted in the tree is refused rather than
// waited on; reads of a regular file block as usual.
func (f *FS) Open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, Object{}, err
	}
	var file *os.File
	var err error
	if f.fast {
		file, err = f.fastOpen(key)
	} else {
		file, err = f.root.OpenFile(key, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	}
	if err != nil {
		return nil, Object{}, f.wrap("open", key, err)
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, Object{}, f.wrap("open", key, err)
	}
	if !fi.Mode().IsRegular() {
		file.Close()
		return nil, Object{}, fmt.Errorf("open %s: not a regular file (%s)", path.Join(f.dir, key), fi.Mode().Type())
	}
	return &fsReader{f: file, fs: f, key: key}, Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// fsReader names the file's full path in read errors, as the other FS
// methods do.
type fsReader struct {
	f   *os.File
	fs  *FS
	key string
}

func (r *fsReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		err = r.fs.wrap("read", r.key, err)
	}
	return n, err
}

func (r *fsReader) Close() error { return r.f.Close() }
