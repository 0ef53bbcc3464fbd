package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Creator is implemented by stores that can write the registry's files
// back: only restore uses it, to put back what an archived run deleted.
type Creator interface {
	// Create writes size bytes from r as the new file key, so that a reader
	// never sees a partial file, with modification time mtime where the
	// store keeps one. It never replaces a file: when key exists it fails
	// with an error wrapping ErrExists.
	Create(ctx context.Context, key string, r io.Reader, size int64, mtime time.Time) error
	// CheckCreate reports, before any write, what would stop Create from
	// making key other than the key existing.
	CheckCreate(ctx context.Context, key string) error
}

var (
	_ Creator = (*FS)(nil)
	_ Creator = (*S3)(nil)
)

func (f *FS) createsFromStream() {}

// CheckCreate tells whether Create could make key: every part of its path
// that exists is a folder, none a file or a symlink (which Create, through
// os.Root, would follow inside the root).
func (f *FS) CheckCreate(ctx context.Context, key string) error {
	for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
		fi, err := f.root.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return f.wrap("create", key, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("create %s: %s is not a folder (%s)", path.Join(f.dir, key), path.Join(f.dir, dir), fi.Mode().Type())
		}
	}
	return nil
}

// CheckCreate: S3 has no folders, any key can be created.
func (s *S3) CheckCreate(context.Context, string) error { return nil }

// Create writes key through a temporary file in its folder, then links it
// into place, which fails when the key exists: nothing is replaced. The
// folders it creates, and the file, take the owner and group of the folder
// they are written into, and its mode (a file without the execute bits), so
// that a restore run as root into a registry another user owns leaves files
// that user can tag over and delete.
func (f *FS) Create(ctx context.Context, key string, r io.Reader, size int64, mtime time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := path.Dir(key)
	var made []string
	parent, err := f.mkdirLike(dir, &made)
	if err != nil {
		f.unmake(made)
		return f.wrap("create", key, err)
	}
	if err := f.createIn(dir, path.Base(key), parent, r, size, mtime); err != nil {
		f.unmake(made)
		return f.wrap("create", key, err)
	}
	return nil
}

// createIn does Create's work in the folder dir, opened once: each step
// then names one file in it instead of resolving the key's path again.
func (f *FS) createIn(dir, name string, parent ownerMode, r io.Reader, size int64, mtime time.Time) error {
	d, err := f.root.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	tmp := ".regsweep-" + hex.EncodeToString(b[:])
	mode := parent.mode.Perm() &^ 0o111
	file, err := d.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	n, err := io.Copy(file, r)
	if err == nil && n != size {
		err = fmt.Errorf("%d bytes, want %d", n, size)
	}
	if err == nil {
		err = parent.apply(file.Chmod, file.Chown, mode)
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err == nil && !mtime.IsZero() {
		err = d.Chtimes(tmp, mtime, mtime)
	}
	if err == nil {
		// A hard link fails when name exists, where a rename would replace it.
		err = d.Link(tmp, name)
		if errors.Is(err, fs.ErrExist) {
			err = ErrExists
		}
	}
	_ = d.Remove(tmp)
	return err
}

// unmake removes the folders a failed Create made, deepest first, as long
// as they are empty.
func (f *FS) unmake(made []string) {
	for i := len(made) - 1; i >= 0; i-- {
		if f.root.Remove(made[i]) != nil {
			return
		}
	}
}

// ownerMode is the owner, group and mode of a folder.
type ownerMode struct {
	uid, gid int
	mode     fs.FileMode // permission bits and setgid
}

// ownerModeOf reads a folder's owner, group and mode.
func ownerModeOf(fi fs.FileInfo) (ownerMode, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ownerMode{}, fmt.Errorf("no owner known for %s", fi.Name())
	}
	return ownerMode{uid: int(st.Uid), gid: int(st.Gid), mode: fi.Mode() & (fs.ModePerm | fs.ModeSetgid)}, nil
}

// apply gives what chmod and chown change the mode m and o's owner. A chown
// that a user other than root may not make (giving a file away) is left
// undone: such a user writes only where the registry's own user lets it,
// and the mode still gives the folder's access.
// The chown comes first: it may clear a setgid bit the chmod then sets.
func (o ownerMode) apply(chmod func(fs.FileMode) error, chown func(int, int) error, m fs.FileMode) error {
	if err := chown(o.uid, o.gid); err != nil && (os.Geteuid() == 0 || !errors.Is(err, fs.ErrPermission)) {
		return err
	}
	return chmod(m)
}

// mkdirLike makes dir and the folders above it that are missing, each with
// the owner, group and mode of the folder it is made in, and returns dir's.
// An existing component must be a folder, not a symlink. The folders it
// makes are appended to made, outermost first.
func (f *FS) mkdirLike(dir string, made *[]string) (ownerMode, error) {
	fi, err := f.root.Lstat(dir)
	if err == nil {
		if !fi.IsDir() {
			return ownerMode{}, fmt.Errorf("%s is not a folder (%s)", dir, fi.Mode().Type())
		}
		return ownerModeOf(fi)
	}
	if !errors.Is(err, fs.ErrNotExist) || dir == "." {
		return ownerMode{}, err
	}
	parent, err := f.mkdirLike(path.Dir(dir), made)
	if err != nil {
		return ownerMode{}, err
	}
	if err := f.root.Mkdir(dir, parent.mode.Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
		return ownerMode{}, err
	} else if err == nil {
		*made = append(*made, dir)
	}
	err = parent.apply(
		func(m fs.FileMode) error { return f.root.Chmod(dir, m) },
		func(uid, gid int) error { return f.root.Lchown(dir, uid, gid) },
		parent.mode)
	return parent, err
}

// CreateLayout makes dir/docker/registry/v2, for a restore into a folder
// that holds no registry yet, each folder with the owner, group and mode of
// the one it is made in.
func CreateLayout(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	defer root.Close()
	f := &FS{dir: dir, root: root}
	if _, err := f.mkdirLike(V2, new([]string)); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(dir, filepath.FromSlash(V2)), err)
	}
	return nil
}

// Create writes key with one PutObject carrying If-None-Match: *, so that
// an existing object is never replaced (412 Precondition Failed). S3 keeps
// no modification time of the client's.
func (s *S3) Create(ctx context.Context, key string, r io.Reader, size int64, _ time.Time) error {
	bk := s.key(key)
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(bk),
		Body:          r,
		ContentLength: aws.Int64(size),
		IfNoneMatch:   aws.String("*"),
	})
	if isPreconditionFailed(err) {
		return fmt.Errorf("create %s: %w", s.url(bk), ErrExists)
	}
	if err != nil {
		return s.wrap("create", bk, err)
	}
	return nil
}

// isPreconditionFailed tells a conditional write that lost: 412, or the 409
// some servers answer to a concurrent conditional write.
func isPreconditionFailed(err error) bool {
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict)
}

// ErrCannotCreate is returned for a store that is no Creator.
var ErrCannotCreate = errors.New("store cannot write files back")
