package shard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/regsweep/regsweep/storage"
)

// Commit is written by a mark shard after its deletes and its parts: a
// sweep runs only once the commit of every mark shard exists.
type Commit struct {
	Format int    `json:"format"`
	Run    string `json:"run"`
	Shard  int    `json:"shard"`
	Shards int    `json:"shards"`
	// Parts lists the shard's parts, by bucket (the other part, -1, last).
	Parts []PartInfo `json:"parts"`
	// Sweepable is false when the shard's graph is incomplete (a kept
	// manifest unreadable, a repository left alone): then no blob of the
	// run is swept, as gc would sweep none.
	Sweepable bool `json:"sweepable"`
	// PolicyEffect is the shard's mark.PolicyEffect: report merges them.
	PolicyEffect json.RawMessage `json:"policy_effect,omitempty"`
	// Report is the shard's part of the run's report (a report.Report).
	Report json.RawMessage `json:"report"`
}

// SweepPart is written by a sweep shard when it is done.
type SweepPart struct {
	Format int    `json:"format"`
	Run    string `json:"run"`
	Shard  int    `json:"shard"`
	Shards int    `json:"shards"`
	// Report is the shard's part of the run's report (a report.Report).
	Report json.RawMessage `json:"report"`
}

// Sweep is what sweep.json holds: K, recorded by the first sweep shard.
type Sweep struct {
	Format int    `json:"format"`
	Run    string `json:"run"`
	Shards int    `json:"shards"`
}

// maxCommit bounds a commit or a sweep part: they hold a report, with a
// line per repository and per tag decision.
const maxCommit = 1 << 30

// WriteCommit writes mark shard c.Shard's commit, last: a commit left by an
// earlier attempt is replaced.
func WriteCommit(ctx context.Context, s storage.Store, c Commit) error {
	c.Format = Format
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := replace(ctx, s, MarkCommitKey(c.Run, c.Shard), data); err != nil {
		return fmt.Errorf("commit mark shard %d: %w", c.Shard, err)
	}
	return nil
}

// RemoveCommit removes mark shard i's commit, before a rerun of the shard
// redoes its work: no sweep may start on parts being rewritten.
func RemoveCommit(ctx context.Context, s storage.Store, id string, i int) error {
	return remove(ctx, s, MarkCommitKey(id, i))
}

// ReadCommit reads and validates mark shard i's commit; nil when it does
// not exist (yet).
func ReadCommit(ctx context.Context, s storage.Store, r *Run, i int) (*Commit, error) {
	key := MarkCommitKey(r.ID, i)
	b, _, err := s.ReadFile(ctx, key, maxCommit)
	if storage.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read mark commit: %w", err)
	}
	c, err := parseCommit(b, r, i)
	if err != nil {
		return nil, fmt.Errorf("mark commit %s/%s: %w", s, key, err)
	}
	return c, nil
}

// parseCommit parses and validates mark shard i's commit of run r.
func parseCommit(b []byte, r *Run, i int) (*Commit, error) {
	var c Commit
	if err := decodeStrict(b, &c); err != nil {
		return nil, err
	}
	if err := c.validate(r, i); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Commit) validate(r *Run, i int) error {
	switch {
	case c.Format != Format:
		return fmt.Errorf("format %d, want %d", c.Format, Format)
	case c.Run != r.ID || c.Shard != i || c.Shards != r.Shards:
		return fmt.Errorf("names run %q shard %d of %d, want %q shard %d of %d", c.Run, c.Shard, c.Shards, r.ID, i, r.Shards)
	case len(c.Report) == 0:
		return errors.New("no report")
	}
	last := -2
	for _, p := range c.Parts {
		if p.Bucket < -1 || p.Bucket >= Buckets {
			return fmt.Errorf("part of bucket %d out of range", p.Bucket)
		}
		b := p.Bucket
		if b == -1 {
			b = Buckets // last
		}
		if b <= last {
			return fmt.Errorf("part of bucket %d out of order", p.Bucket)
		}
		last = b
		if p.Size <= 0 || p.Size > maxPart || p.RawSize <= 0 || p.RawSize > maxPart || p.Marks < 0 || p.Links < 0 || len(p.SHA256) != 64 {
			return fmt.Errorf("part of bucket %d: sizes, counts or sha256 out of range", p.Bucket)
		}
	}
	return nil
}

// Commits reads the commit of every mark shard of r; missing lists the
// shards that have none yet.
func Commits(ctx context.Context, s storage.Store, r *Run) (commits []*Commit, missing []int, err error) {
	commits = make([]*Commit, r.Shards)
	for i := range r.Shards {
		c, err := ReadCommit(ctx, s, r, i)
		if err != nil {
			return nil, nil, err
		}
		if c == nil {
			missing = append(missing, i)
		}
		commits[i] = c
	}
	return commits, missing, nil
}

// ErrIncomplete is wrapped when a run's shards have not all committed.
var ErrIncomplete = errors.New("not every shard is done")

// Missing says which shards of n are missing: "mark shards 1, 4 of 7".
func Missing(what string, missing []int, n int) string {
	s := make([]string, len(missing))
	for i, m := range missing {
		s[i] = fmt.Sprint(m)
	}
	noun := what + " shard"
	if len(missing) > 1 {
		noun += "s"
	}
	return fmt.Sprintf("%s %s of %d", noun, strings.Join(s, ", "), n)
}

// JoinSweep records the sweep's shard count, or checks it against the one
// recorded: every sweep shard of a run must come with the same --shards.
func JoinSweep(ctx context.Context, s storage.Store, id string, k int) error {
	data, err := json.Marshal(Sweep{Format: Format, Run: id, Shards: k})
	if err != nil {
		return err
	}
	if err := create(ctx, s, SweepKey(id), data); err != nil && !errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("record sweep of run %s: %w", id, err)
	}
	got, err := ReadSweep(ctx, s, id)
	if err != nil {
		return err
	}
	if got == nil {
		return fmt.Errorf("run %s: %s/%s vanished", id, s, SweepKey(id))
	}
	if got.Shards != k {
		return fmt.Errorf("run %s: %w: --shards %d (its sweep has %d)", id, ErrOptions, k, got.Shards)
	}
	return nil
}

// ReadSweep reads sweep.json; nil when no sweep shard started.
func ReadSweep(ctx context.Context, s storage.Store, id string) (*Sweep, error) {
	var w Sweep
	found, err := readJSON(ctx, s, SweepKey(id), maxSmall, &w)
	if err != nil || !found {
		return nil, err
	}
	if w.Format != Format || w.Run != id || w.Shards < 1 || w.Shards > MaxShards {
		return nil, fmt.Errorf("run %s: %s/%s: format, run or shards out of range", id, s, SweepKey(id))
	}
	return &w, nil
}

// WriteSweepPart writes sweep shard p.Shard's part, replacing one an
// earlier attempt left.
func WriteSweepPart(ctx context.Context, s storage.Store, p SweepPart) error {
	p.Format = Format
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return replace(ctx, s, SweepPartKey(p.Run, p.Shard), data)
}

// SweepParts reads every sweep part of run id, of k shards; missing lists
// the shards without one.
func SweepParts(ctx context.Context, s storage.Store, id string, k int) (parts []*SweepPart, missing []int, err error) {
	parts = make([]*SweepPart, k)
	for j := range k {
		var p SweepPart
		found, err := readJSON(ctx, s, SweepPartKey(id, j), maxCommit, &p)
		if err != nil {
			return nil, nil, fmt.Errorf("read sweep part: %w", err)
		}
		if !found {
			missing = append(missing, j)
			continue
		}
		if p.Format != Format || p.Run != id || p.Shard != j || p.Shards != k || len(p.Report) == 0 {
			return nil, nil, fmt.Errorf("sweep part %s/%s: format, run, shard or report wrong", s, SweepPartKey(id, j))
		}
		parts[j] = &p
	}
	return parts, missing, nil
}
