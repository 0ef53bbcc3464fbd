package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
)

// An undo archive is a zstd-compressed tar: first archiveIndexName, a JSON
// ArchiveIndex naming the location and every key the run was about to
// delete, then one entry per file that existed, named by its key, with its
// modification time. restore puts them back.

const archiveIndexName = "regsweep-archive.json"

// ArchiveIndex is the first entry of an undo archive.
type ArchiveIndex struct {
	Version   int       `json:"version"`
	Location  string    `json:"location"`
	CreatedAt time.Time `json:"created_at"`
	Keys      []string  `json:"keys"`
}

// Opener is implemented by stores that can stream a file, so that archives
// and digest checks never hold a whole blob in memory.
type Opener interface {
	Open(ctx context.Context, key string) (io.ReadCloser, Object, error)
}

// WriteArchive writes every existing file among keys into w as an undo
// archive for location. Keys already gone are listed in the index and
// skipped. It fails on the first file it cannot read: a run must not
// delete what it could not archive.
func WriteArchive(ctx context.Context, s Store, location string, keys []string, createdAt time.Time, w io.Writer) (files int, bytes int64, err error) {
	op, ok := s.(Opener)
	if !ok {
		return 0, 0, fmt.Errorf("archive: %s cannot stream files", s)
	}
	zw, err := zstd.NewWriter(w)
	if err != nil {
		return 0, 0, err
	}
	tw := tar.NewWriter(zw)
	idx, err := json.Marshal(ArchiveIndex{Version: 1, Location: location, CreatedAt: createdAt, Keys: keys})
	if err != nil {
		return 0, 0, err
	}
	if err := writeEntry(tw, archiveIndexName, createdAt, int64(len(idx)), bytesReader(idx)); err != nil {
		return 0, 0, err
	}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return files, bytes, err
		}
		rc, o, err := op.Open(ctx, k)
		if IsNotFound(err) {
			continue
		}
		if err != nil {
			return files, bytes, fmt.Errorf("archive: %w", err)
		}
		err = writeEntry(tw, k, o.ModTime, o.Size, rc)
		rc.Close()
		if err != nil {
			return files, bytes, fmt.Errorf("archive %s: %w", k, err)
		}
		files++
		bytes += o.Size
	}
	if err := tw.Close(); err != nil {
		return files, bytes, err
	}
	return files, bytes, zw.Close()
}

func writeEntry(tw *tar.Writer, name string, mtime time.Time, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.Copy(tw, r)
	if err == nil && n != size {
		err = fmt.Errorf("read %d bytes, its size said %d", n, size)
	}
	return err
}

// ReadArchiveIndex reads the index of an undo archive.
func ReadArchiveIndex(r io.Reader) (*ArchiveIndex, error) {
	var idx *ArchiveIndex
	err := walkArchive(r, func(*tar.Header, io.Reader) error { return errStop }, func(i *ArchiveIndex) { idx = i })
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if idx == nil {
		return nil, errors.New("archive: no index")
	}
	return idx, nil
}

var errStop = errors.New("stop")

// Restore puts every file of an undo archive back into s, checking each
// blob's content against the digest in its key. It returns how many files
// it wrote. A blob whose content does not match is not written, and the
// restore fails naming it.
func Restore(ctx context.Context, s Store, r io.Reader, progress Counter) (files int, err error) {
	p, ok := s.(Putter)
	if !ok {
		return 0, fmt.Errorf("restore into %s: %w", s, ErrCannotPut)
	}
	if progress == nil {
		progress = Nop{}
	}
	err = walkArchive(r, func(h *tar.Header, body io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, perr := ParseKey(h.Name)
		if perr != nil {
			return fmt.Errorf("restore: %s is not a key of the layout: %w", h.Name, perr)
		}
		content, cleanup, err := spool(body, h.Size)
		if err != nil {
			return fmt.Errorf("restore %s: %w", h.Name, err)
		}
		defer cleanup()
		if k.Kind == KeyBlobData {
			if err := checkDigest(k.Digest, content); err != nil {
				return fmt.Errorf("restore %s: %w", h.Name, err)
			}
		}
		if err := p.Put(ctx, h.Name, content, h.Size); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if fs, ok := s.(*FS); ok {
			_ = fs.root.Chtimes(h.Name, h.ModTime, h.ModTime)
		}
		files++
		progress.Add(h.Size)
		return nil
	}, nil)
	return files, err
}

// walkArchive calls index for the index entry and fn for every file entry.
func walkArchive(r io.Reader, fn func(*tar.Header, io.Reader) error, index func(*ArchiveIndex)) error {
	zr, err := zstd.NewReader(r)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	first := true
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		if first {
			first = false
			if h.Name != archiveIndexName {
				return errors.New("archive: not a regsweep undo archive (no index first)")
			}
			var idx ArchiveIndex
			if err := json.NewDecoder(tr).Decode(&idx); err != nil {
				return fmt.Errorf("archive index: %w", err)
			}
			if index != nil {
				index(&idx)
			}
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("archive: %s is not a regular file", h.Name)
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}

// spool makes a seekable copy of an archive entry (S3 uploads need one):
// in memory up to 8 MiB, in a temporary file beyond.
func spool(r io.Reader, size int64) (io.ReadSeeker, func(), error) {
	if size <= 8<<20 {
		b, err := io.ReadAll(io.LimitReader(r, size))
		return bytesReader(b), func() {}, err
	}
	f, err := os.CreateTemp("", "regsweep-restore-*")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	if _, err := io.Copy(f, io.LimitReader(r, size)); err != nil {
		cleanup()
		return nil, nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, nil, err
	}
	return f, cleanup, nil
}

// checkDigest hashes a seekable content and rewinds it.
func checkDigest(d Digest, r io.ReadSeeker) error {
	h := d.Algorithm().Hash()
	if _, err := io.Copy(h, r); err != nil {
		return err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex() {
		return fmt.Errorf("content hashes to %s:%s, not %s", d.Algorithm(), got, d)
	}
	return nil
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
