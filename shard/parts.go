package shard

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/storage"
)

// Link is a layer link a mark shard hands to the sweep: Digest is what the
// link names; Target, when set, the blob an alias link (a sha512 digest
// the registry stores under its sha256) stands for. A part holding a link
// is the part of its routing digest (Target if set, else Digest).
type Link struct {
	Repo    string
	Digest  storage.Digest
	Target  storage.Digest
	ModTime int64 // Unix nanoseconds; 0 when the walk did not read it
}

func (l Link) route() storage.Digest {
	if !l.Target.IsZero() {
		return l.Target
	}
	return l.Digest
}

// Marks is what one mark shard writes: the digests its kept manifests
// reference (marked) and the layer links of its repositories, each routed
// to the part of its digest's bucket; digests of other algorithms than
// sha256 go to the other part, which every sweep shard reads.
type Marks struct {
	buckets [Buckets]part
	other   part
}

type part struct {
	marks []storage.Digest
	links []Link
}

func (m *Marks) partOf(d storage.Digest) *part {
	if b := partOf(d); b >= 0 {
		return &m.buckets[b]
	}
	return &m.other
}

// partOf is the part of digest d: its bucket, or -1 (the other part) for
// an algorithm other than sha256.
func partOf(d storage.Digest) int {
	if _, ok := d.Sum256(); ok {
		return BucketOf(d)
	}
	return -1
}

// Mark records a marked digest.
func (m *Marks) Mark(d storage.Digest) {
	p := m.partOf(d)
	p.marks = append(p.marks, d)
}

// AddLink records a layer link.
func (m *Marks) AddLink(l Link) {
	p := m.partOf(l.route())
	p.links = append(p.links, l)
}

// PartInfo is one part as its commit records it.
type PartInfo struct {
	// Bucket is the part's bucket, -1 for the other part.
	Bucket int `json:"bucket"`
	// Size and SHA256 are the stored (compressed) file's; RawSize is the
	// decompressed size, which bounds the decompression.
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	RawSize int64  `json:"raw_size"`
	Marks   int    `json:"marks"`
	Links   int    `json:"links"`
}

// partHeader opens every part.
const partHeader = "regsweep-shard-part 1\n"

// encode writes p's records, sorted, as text: "m DIGEST", "l REPO DIGEST
// MODTIME", "a REPO DIGEST TARGET MODTIME".
func (p *part) encode() []byte {
	slices.SortFunc(p.marks, storage.Digest.Compare)
	p.marks = slices.Compact(p.marks)
	slices.SortFunc(p.links, func(a, b Link) int {
		return cmp.Or(strings.Compare(a.Repo, b.Repo), a.Digest.Compare(b.Digest))
	})
	var b bytes.Buffer
	b.WriteString(partHeader)
	for _, d := range p.marks {
		b.WriteString("m ")
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	for _, l := range p.links {
		if l.Target.IsZero() {
			fmt.Fprintf(&b, "l %s %s %d\n", l.Repo, l.Digest, l.ModTime)
		} else {
			fmt.Fprintf(&b, "a %s %s %s %d\n", l.Repo, l.Digest, l.Target, l.ModTime)
		}
	}
	return b.Bytes()
}

// Write writes every non-empty part of mark shard i of run id, replacing
// what an earlier attempt of the shard left, and returns their records for
// the commit, in bucket order (the other part last).
func (m *Marks) Write(ctx context.Context, s storage.Store, id string, i, jobs int) ([]PartInfo, error) {
	return WriteParts(ctx, s, id, i, jobs, func(b int, mark func(storage.Digest), link func(Link)) {
		p := &m.other
		if b >= 0 {
			p = &m.buckets[b]
		}
		for _, d := range p.marks {
			mark(d)
		}
		for _, l := range p.links {
			link(l)
		}
		*p = part{} // handed over: its memory goes
	})
}

// Source gives the records of one part when WriteParts asks for it: its
// marked digests and the layer links it routes (see Marks), of bucket b (0
// to 255), or of the other part (b = -1). WriteParts asks for jobs parts
// at once, so that a mark shard holds the records of a few parts, not of
// every one, as text; a Source must be safe for concurrent use. A record
// handed for another part is refused.
type Source func(b int, mark func(storage.Digest), link func(Link))

// maxPartWriters bounds the parts WriteParts holds at once, whatever the
// jobs: each holds its records as digests and names, then as text, then
// compressed (at 1M blobs, N = 4, 64 at once made a mark shard's peak, 30
// MiB above the inventory; 16 PUTs at once still write 257 parts in 17
// round trips).
const maxPartWriters = 16

// WriteParts writes every non-empty part of mark shard i of run id as src
// gives them, replacing what an earlier attempt of the shard left, and
// returns their records for the commit, in bucket order (the other part
// last).
func WriteParts(ctx context.Context, s storage.Store, id string, i, jobs int, src Source) ([]PartInfo, error) {
	// A part is some hundred KiB of text: a window of 1 MiB loses nothing
	// against the default's 8 MiB, whose history buffers (16 MiB) were the
	// largest thing a mark shard held while writing its parts.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	var (
		mu    sync.Mutex
		infos []PartInfo
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(min(max(jobs, 1), maxPartWriters))
	for b := range Buckets + 1 {
		if b == Buckets {
			b = -1
		}
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			var p part
			var bad error
			src(b, func(d storage.Digest) {
				p.marks = append(p.marks, d)
			}, func(l Link) {
				p.links = append(p.links, l)
			})
			for _, d := range p.marks {
				if bad == nil && partOf(d) != b {
					bad = fmt.Errorf("mark %s handed for part %d", d, b)
				}
			}
			for _, l := range p.links {
				if bad == nil && partOf(l.route()) != b {
					bad = fmt.Errorf("link %s %s handed for part %d", l.Repo, l.Digest, b)
				}
			}
			if bad != nil {
				return bad
			}
			if len(p.marks)+len(p.links) == 0 {
				return nil
			}
			raw := p.encode()
			info := PartInfo{Bucket: b, RawSize: int64(len(raw)), Marks: len(p.marks), Links: len(p.links)}
			p = part{}
			data := enc.EncodeAll(raw, nil)
			raw = nil
			sum := sha256.Sum256(data)
			info.Size, info.SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
			if err := replace(gctx, s, MarkPartKey(id, i, b), data); err != nil {
				return err
			}
			mu.Lock()
			infos = append(infos, info)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("write mark parts of shard %d: %w", i, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("write mark parts of shard %d: %w", i, err)
	}
	slices.SortFunc(infos, func(a, b PartInfo) int {
		return cmp.Compare(uint(a.Bucket), uint(b.Bucket)) // -1 (other) last
	})
	return infos, nil
}

// maxPart bounds one stored part, compressed or not: a bucket of a mark
// shard of a registry of 10⁹ objects holds about 10⁹ / 256 / N records.
const maxPart = 4 << 30

// ReadPart reads one part that mark shard shard of run r committed (info,
// from its commit), checks it against the commit (size, sha256,
// decompressed size, record counts) and parses it; every record is
// checked (digests, repository names, times) and must belong to the part:
// its routing digest in the part's bucket, a layer link's repository one
// that the shard owns. Anything else is refused: the run folder is
// untrusted.
func ReadPart(ctx context.Context, s storage.Store, r *Run, shard int, info PartInfo, add func(marks []storage.Digest, links []Link)) error {
	key := MarkPartKey(r.ID, shard, info.Bucket)
	bad := func(format string, a ...any) error {
		return fmt.Errorf("mark part %s/%s: %s", s, key, fmt.Sprintf(format, a...))
	}
	if info.Size < 0 || info.Size > maxPart || info.RawSize < int64(len(partHeader)) || info.RawSize > maxPart {
		return bad("sizes %d and %d out of range", info.Size, info.RawSize)
	}
	data, _, err := s.ReadFile(ctx, key, info.Size)
	if err != nil {
		return fmt.Errorf("read mark part: %w", err)
	}
	sum := sha256.Sum256(data)
	if int64(len(data)) != info.Size || hex.EncodeToString(sum[:]) != info.SHA256 {
		return bad("not the file its commit names (%d bytes, sha256 %x; commit says %d bytes, %s)", len(data), sum, info.Size, info.SHA256)
	}
	marks, links, err := decodePart(data, info, func(repo string) bool { return RepoShard(repo, r.Shards) == shard })
	if err != nil {
		return bad("%v", err)
	}
	add(marks, links)
	return nil
}

// decodePart decompresses and parses a stored part that info describes
// (its size and sha256 already checked), whose layer links must be of
// repositories owned says are the shard's.
func decodePart(data []byte, info PartInfo, owned func(repo string) bool) ([]storage.Digest, []Link, error) {
	if info.RawSize < int64(len(partHeader)) || info.RawSize > maxPart {
		return nil, nil, fmt.Errorf("decompressed size %d out of range", info.RawSize)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(max(info.RawSize, 8<<20))))
	if err != nil {
		return nil, nil, err
	}
	defer dec.Close()
	raw, err := dec.DecodeAll(data, make([]byte, 0, min(info.RawSize, 64<<20)))
	if err != nil {
		return nil, nil, fmt.Errorf("zstd: %w", err)
	}
	if int64(len(raw)) != info.RawSize {
		return nil, nil, fmt.Errorf("%d bytes decompressed, commit says %d", len(raw), info.RawSize)
	}
	marks, links, err := parsePart(raw, info.Bucket)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range links {
		if !owned(l.Repo) {
			return nil, nil, fmt.Errorf("layer link of repository %q, which this mark shard does not own", l.Repo)
		}
	}
	if len(marks) != info.Marks || len(links) != info.Links {
		return nil, nil, fmt.Errorf("%d marks and %d links, commit says %d and %d", len(marks), len(links), info.Marks, info.Links)
	}
	return marks, links, nil
}

// parsePart parses a decompressed part of bucket b (-1: other).
func parsePart(raw []byte, b int) ([]storage.Digest, []Link, error) {
	if !bytes.HasPrefix(raw, []byte(partHeader)) {
		return nil, nil, errors.New("no part header")
	}
	inPart := func(d storage.Digest) bool {
		if _, ok := d.Sum256(); ok {
			return BucketOf(d) == b
		}
		return b < 0
	}
	var marks []storage.Digest
	var links []Link
	sc := bufio.NewScanner(bytes.NewReader(raw[len(partHeader):]))
	sc.Buffer(nil, 4096)
	line := 1
	for sc.Scan() {
		line++
		f := strings.Split(sc.Text(), " ")
		fail := func(format string, a ...any) ([]storage.Digest, []Link, error) {
			return nil, nil, fmt.Errorf("line %d: %s", line, fmt.Sprintf(format, a...))
		}
		digest := func(s string) (storage.Digest, error) {
			d, err := storage.ParseDigest(s)
			if err != nil {
				return d, err
			}
			if d.String() != s {
				return d, fmt.Errorf("digest %q not in canonical form", s)
			}
			return d, nil
		}
		switch {
		case f[0] == "m" && len(f) == 2:
			d, err := digest(f[1])
			if err != nil {
				return fail("%v", err)
			}
			if !inPart(d) {
				return fail("%s does not belong to this part", d)
			}
			marks = append(marks, d)
		case f[0] == "l" && len(f) == 4, f[0] == "a" && len(f) == 5:
			var l Link
			var err error
			l.Repo = f[1]
			if err := storage.ValidRepoName(l.Repo); err != nil {
				return fail("%v", err)
			}
			if l.Digest, err = digest(f[2]); err != nil {
				return fail("%v", err)
			}
			if f[0] == "a" {
				if l.Target, err = digest(f[3]); err != nil {
					return fail("%v", err)
				}
			}
			if l.ModTime, err = strconv.ParseInt(f[len(f)-1], 10, 64); err != nil || l.ModTime < 0 {
				return fail("modification time %q", f[len(f)-1])
			}
			if !inPart(l.route()) {
				return fail("%s does not belong to this part", l.route())
			}
			links = append(links, l)
		default:
			return fail("not a record: %.80q", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	if len(raw) > len(partHeader) && raw[len(raw)-1] != '\n' {
		return nil, nil, errors.New("last line unterminated")
	}
	return marks, links, nil
}
