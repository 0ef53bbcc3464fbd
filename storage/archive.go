package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
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

// ArchiveVersion is the format of the archives this build writes. Version 1
// recorded the location only as the command line named it (a relative
// folder, an S3 bucket without its endpoint); version 2 adds Place.
const ArchiveVersion = 2

// ArchiveIndex is the first entry of an undo archive.
type ArchiveIndex struct {
	Version int `json:"version"`
	// Location names where the archive was made, for people.
	Location string `json:"location"`
	// Place is where the archive was made, in full (version 2 on).
	Place     *Place    `json:"place,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Keys      []string  `json:"keys"`
}

// Recorded is where the archive says it was made, when that can be
// trusted: its Place, or for a version 1 archive an absolute folder. For
// anything else (a relative folder, an S3 bucket whose endpoint a version 1
// archive did not record) it returns an error saying so: the caller must
// then be told where to restore.
func (idx *ArchiveIndex) Recorded() (Place, error) {
	if idx.Place != nil {
		if err := idx.Place.Check(); err != nil {
			return Place{}, fmt.Errorf("archive: %w", err)
		}
		return *idx.Place, nil
	}
	if loc, err := ParseLocation(idx.Location); err == nil && loc.Kind == KindFilesystem {
		if p := (Place{Kind: KindFilesystem, Dir: idx.Location}); p.Check() == nil {
			return p, nil // absolute and clean: the same folder from anywhere
		}
	}
	return Place{}, fmt.Errorf("archive format %d records its location only as %q, which does not say where it is from any working directory (a relative folder, or S3 without its endpoint)", idx.Version, idx.Location)
}

// Opener is implemented by stores that can stream a file, so that archives
// and digest checks never hold a whole blob in memory.
type Opener interface {
	Open(ctx context.Context, key string) (io.ReadCloser, Object, error)
}

// WriteArchive writes every existing file among keys into w as an undo
// archive made at place. Keys already gone are listed in the index and
// skipped. It fails on the first file it cannot read: a run must not delete
// what it could not archive.
func WriteArchive(ctx context.Context, s Store, place Place, keys []string, createdAt time.Time, w io.Writer) (files int, bytes int64, err error) {
	op := CapabilitiesOf(s).Opener
	if op == nil {
		return 0, 0, fmt.Errorf("archive: %s cannot stream files", s)
	}
	zw, err := zstd.NewWriter(w)
	if err != nil {
		return 0, 0, err
	}
	tw := tar.NewWriter(zw)
	idx, err := json.Marshal(ArchiveIndex{Version: ArchiveVersion, Location: place.Location().String(), Place: &place, CreatedAt: createdAt, Keys: keys})
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
	err := walkArchive(r, func(*tar.Header, io.Reader) error { return errStop }, func(i *ArchiveIndex) error { idx = i; return nil })
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if idx == nil {
		return nil, errors.New("archive: no index")
	}
	return idx, nil
}

var errStop = errors.New("stop")

// RestoreCheck is an archive checked whole against a store, before the
// first write: what Write puts back.
type RestoreCheck struct {
	// Index is the archive's index.
	Index *ArchiveIndex
	// Files is the number of file entries, Bytes their size.
	Files int
	Bytes int64
	// Present is the number of entries the store already holds with the
	// same content: Write leaves them as they are.
	Present int

	entries []checkedEntry
}

type checkedEntry struct {
	name    string
	size    int64
	present bool
	rank    int // restoreRank
}

// linkMax bounds a link entry: "sha512:" and 128 hex digits, with room.
const linkMax = 256

// CheckRestore reads a whole undo archive and checks it against s without
// writing anything. It refuses the archive, naming the first bad entry,
// when
//   - an entry (or a key its index lists) is not a plain key of the layout
//     (ParseKey: no empty, "." or ".." segment anywhere), is listed twice,
//     is not among the index's keys, or is not a regular file;
//   - an entry's content is not what its key proves: blob data must hash to
//     its digest, a layer link, revision link or tag history entry must
//     hold the digest of its folder, a tag's current link a digest (upload
//     files cannot be checked);
//   - s holds the key already with other content (or as something else
//     than a regular file): a restore never replaces a file.
//
// Entries s holds already with the same content are counted as present.
func CheckRestore(ctx context.Context, s Store, r io.Reader, progress Counter) (*RestoreCheck, error) {
	caps := CapabilitiesOf(s)
	op, cr := caps.Opener, caps.Creator
	if op == nil {
		return nil, fmt.Errorf("restore into %s: %s cannot stream files", s, s)
	}
	if cr == nil {
		return nil, fmt.Errorf("restore into %s: %w", s, ErrCannotCreate)
	}
	if progress == nil {
		progress = Nop{}
	}
	c := &RestoreCheck{}
	listed := map[string]bool{}
	seen := map[string]bool{}
	err := walkArchive(r, func(h *tar.Header, body io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, err := entryKey(h, listed, seen)
		if err != nil {
			return err
		}
		present, err := checkEntry(ctx, op, k, h, body)
		if err == nil && !present {
			err = cr.CheckCreate(ctx, h.Name)
		}
		if err != nil {
			return fmt.Errorf("restore: archive entry %s: %w; nothing restored", h.Name, err)
		}
		c.entries = append(c.entries, checkedEntry{h.Name, h.Size, present, restoreRank(k.Kind)})
		c.Files++
		c.Bytes += h.Size
		if present {
			c.Present++
		}
		progress.Add(h.Size)
		return nil
	}, func(idx *ArchiveIndex) error {
		c.Index = idx
		for _, key := range idx.Keys {
			if _, err := ParseKey(key); err != nil {
				return fmt.Errorf("restore: the archive's index lists %q: %w; nothing restored", key, err)
			}
			listed[key] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if c.Index == nil {
		return nil, errors.New("restore: archive: no index")
	}
	return c, nil
}

// entryKey parses an entry's name as a key the index lists, once.
func entryKey(h *tar.Header, listed, seen map[string]bool) (Key, error) {
	k, err := ParseKey(h.Name)
	switch {
	case err != nil:
		return k, fmt.Errorf("restore: archive entry %q is not a key of the layout: %w; nothing restored", h.Name, err)
	case !listed[h.Name]:
		return k, fmt.Errorf("restore: archive entry %s is not among the keys its index lists; nothing restored", h.Name)
	case seen[h.Name]:
		return k, fmt.Errorf("restore: archive entry %s comes twice; nothing restored", h.Name)
	case h.Size < 0 || isLink(k.Kind) && h.Size > linkMax:
		return k, fmt.Errorf("restore: archive entry %s: %d bytes is no size for it; nothing restored", h.Name, h.Size)
	}
	seen[h.Name] = true
	return k, nil
}

// checkEntry verifies an entry's content and compares it with what s holds
// at its key, in one read of the entry: present says s holds the same.
func checkEntry(ctx context.Context, op Opener, k Key, h *tar.Header, body io.Reader) (present bool, err error) {
	v := newVerifier(k)
	stored, o, err := op.Open(ctx, h.Name)
	switch {
	case IsNotFound(err):
		_, err := io.Copy(v, io.LimitReader(body, h.Size))
		if err != nil {
			return false, err
		}
		return false, v.check()
	case err != nil:
		return false, fmt.Errorf("the store holds something there that cannot be compared, so it is not replaced: %w", err)
	}
	defer stored.Close()
	cmp := &compareWriter{r: stored}
	if _, err := io.Copy(io.MultiWriter(v, cmp), io.LimitReader(body, h.Size)); err != nil {
		return false, err
	}
	if err := v.check(); err != nil {
		return false, err
	}
	if err := cmp.err; err != nil {
		return false, fmt.Errorf("read what the store holds there: %w", err)
	}
	if o.Size != h.Size || cmp.differ || !cmp.atEOF() {
		return false, fmt.Errorf("the store holds other content there (%d bytes, the archive %d): a restore never replaces a file", o.Size, h.Size)
	}
	return true, nil
}

// Write puts back every entry c found absent, reading the archive again
// through open, once for each rank of restoreRank that has entries to
// write: blobs and uploads, then layer links and revisions, then tag
// history, then tags, so that whatever is restored is whole when something
// that references it appears, and a restore stopped midway leaves no tag
// pointing at a missing manifest. Each entry must be the one checked, its
// content is verified again as it is written, and it is created only where
// no file exists. Folders and files take the owner and mode of the folder
// they are written into (filesystem), and the entries' modification times.
// A store that can flush its writes (Syncer) is flushed at the end. It
// returns the number of files written.
func (c *RestoreCheck) Write(ctx context.Context, s Store, open func() (io.ReadCloser, error), progress Counter) (written int, err error) {
	caps := CapabilitiesOf(s)
	cr := caps.Creator
	if cr == nil {
		return 0, fmt.Errorf("restore into %s: %w", s, ErrCannotCreate)
	}
	if progress == nil {
		progress = Nop{}
	}
	var todo [numRanks]bool
	for _, e := range c.entries {
		if !e.present {
			todo[e.rank] = true
		}
	}
	for rank := range numRanks {
		if !todo[rank] {
			continue
		}
		n, err := c.writeRank(ctx, cr, open, rank, progress)
		written += n
		if err != nil {
			return written, err
		}
	}
	if sy := caps.Syncer; sy != nil && written > 0 {
		if err := sy.Sync(); err != nil {
			return written, fmt.Errorf("restore: %d files written, not flushed to disk: %w", written, err)
		}
	}
	return written, nil
}

// Syncer is implemented by stores whose writes can be flushed to stable
// storage at once (a filesystem: syncfs), rather than file by file.
type Syncer interface {
	Sync() error
}

// writeRank writes the absent entries of one rank in one read of the
// archive.
func (c *RestoreCheck) writeRank(ctx context.Context, cr Creator, open func() (io.ReadCloser, error), rank int, progress Counter) (written int, err error) {
	r, err := open()
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	defer r.Close()
	i := 0
	err = walkArchive(r, func(h *tar.Header, body io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if i >= len(c.entries) || c.entries[i].name != h.Name || c.entries[i].size != h.Size {
			return fmt.Errorf("restore: the archive changed since it was checked (entry %d is %s)", i, h.Name)
		}
		e := c.entries[i]
		i++
		if e.present || e.rank != rank {
			return nil
		}
		k, err := ParseKey(h.Name)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		// The content is verified again as it streams into the store: a
		// failed check ends the read with an error, before the file is in
		// place. A store that needs a seekable body (S3 signs the payload)
		// gets a spooled copy, verified before it is sent.
		var content io.Reader = &verifyingReader{r: io.LimitReader(body, h.Size), v: newVerifier(k)}
		if _, ok := cr.(streamCreator); !ok {
			spooled, cleanup, err := spool(content, h.Size)
			if err != nil {
				return fmt.Errorf("restore %s: %w", h.Name, err)
			}
			defer cleanup()
			content = spooled
		}
		if err := cr.Create(ctx, h.Name, content, h.Size, h.ModTime); err != nil {
			if errors.Is(err, ErrExists) {
				return fmt.Errorf("restore: %w: written by someone else since the check, not replaced", err)
			}
			return fmt.Errorf("restore: %w", err)
		}
		written++
		progress.Add(h.Size)
		return nil
	}, nil)
	if err == nil && i != len(c.entries) {
		err = fmt.Errorf("restore: the archive changed since it was checked (%d entries, %d checked)", i, len(c.entries))
	}
	return written, err
}

// numRanks is the number of restoreRank values.
const numRanks = 4

// restoreRank orders a restore's writes, referenced before referencing:
// blob data and upload files (0), layer and revision links (1), tag history
// (2), a tag's current link (3).
func restoreRank(k KeyKind) int {
	switch k {
	case KeyLayerLink, KeyRevisionLink:
		return 1
	case KeyTagIndex:
		return 2
	case KeyTagCurrent:
		return 3
	}
	return 0
}

func isLink(k KeyKind) bool {
	return k == KeyLayerLink || k == KeyRevisionLink || k == KeyTagIndex || k == KeyTagCurrent
}

// streamCreator is a Creator that reads the content once, in order: it
// needs no seekable copy.
type streamCreator interface{ createsFromStream() }

// verifyingReader reads r through v and, at its end, fails with v's
// verdict instead of io.EOF when the content is not what its key proves.
type verifyingReader struct {
	r io.Reader
	v *verifier
}

func (vr *verifyingReader) Read(p []byte) (int, error) {
	n, err := vr.r.Read(p)
	if _, werr := vr.v.Write(p[:n]); werr != nil {
		return n, werr
	}
	if err == io.EOF {
		if cerr := vr.v.check(); cerr != nil {
			return n, fmt.Errorf("the archive changed since it was checked: %w", cerr)
		}
	}
	return n, err
}

// verifier checks an entry's content as it streams by: blob data against
// its digest, links against the digest of their folder.
type verifier struct {
	k    Key
	h    hash.Hash
	link bytes.Buffer
}

func newVerifier(k Key) *verifier {
	v := &verifier{k: k}
	if k.Kind == KeyBlobData {
		v.h = k.Digest.Algorithm().Hash()
	}
	return v
}

func (v *verifier) Write(p []byte) (int, error) {
	switch {
	case v.h != nil:
		v.h.Write(p)
	case isLink(v.k.Kind):
		if v.link.Len()+len(p) > linkMax {
			return 0, fmt.Errorf("a link of more than %d bytes", linkMax)
		}
		v.link.Write(p)
	}
	return len(p), nil
}

func (v *verifier) check() error {
	switch {
	case v.h != nil:
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.k.Digest.Hex() {
			return fmt.Errorf("content hashes to %s:%s, not %s", v.k.Digest.Algorithm(), got, v.k.Digest)
		}
	case isLink(v.k.Kind):
		d, err := ParseDigest(v.link.String())
		if err != nil {
			return fmt.Errorf("not a link file: %w", err)
		}
		if v.k.Kind != KeyTagCurrent && d != v.k.Digest {
			return fmt.Errorf("link holds %s, its folder names %s", d, v.k.Digest)
		}
	}
	return nil
}

// compareWriter compares what is written to it with what r reads.
type compareWriter struct {
	r      io.Reader
	buf    []byte
	differ bool
	err    error
}

func (c *compareWriter) Write(p []byte) (int, error) {
	if c.differ || c.err != nil {
		return len(p), nil
	}
	if cap(c.buf) < len(p) {
		c.buf = make([]byte, len(p))
	}
	b := c.buf[:len(p)]
	n, err := io.ReadFull(c.r, b)
	if !bytes.Equal(b[:n], p) {
		c.differ = true
	}
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		c.err = err
	}
	return len(p), nil
}

// atEOF reports whether r holds nothing more.
func (c *compareWriter) atEOF() bool {
	if c.differ || c.err != nil {
		return false
	}
	var b [1]byte
	n, err := io.ReadFull(c.r, b[:])
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n == 0
}

// walkArchive calls index for the index entry and fn for every file entry.
func walkArchive(r io.Reader, fn func(*tar.Header, io.Reader) error, index func(*ArchiveIndex) error) error {
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
			if first {
				return errors.New("archive: empty, not a regsweep undo archive")
			}
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
			dec := json.NewDecoder(io.LimitReader(tr, h.Size))
			if err := dec.Decode(&idx); err != nil {
				return fmt.Errorf("archive index: %w", err)
			}
			if idx.Version < 1 || idx.Version > ArchiveVersion {
				return fmt.Errorf("archive index: format version %d, this regsweep reads 1 to %d", idx.Version, ArchiveVersion)
			}
			if index != nil {
				if err := index(&idx); err != nil {
					return err
				}
			}
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("archive: entry %q is not a regular file; nothing restored", h.Name)
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

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
