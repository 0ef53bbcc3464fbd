package shard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/regsweep/regsweep/storage"
)

// Dir is the folder of every sharded run, at the storage root and outside
// docker/, so that the registry never sees it.
const Dir = "regsweep/runs"

// MaxShards bounds --shards: a sweep shard takes at least one of the
// Buckets, and a mark shard's files are listed in its commit.
const MaxShards = Buckets

// Buckets is how many ranges of blob prefixes a mark shard splits what it
// writes into: the first byte of a digest's sum (its first two hex digits).
// A sweep shard reads a contiguous run of them (SweepRange), whatever K is.
const Buckets = 256

// Format is the version of the run folder's files.
const Format = 1

// MaxRunID bounds a run ID's length: a shard's trash folder name is the
// ID and at most 10 more bytes (TrashRun), and such a name has at most 64.
const MaxRunID = 48

// ValidRunID checks a run ID: 1 to 48 letters, digits, '.', '_' or '-',
// not starting with '.' or '-'. It becomes a folder name in the storage.
func ValidRunID(id string) error {
	if id == "" || len(id) > MaxRunID {
		return fmt.Errorf("run ID %.70q: want 1 to %d characters", id, MaxRunID)
	}
	for i, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (i > 0 && (c == '.' || c == '-'))
		if !ok {
			return fmt.Errorf("run ID %q: want letters, digits, '_', '.' or '-' (not first)", id)
		}
	}
	return nil
}

// RepoShard is the mark shard of n that owns repository name: FNV-1a of
// the name, modulo n. It never changes for a given name and n, so that a
// rerun shard takes the same repositories.
func RepoShard(name string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int(h.Sum64() % uint64(n))
}

// KeyShard is the mark shard of n that owns a key of the layout: the
// shard of its repository, or shard 0 for a key outside every repository.
// A mark shard aborts the incomplete multipart uploads of the keys it owns.
func KeyShard(key string, n int) int {
	k, err := storage.ParseKey(key)
	if err != nil || k.Repo == "" {
		return 0
	}
	return RepoShard(k.Repo, n)
}

// BucketOf is the bucket of d: the first byte of its sum.
func BucketOf(d storage.Digest) int {
	hx := d.Hex()
	b, _ := strconv.ParseUint(hx[:2], 16, 8)
	return int(b)
}

// SweepRange is the buckets [lo, hi) of sweep shard j of k.
func SweepRange(j, k int) (lo, hi int) {
	return j * Buckets / k, (j + 1) * Buckets / k
}

// TrashRun is the trash folder (storage.TrashDir/<name>) into which,
// on a filesystem, the shard what (mark or sweep) i of run id moves what it
// deletes, and which it frees once done: "ID.mark-3". Each shard has its
// own, so that one freeing its trash never frees what another is moving.
func TrashRun(id, what string, i int) string { return fmt.Sprintf("%s.%s-%d", id, what, i) }

// Keys of the run folder. Every name is made from a validated run ID and
// numbers, never from what was read.

// RunDir is the folder of run id.
func RunDir(id string) string { return Dir + "/" + id }

// RunKey holds the run's options (Run), written by the first mark shard.
func RunKey(id string) string { return RunDir(id) + "/run.json" }

// MarkPartKey is mark shard i's part for bucket b; b = -1 is its part for
// digests of other algorithms than sha256, which every sweep shard reads.
func MarkPartKey(id string, i, b int) string {
	if b < 0 {
		return fmt.Sprintf("%s/mark/%d/other.zst", RunDir(id), i)
	}
	return fmt.Sprintf("%s/mark/%d/%02x.zst", RunDir(id), i, b)
}

// MarkCommitKey is mark shard i's commit, written after its parts.
func MarkCommitKey(id string, i int) string { return fmt.Sprintf("%s/mark/%d.commit", RunDir(id), i) }

// SweepKey holds the sweep's shard count, written by the first sweep shard.
func SweepKey(id string) string { return RunDir(id) + "/sweep.json" }

// SweepPartKey is sweep shard j's report part, written when it is done.
func SweepPartKey(id string, j int) string { return fmt.Sprintf("%s/sweep/%d.json", RunDir(id), j) }

// Options are the options of a run that decide what it deletes, recorded
// by its first mark shard; every other shard must run with the same.
type Options struct {
	DeleteUntagged bool          `json:"delete_untagged"`
	MinAge         time.Duration `json:"min_age"`
	PolicyText     string        `json:"policy_text,omitempty"`
	AllowDeleteAll bool          `json:"allow_delete_all"`
	Compact        []string      `json:"compact"`
	UploadMaxAge   time.Duration `json:"upload_max_age"`
}

// Run is what run.json holds.
type Run struct {
	Format int    `json:"format"`
	ID     string `json:"run"`
	// Shards is N, the number of mark shards.
	Shards int `json:"shards"`
	// StartedAt is when the first mark shard started: every shard's cutoff
	// (StartedAt - MinAge) is taken from it.
	StartedAt time.Time `json:"started_at"`
	// PolicyFile names the first mark shard's policy file, for the report;
	// what counts is Options.PolicyText.
	PolicyFile string  `json:"policy_file,omitempty"`
	Options    Options `json:"options"`
}

// Same reports why o differs from r's options, or "".
func (r *Run) differs(shards int, o Options) string {
	var d []string
	if r.Shards != shards {
		d = append(d, fmt.Sprintf("--shards %d (run has %d)", shards, r.Shards))
	}
	a, _ := json.Marshal(r.Options)
	b, _ := json.Marshal(o)
	if !bytes.Equal(a, b) {
		d = append(d, fmt.Sprintf("options %s (run has %s)", b, a))
	}
	return strings.Join(d, ", ")
}

// ErrOptions is wrapped when a shard is run with other options than its run.
var ErrOptions = errors.New("options differ from the run's")

// maxSmall bounds the small JSON files of the run folder.
const maxSmall = 16 << 20

// Create writes key with data, replacing nothing: a file already there is
// an error wrapping storage.ErrExists.
func create(ctx context.Context, s storage.Store, key string, data []byte) error {
	c := storage.CapabilitiesOf(s).Creator
	if c == nil {
		return fmt.Errorf("write %s: %w", key, storage.ErrCannotCreate)
	}
	return c.Create(ctx, key, bytes.NewReader(data), int64(len(data)), time.Time{})
}

// replace writes key with data, removing what a killed earlier attempt of
// the same shard left there.
func replace(ctx context.Context, s storage.Store, key string, data []byte) error {
	if err := remove(ctx, s, key); err != nil {
		return err
	}
	return create(ctx, s, key, data)
}

func remove(ctx context.Context, s storage.Store, key string) error {
	var derr error
	s.Delete(ctx, []string{key}, func(_ string, err error) {
		if err != nil && !storage.IsNotFound(err) {
			derr = err
		}
	})
	if derr != nil {
		return fmt.Errorf("remove %s: %w", key, derr)
	}
	return nil
}

// readJSON reads key, at most limit bytes, strictly into v; found is false
// when it is missing.
func readJSON(ctx context.Context, s storage.Store, key string, limit int64, v any) (found bool, err error) {
	b, _, err := s.ReadFile(ctx, key, limit)
	if storage.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := decodeStrict(b, v); err != nil {
		return true, fmt.Errorf("%s/%s: %w", s, key, err)
	}
	return true, nil
}

// decodeStrict decodes b, one JSON value, into v: an unknown field or
// anything after the value is an error.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// Join records the run's options, or checks them against those recorded:
// the first mark shard writes run.json, every other shard (and a rerun)
// must come with the same shard count and options, or is refused. It
// returns the run as recorded, whose StartedAt every shard uses.
func Join(ctx context.Context, s storage.Store, r Run) (*Run, error) {
	r.Format = Format
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	key := RunKey(r.ID)
	err = create(ctx, s, key, data)
	if err != nil && !errors.Is(err, storage.ErrExists) {
		return nil, fmt.Errorf("record run %s: %w", r.ID, err)
	}
	got, err := ReadRun(ctx, s, r.ID)
	if err != nil {
		return nil, err
	}
	if d := got.differs(r.Shards, r.Options); d != "" {
		return nil, fmt.Errorf("run %s: %w: %s; rerun with the run's options, or start another run ID", r.ID, ErrOptions, d)
	}
	return got, nil
}

// ReadRun reads and validates run.json.
func ReadRun(ctx context.Context, s storage.Store, id string) (*Run, error) {
	b, _, err := s.ReadFile(ctx, RunKey(id), maxSmall)
	if storage.IsNotFound(err) {
		return nil, fmt.Errorf("run %s: no %s/%s: no mark shard of this run has started", id, s, RunKey(id))
	}
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", id, err)
	}
	r, err := parseRun(b, id)
	if err != nil {
		return nil, fmt.Errorf("run %s: %s/%s: %w", id, s, RunKey(id), err)
	}
	return r, nil
}

// parseRun parses and validates run id's run.json.
func parseRun(b []byte, id string) (*Run, error) {
	var r Run
	if err := decodeStrict(b, &r); err != nil {
		return nil, err
	}
	var err error
	switch {
	case r.Format != Format:
		err = fmt.Errorf("format %d, want %d", r.Format, Format)
	case r.ID != id:
		err = fmt.Errorf("names run %q", r.ID)
	case r.Shards < 1 || r.Shards > MaxShards:
		err = fmt.Errorf("shards %d out of range", r.Shards)
	case r.StartedAt.IsZero():
		err = errors.New("no start time")
	case r.Options.MinAge < 0 || r.Options.UploadMaxAge < 0:
		err = errors.New("negative age")
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// RemoveRun removes the run folder of run id: every file under it (parts,
// commits, report parts, what killed writes left), then, on a store with
// folders, its folders. It returns how many files went. The caller holds
// the run's lock and knows the run complete.
func RemoveRun(ctx context.Context, s storage.Store, id string) (int, error) {
	if err := ValidRunID(id); err != nil {
		return 0, err
	}
	dir := RunDir(id)
	var keys []string
	err := s.Walk(ctx, dir, func(o storage.Object) error {
		if !strings.HasPrefix(o.Key, dir+"/") {
			return fmt.Errorf("remove run %s: %s/%s is outside %s", id, s, o.Key, dir)
		}
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil && !storage.IsNotFound(err) {
		return 0, fmt.Errorf("remove run %s: %w", id, err)
	}
	removed := 0
	var errs []error
	var mu sync.Mutex
	for batch := range slices.Chunk(keys, max(s.BatchSize(), 1)) {
		s.Delete(ctx, batch, func(key string, err error) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil || storage.IsNotFound(err):
				removed++
			default:
				errs = append(errs, fmt.Errorf("remove %s/%s: %w", s, key, err))
			}
		})
	}
	if err := errors.Join(errs...); err != nil {
		return removed, err
	}
	if dr := storage.CapabilitiesOf(s).DirRemover; dr != nil {
		// The run's folders, then regsweep/runs and regsweep/ if that
		// leaves them empty (a folder holding a file always stays).
		for _, d := range []string{dir, path.Dir(Dir)} {
			if err := dr.RemoveEmptyDirs(ctx, d); err != nil && !storage.IsNotFound(err) {
				return removed, fmt.Errorf("remove run %s: %w", id, err)
			}
		}
	}
	return removed, nil
}
