package storage

import (
	"context"
	"io"
	"os"
)

// Open streams a regular file's content, for reads too large for ReadFile
// (re-hashing a blob); the caller closes the reader. The file is resolved
// as ReadFile resolves it: beneath the root, refusing a symlink anywhere in
// the path (one openat2 call on Linux, os.Root elsewhere), without blocking
// (see openRead), and anything but a regular file is refused unread.
func (f *FS) Open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, Object{}, err
	}
	if !f.fast {
		file, o, err := f.openRead("open", key)
		if err != nil {
			return nil, o, err
		}
		return &fsReader{ctx: ctx, f: file, fs: f, key: key}, o, nil
	}
	file, err := f.fastOpen(key)
	if err != nil {
		return nil, Object{}, err
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, Object{}, f.wrap("open", key, err)
	}
	if !fi.Mode().IsRegular() {
		file.Close()
		return nil, Object{}, f.notRegular("open", key, fi.Mode())
	}
	return &fsReader{ctx: ctx, f: file, fs: f, key: key}, Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// fsReader names the file's full path in read errors, as the other FS
// methods do, and stops at the end of ctx: copying a blob of gigabytes
// (into an archive, through a hash) ends with the run.
type fsReader struct {
	ctx context.Context
	f   *os.File
	fs  *FS
	key string
}

func (r *fsReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		err = r.fs.wrap("read", r.key, err)
	}
	return n, err
}

func (r *fsReader) Close() error { return r.f.Close() }
