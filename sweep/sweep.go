package sweep

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/mark"
	"github.com/regsweep/regsweep/storage"
)

// ErrPlanUsed is returned when a plan is swept twice.
var ErrPlanUsed = errors.New("plan already swept")

// Options tune a sweep.
type Options struct {
	// DryRun deletes nothing and counts what a real run would delete.
	DryRun bool
	// Jobs is how many delete batches run at once.
	Jobs int
}

// Counts are deletions by kind.
type Counts struct {
	Tags            int   `json:"tags_deleted"`
	Manifests       int   `json:"manifests_deleted"`
	TagIndexEntries int   `json:"tag_index_entries_deleted"`
	LayerLinks      int   `json:"layer_links_deleted"`
	Blobs           int   `json:"blobs_deleted"`
	Bytes           int64 `json:"bytes_reclaimed"`
	// Compaction.
	Uploads      int   `json:"uploads_deleted"`
	UploadBytes  int64 `json:"upload_bytes_reclaimed"`
	Multipart    int   `json:"multipart_uploads_aborted"`
	Repositories int   `json:"repositories_removed"`
}

// Failure is a key whose delete failed.
type Failure struct {
	Key string `json:"key"`
	Err string `json:"error"`
}

// Result is what a sweep did (or, dry, would do).
type Result struct {
	DryRun bool
	Total  Counts
	Repos  map[string]*Counts
	Failed []Failure
	// BlobsSkipped are blobs not deleted because a deletion before them
	// failed: a manifest that still stands may need them.
	BlobsSkipped int
	// Interrupted is set when the context ended before the sweep did.
	Interrupted bool
}

// Incomplete reports whether anything planned was left undone.
func (r *Result) Incomplete() bool {
	return len(r.Failed) > 0 || r.BlobsSkipped > 0 || r.Interrupted
}

// op is one key to delete and what its deletion counts for.
type op struct {
	key    string
	repo   string
	count  func(*Counts)
	size   int64
	reason string
}

// Execute deletes what plan selected. Each phase ends before the next
// starts, so that a run stopped at any instant has deleted references
// before what they reference and every kept tag is still served:
//
//  1. tags (current link, then history), so no tag points anywhere new;
//  2. tag history entries of deleted manifests, then their revision links;
//  3. layer links to blobs about to go (or gone), then stale uploads;
//  4. if every delete so far succeeded (a revision left standing by a
//     failed delete may still need its blobs): stale multipart uploads,
//     then blobs, then the folders of repositories compaction emptied.
//
// Per-key failures are recorded in Result.Failed and the sweep goes on:
// leftover garbage is safe, and the next run retries it.
func Execute(ctx context.Context, store storage.Store, plan *mark.Plan, opts Options, ctr storage.Counter) (*Result, error) {
	if !plan.Use() {
		return nil, ErrPlanUsed
	}
	if ctr == nil {
		ctr = storage.Nop{}
	}
	res := &Result{DryRun: opts.DryRun, Repos: make(map[string]*Counts)}
	for _, r := range plan.Repos {
		res.Repos[r] = &Counts{}
	}
	s := &sweeper{store: store, opts: opts, ctr: ctr, res: res}
	if opts.DryRun {
		s.store = storage.ReadOnly(store)
	}

	phases := buildPhases(plan)
	tagCurrent, tagIndex, revIndex, revs, layers, uploads, blobs := phases[0], phases[1], phases[2], phases[3], phases[4], phases[5], phases[6]
	ctr.SetMax(int64(len(tagCurrent) + len(tagIndex) + len(revIndex) + len(revs) + len(layers) + len(uploads) + len(blobs)))

	for _, phase := range [][]op{tagCurrent, tagIndex, revIndex, revs, layers, uploads} {
		if err := s.run(ctx, phase); err != nil {
			return res, err
		}
	}
	if len(res.Failed) > 0 {
		res.BlobsSkipped = len(blobs)
		return res, nil
	}
	s.abortMultipart(ctx, plan.Multipart)
	if err := s.run(ctx, blobs); err != nil {
		return res, err
	}
	return res, s.removeRepos(ctx, plan.EmptyRepos)
}

// abortMultipart aborts the stale multipart uploads of plan, Jobs at once.
func (s *sweeper) abortMultipart(ctx context.Context, ups []storage.MultipartUpload) {
	ms, ok := s.store.(storage.MultipartStore)
	if len(ups) == 0 || !ok && !s.opts.DryRun {
		return
	}
	g := new(errgroup.Group)
	g.SetLimit(max(s.opts.Jobs, 1))
	for _, u := range ups {
		if ctx.Err() != nil {
			s.mu.Lock()
			s.res.Interrupted = true
			s.mu.Unlock()
			break
		}
		g.Go(func() error {
			var err error
			if !s.opts.DryRun {
				err = ms.AbortMultipartUpload(context.WithoutCancel(ctx), u)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				s.res.Failed = append(s.res.Failed, Failure{Key: u.Key + " (multipart upload " + u.ID + ")", Err: err.Error()})
				return nil
			}
			s.res.Total.Multipart++
			return nil
		})
	}
	_ = g.Wait()
}

// removeRepos removes the folders of repositories compaction emptied, so the
// registry's catalog stops listing them. Only a store with real folders has
// anything left to remove; the keys are gone already. A repository with a
// failed delete, or holding anything but empty folders (a nested
// repository), stays.
func (s *sweeper) removeRepos(ctx context.Context, repos []string) error {
	if len(repos) == 0 || ctx.Err() != nil || len(s.res.Failed) > 0 {
		return nil
	}
	dr, ok := s.store.(storage.DirRemover)
	for _, name := range repos {
		if !s.opts.DryRun && ok {
			for _, dir := range []string{storage.ManifestsDir(name), storage.LayersDir(name), storage.UploadsDir(name)} {
				if err := dr.RemoveEmptyDirs(ctx, dir); err != nil {
					s.res.Failed = append(s.res.Failed, Failure{Key: dir, Err: err.Error()})
				}
			}
			if entries, err := s.store.ReadDir(ctx, storage.RepoDir(name)); err == nil && len(entries) == 0 {
				_ = dr.RemoveEmptyDirs(ctx, storage.RepoDir(name))
			}
		}
		s.res.Total.Repositories++
		if c := s.res.Repos[name]; c != nil {
			c.Repositories++
		}
	}
	return nil
}

// Phase names, in the order Execute runs them.
var phaseNames = [...]string{"tag", "tag", "history", "manifest", "layer link", "upload", "blob"}

// buildPhases turns a plan into the keys of each phase, in order.
func buildPhases(plan *mark.Plan) [7][]op {
	var tagCurrent, tagIndex, revIndex, revs, layers, uploads, blobs []op
	for _, t := range plan.Tags {
		// A tag counts once, on its first key: the current link if it has
		// one (the registry stops serving the tag when it goes).
		first := true
		count := func() func(*Counts) {
			if first {
				first = false
				return func(c *Counts) { c.Tags++ }
			}
			return func(*Counts) {}
		}
		if t.HasCurrent {
			tagCurrent = append(tagCurrent, op{storage.TagCurrentPath(t.Repo, t.Name), t.Repo, count(), 0, t.Reason})
		}
		for _, d := range t.Index {
			tagIndex = append(tagIndex, op{storage.TagIndexLinkPath(t.Repo, t.Name, d), t.Repo, count(), 0, t.Reason})
		}
	}
	for _, r := range plan.Revisions {
		for _, tag := range r.TagIndex {
			revIndex = append(revIndex, op{storage.TagIndexLinkPath(r.Repo, tag, r.Digest), r.Repo, func(c *Counts) { c.TagIndexEntries++ }, 0, "history of a deleted manifest"})
		}
		revs = append(revs, op{storage.RevisionLinkPath(r.Repo, r.Digest), r.Repo, func(c *Counts) { c.Manifests++ }, 0, "untagged manifest"})
	}
	for _, e := range plan.OrphanIndex {
		revIndex = append(revIndex, op{storage.TagIndexLinkPath(e.Repo, e.Tag, e.Digest), e.Repo, func(c *Counts) { c.TagIndexEntries++ }, 0, "history of a manifest the repository no longer holds"})
	}
	for _, u := range plan.Uploads {
		for i, k := range u.Keys {
			count := func(*Counts) {}
			if i == 0 {
				size := u.Size
				count = func(c *Counts) { c.Uploads++; c.UploadBytes += size }
			}
			uploads = append(uploads, op{k, u.Repo, count, 0, "stale upload " + u.ID})
		}
	}
	for _, l := range plan.LayerLinks {
		layers = append(layers, op{storage.LayerLinkPath(l.Repo, l.Digest), l.Repo, func(c *Counts) { c.LayerLinks++ }, 0, "link to a blob deleted or gone, or of an empty repository"})
	}
	for _, b := range plan.Blobs {
		size := b.Size
		blobs = append(blobs, op{storage.BlobDataPath(b.Digest), b.Repo, func(c *Counts) { c.Blobs++; c.Bytes += size }, size, "referenced by no kept manifest"})
	}
	return [7][]op{tagCurrent, tagIndex, revIndex, revs, layers, uploads, blobs}
}

// Entry is one key a plan deletes, for listings.
type Entry struct {
	Kind   string `json:"kind"`
	Key    string `json:"key"`
	Repo   string `json:"repository,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Reason string `json:"reason"`
}

// Entries lists every key plan deletes, in the order Execute deletes them.
func Entries(plan *mark.Plan) []Entry {
	var out []Entry
	for i, ph := range buildPhases(plan) {
		for _, o := range ph {
			out = append(out, Entry{Kind: phaseNames[i], Key: o.key, Repo: o.repo, Size: o.size, Reason: o.reason})
		}
	}
	return out
}

type sweeper struct {
	store storage.Store
	opts  Options
	ctr   storage.Counter

	mu  sync.Mutex
	res *Result
}

// run deletes one phase's keys in batches, Jobs batches at a time. It stops
// starting batches when ctx ends; batches in flight finish.
func (s *sweeper) run(ctx context.Context, ops []op) error {
	if ctx.Err() != nil {
		s.res.Interrupted = true
		return nil
	}
	done := func(o op, err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				s.res.Interrupted = true
				return
			}
			s.res.Failed = append(s.res.Failed, Failure{Key: o.key, Err: err.Error()})
			return
		}
		o.count(&s.res.Total)
		if c := s.res.Repos[o.repo]; c != nil {
			o.count(c)
		}
		s.ctr.Add(1)
	}
	jobs := max(s.opts.Jobs, 1)
	size := max(s.store.BatchSize(), 1)
	if !s.store.FlatListing() {
		// One system call a key: spread the keys over every job. A store
		// with request batches (S3) gets full batches, fewer requests.
		size = min(size, max(1, (len(ops)+jobs-1)/jobs))
	}
	// Keys run to the store through a context that outlives the caller's,
	// so that a delete in flight completes; no new batch starts after ctx ends.
	g := new(errgroup.Group)
	g.SetLimit(jobs)
	for start := 0; start < len(ops); start += size {
		if ctx.Err() != nil {
			s.mu.Lock()
			s.res.Interrupted = true
			s.mu.Unlock()
			break
		}
		batch := ops[start:min(start+size, len(ops))]
		g.Go(func() error {
			if s.opts.DryRun {
				for _, o := range batch {
					done(o, nil)
				}
				return nil
			}
			keys := make([]string, len(batch))
			byKey := make(map[string]op, len(batch))
			for i, o := range batch {
				keys[i] = o.key
				byKey[o.key] = o
			}
			s.store.Delete(context.WithoutCancel(ctx), keys, func(key string, err error) {
				o, ok := byKey[key]
				if !ok { // a store answering for a key it was not given
					o = op{key: key, count: func(*Counts) {}}
				}
				done(o, err)
			})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	return nil
}
