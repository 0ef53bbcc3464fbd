package sweep

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"path"
	"slices"
	"sync"
	"sync/atomic"

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
	// Trash, when set on a store that is a storage.Trasher, is the run
	// folder of the trash into which every key is moved (one rename a
	// unit, see storage.TrashUnit) instead of deleted; FreeTrash frees it
	// later. A key the trash cannot take (storage.ErrNoTrash: another
	// filesystem) is deleted in place, and so is every key after it.
	Trash string
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
	// Skipped are the manifests, their history entries and the layer
	// links not deleted because a tag of their repository could not be
	// deleted: the tag stays, and so does everything it may reach.
	Skipped int
	// Interrupted is set when the context ended before the sweep did.
	Interrupted bool
	// Trashed counts the keys moved into the trash rather than deleted.
	Trashed int
	// TrashFallback says why keys were deleted in place though a trash
	// was asked for (the first storage.ErrNoTrash met); empty otherwise.
	TrashFallback string
}

// Incomplete reports whether anything planned was left undone.
func (r *Result) Incomplete() bool {
	return len(r.Failed) > 0 || r.BlobsSkipped > 0 || r.Interrupted
}

// An op is one key to delete, named by its place in the plan: kind is the
// plan list, index the item in it, sub the key within the item (a tag's
// history entry, an upload's key). Ops stream from the plan into batches,
// so only the batches in flight exist, never a phase (a million keys on a
// large registry): the key is made when its batch is sent, and the
// repository, size and counts are read from the plan when its result comes
// back (a key, a repository name, a reason and a closure for every key of
// every phase took some 180 bytes a key). int32 indexes, like
// mark.RepoIndex: a plan list never holds 2^31 items.
type op struct {
	kind  opKind
	index int32
	sub   int32
}

type opKind uint8

const (
	// kindNone is the zero op: a key the store answered for though it was
	// not given it. It counts nothing.
	kindNone       opKind = iota
	kindTagCurrent        // Tags[index]'s current link
	kindHistory           // History[index]
	kindRevision          // Revisions[index]
	kindLayerLink         // LayerLinks[index]
	kindUpload            // Uploads[index].Files[sub]
	kindBlob              // Blobs[index]
)

// Execute deletes what plan selected. Each phase ends before the next
// starts, so that a run stopped at any instant has deleted references
// before what they reference and every kept tag is still served:
//
//  1. tags' current links, so no tag points anywhere new;
//  2. tag history entries (of deleted tags, of deleted manifests, of
//     manifests gone), then revision links;
//  3. layer links to blobs about to go (or gone), then stale uploads:
//     every file of theirs but startedat, then (unless another file of the
//     upload failed) startedat, so that an upload a stopped run left half
//     deleted still has the start time that makes it stale (without one it
//     counts as young, and would stay forever);
//  4. if every delete so far succeeded (a revision left standing by a
//     failed delete may still need its blobs): stale multipart uploads,
//     then blobs, then the folders of repositories compaction emptied.
//
// A tag whose current link could not be deleted stays, and the registry
// still serves it: phases 2 and 3 then skip its repository's history
// entries, manifests and layer links (the tag's whole closure is among them,
// reachability being per repository), and phase 4 does not run.
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
	s := &sweeper{store: store, plan: plan, opts: opts, ctr: ctr, res: res, repoErr: repoErrs(plan), bare: bareTagsOf(plan)}
	if opts.DryRun {
		s.store = storage.ReadOnly(store)
	}

	total := 0
	for ph := range numPhases {
		total += phaseLen(plan, ph)
	}
	ctr.SetMax(int64(total))

	for ph := range phaseBlobs {
		if err := s.run(ctx, ph); err != nil {
			return res, err
		}
	}
	s.removeUploadFolders(ctx)
	if len(res.Failed) > 0 {
		res.BlobsSkipped = phaseLen(plan, phaseBlobs)
		return res, nil
	}
	s.abortMultipart(ctx, plan.Multipart)
	if err := s.run(ctx, phaseBlobs); err != nil {
		return res, err
	}
	s.removeRevisionFolders(ctx, plan.RevisionFolders)
	return res, s.removeRepos(ctx, plan.EmptyRepos)
}

// FreeTrash frees every run folder of t's trash but keep's ("" for none):
// a trash this run made, or one a run killed before freeing it left, or
// one kept (--keep-trash) by an earlier run. The folders of a run are
// freed Jobs at once. It returns the runs freed; the first error stops it
// (what is left is freed by the next run).
func FreeTrash(ctx context.Context, t storage.Trasher, keep string, jobs int) ([]string, error) {
	runs, err := t.Trashes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list trash: %w", err)
	}
	var freed []string
	for _, run := range runs {
		if run == keep {
			continue
		}
		if err := FreeTrashRun(ctx, t, run, jobs); err != nil {
			return freed, err
		}
		freed = append(freed, run)
	}
	return freed, nil
}

// FreeTrashRun frees the run folder run of t's trash, its folders Jobs at
// once. A shard of a sharded run frees its own this way, leaving those of
// the shards still moving into theirs.
func FreeTrashRun(ctx context.Context, t storage.Trasher, run string, jobs int) error {
	parts, err := t.TrashParts(ctx, run)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for _, p := range parts {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return t.RemoveTrash(gctx, run, p) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return t.RemoveTrash(ctx, run, "")
}

// RestoreTrash renames every unit of run's trash back into the layout, a
// rank at a time in restore's order (storage.Trasher.TrashUnits), the
// units of a rank Jobs batches at once: each job renames its own
// contiguous part of the sorted rank, so that jobs work in folders far
// apart and each resolves its folders once. fn is called once per unit
// (never twice at once) with nil or the error that left it in the trash.
// When ctx ends no batch starts and the ranks not begun stay in the
// trash; the error is ctx's. The trash's folders left empty are removed.
func RestoreTrash(ctx context.Context, t storage.Trasher, run string, jobs int, fn func(unit string, err error)) error {
	var mu sync.Mutex
	report := func(unit string, err error) {
		mu.Lock()
		defer mu.Unlock()
		fn(unit, err)
	}
	ranks, err := t.TrashUnits(ctx, run, report)
	if err != nil {
		return err
	}
	const batch = 256
	for _, units := range ranks {
		parts := min(max(jobs, 1), len(units))
		var wg sync.WaitGroup
		for i := range parts {
			part := units[i*len(units)/parts : (i+1)*len(units)/parts]
			wg.Go(func() {
				for b := range slices.Chunk(part, batch) {
					if ctx.Err() != nil {
						return
					}
					t.RestoreTrash(ctx, run, b, report)
				}
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return t.PruneTrash(ctx, run)
}

// removeUploadFolders removes the folders of the planned uploads that hold
// no file (what a run stopped while deleting an upload leaves), on a store
// with folders; the folders of uploads whose files the upload phases
// deleted went with their last file. Only empty folders are removed.
func (s *sweeper) removeUploadFolders(ctx context.Context) {
	dr := storage.CapabilitiesOf(s.store).DirRemover
	if dr == nil || s.opts.DryRun {
		return
	}
	for _, u := range s.plan.Uploads {
		if len(u.Files) > 0 {
			continue
		}
		if ctx.Err() != nil {
			s.mu.Lock()
			s.res.Interrupted = true
			s.mu.Unlock()
			return
		}
		repo := s.plan.Repo(u.Repo)
		started := storage.UploadStartedAtPath(repo, u.ID)
		dir := path.Dir(started)
		k, err := storage.ParseKey(started)
		if repoErr, listed := s.repoErr[repo]; err == nil && (k.Kind != storage.KeyUploadFile || k.Repo != repo || k.Upload != u.ID || !listed || repoErr != nil) {
			err = fmt.Errorf("%s: not an upload folder of a repository the walk listed with a name in the grammar", dir)
		}
		if err == nil {
			err = dr.RemoveEmptyDirs(context.WithoutCancel(ctx), dir)
		} else {
			err = fmt.Errorf("%w: %w", errRefused, err)
		}
		if err != nil {
			s.mu.Lock()
			s.res.Failed = append(s.res.Failed, Failure{Key: dir, Err: err.Error()})
			s.mu.Unlock()
		}
	}
}

// removeRevisionFolders removes the empty folders of manifests deleted
// through the registry's API, Jobs at once, on a store with folders. A
// folder that is not empty (the manifest pushed again since) stays: only
// empty folders are removed, never a file.
func (s *sweeper) removeRevisionFolders(ctx context.Context, folders []mark.Revision) {
	dr := storage.CapabilitiesOf(s.store).DirRemover
	if len(folders) == 0 || dr == nil || s.opts.DryRun {
		return
	}
	g := new(errgroup.Group)
	g.SetLimit(max(s.opts.Jobs, 1))
	for _, f := range folders {
		repo := s.plan.Repo(f.Repo)
		link := storage.RevisionLinkPath(repo, s.plan.Digest(f.ID))
		k, err := storage.ParseKey(link)
		if repoErr, listed := s.repoErr[repo]; err == nil && (k.Kind != storage.KeyRevisionLink || k.Repo != repo || !listed || repoErr != nil) {
			err = fmt.Errorf("%s: not a revision folder of a repository the walk listed with a name in the grammar", path.Dir(link))
		}
		if err != nil {
			s.mu.Lock()
			s.res.Failed = append(s.res.Failed, Failure{Key: path.Dir(link), Err: fmt.Errorf("%w: %w", errRefused, err).Error()})
			s.mu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			s.mu.Lock()
			s.res.Interrupted = true
			s.mu.Unlock()
			break
		}
		g.Go(func() error {
			dir := path.Dir(link)
			if err := dr.RemoveEmptyDirs(context.WithoutCancel(ctx), dir); err != nil {
				s.mu.Lock()
				s.res.Failed = append(s.res.Failed, Failure{Key: dir, Err: err.Error()})
				s.mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
}

// abortMultipart aborts the stale multipart uploads of plan, Jobs at once.
// Only uploads of an upload file of a repository the walk listed are
// aborted.
func (s *sweeper) abortMultipart(ctx context.Context, ups []storage.MultipartUpload) {
	checked := make([]storage.MultipartUpload, 0, len(ups))
	for _, u := range ups {
		k, err := storage.ParseKey(u.Key)
		if err == nil && k.Kind != storage.KeyUploadFile {
			err = fmt.Errorf("%s: not an upload file", u.Key)
		}
		if repoErr, listed := s.repoErr[k.Repo]; err == nil && (!listed || repoErr != nil) {
			err = fmt.Errorf("%s: not in a repository the walk listed with a name in the grammar", u.Key)
		}
		if err != nil {
			s.res.Failed = append(s.res.Failed, Failure{Key: u.Key + " (multipart upload " + u.ID + ")", Err: fmt.Errorf("%w: %w", errRefused, err).Error()})
			continue
		}
		checked = append(checked, u)
	}
	ms := storage.CapabilitiesOf(s.store).Multipart
	if len(checked) == 0 || ms == nil && !s.opts.DryRun {
		return
	}
	g := new(errgroup.Group)
	g.SetLimit(max(s.opts.Jobs, 1))
	for _, u := range checked {
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
func (s *sweeper) removeRepos(ctx context.Context, repos []mark.RepoIndex) error {
	if len(repos) == 0 || ctx.Err() != nil || len(s.res.Failed) > 0 {
		return nil
	}
	dr := storage.CapabilitiesOf(s.store).DirRemover
	for _, i := range repos {
		name := s.plan.Repo(i)
		if err, listed := s.repoErr[name]; !listed || err != nil {
			if err == nil {
				err = errors.New("not a repository the walk listed")
			}
			s.res.Failed = append(s.res.Failed, Failure{Key: storage.RepoDir(name), Err: fmt.Errorf("%w: %w", errRefused, err).Error()})
			continue
		}
		if !s.opts.DryRun && dr != nil {
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

// Phases, in the order Execute runs them.
const (
	phaseTagCurrent = iota
	phaseHistory
	phaseRevisions
	phaseLayerLinks
	phaseUploads      // every file of an upload but startedat
	phaseUploadStarts // startedat, once the upload's other files are gone
	phaseBlobs
	numPhases
)

// Phase names, for listings.
var phaseNames = [numPhases]string{"tag", "history", "manifest", "layer link", "upload", "upload", "blob"}

// uploadStarted is the file of an upload folder holding its start time.
const uploadStarted = "startedat"

// phaseOps yields the ops of phase ph of plan, in order. It is the one
// definition of a phase: Execute counts and builds phases from it, one at a
// time, and Entries lists them.
func phaseOps(plan *mark.Plan, ph int) iter.Seq[op] {
	return phaseOpsFrom(plan, ph, 0)
}

// phaseOpsFrom is phaseOps without its first from ops, skipped without
// being made: each of a sweep's jobs starts at its own part of a phase.
func phaseOpsFrom(plan *mark.Plan, ph int, from int) iter.Seq[op] {
	return func(yield func(op) bool) {
		skip := from
		// each yields kind's ops (i, j), j < inner(i), after skipping; it
		// reports whether to go on. A nil inner is one op an entry.
		each := func(kind opKind, n int, inner func(int) int) bool {
			if inner == nil {
				for i := skip; i < n; i++ {
					if !yield(op{kind, int32(i), 0}) {
						return false
					}
				}
				skip = max(0, skip-n)
				return true
			}
			for i := range n {
				m := inner(i)
				if skip >= m {
					skip -= m
					continue
				}
				for j := skip; j < m; j++ {
					if !yield(op{kind, int32(i), int32(j)}) {
						return false
					}
				}
				skip = 0
			}
			return true
		}
		// eachUpload yields the upload files of the phase: startedat alone
		// (starts), or every other file.
		eachUpload := func(starts bool) {
			for i := range plan.Uploads {
				for j, f := range plan.Uploads[i].Files {
					if (f == uploadStarted) != starts {
						continue
					}
					if skip > 0 {
						skip--
						continue
					}
					if !yield(op{kindUpload, int32(i), int32(j)}) {
						return
					}
				}
			}
		}
		switch ph {
		case phaseTagCurrent:
			each(kindTagCurrent, len(plan.Tags), func(i int) int {
				if plan.Tags[i].HasCurrent {
					return 1
				}
				return 0
			})
		case phaseHistory:
			each(kindHistory, len(plan.History), nil)
		case phaseRevisions:
			each(kindRevision, len(plan.Revisions), nil)
		case phaseLayerLinks:
			each(kindLayerLink, len(plan.LayerLinks), nil)
		case phaseUploads:
			eachUpload(false)
		case phaseUploadStarts:
			eachUpload(true)
		case phaseBlobs:
			each(kindBlob, len(plan.Blobs), nil)
		}
	}
}

func phaseLen(plan *mark.Plan, ph int) int {
	n := 0
	for range phaseOps(plan, ph) {
		n++
	}
	return n
}

// key returns the key o deletes.
func (o op) key(p *mark.Plan) string {
	switch o.kind {
	case kindTagCurrent:
		t := &p.Tags[o.index]
		return storage.TagCurrentPath(p.Repo(t.Repo), t.Name)
	case kindHistory:
		e := &p.History[o.index]
		return storage.TagIndexLinkPath(p.Repo(e.Repo), e.Tag, p.Digest(e.ID))
	case kindRevision:
		r := &p.Revisions[o.index]
		return storage.RevisionLinkPath(p.Repo(r.Repo), p.Digest(r.ID))
	case kindLayerLink:
		l := &p.LayerLinks[o.index]
		return storage.LayerLinkPath(p.Repo(l.Repo), p.Digest(l.ID))
	case kindUpload:
		u := &p.Uploads[o.index]
		return storage.UploadDir(p.Repo(u.Repo), u.ID) + "/" + u.Files[o.sub]
	case kindBlob:
		return storage.BlobDataPath(p.Digest(p.Blobs[o.index].ID))
	}
	return ""
}

// keyKinds is the one kind of key each op may delete: the phase's rule. A
// blob is never deleted in the upload phase, a tag phase deletes only the
// files of a tag folder, and so on.
var keyKinds = [...]storage.KeyKind{
	kindTagCurrent: storage.KeyTagCurrent,
	kindHistory:    storage.KeyTagIndex,
	kindRevision:   storage.KeyRevisionLink,
	kindLayerLink:  storage.KeyLayerLink,
	kindUpload:     storage.KeyUploadFile,
	kindBlob:       storage.KeyBlobData,
}

// errRefused is wrapped by the failure of a key the sweep refused to delete.
var errRefused = errors.New("refused")

// check returns an error wrapping errRefused unless key parses as the
// layout's key of o's kind for exactly what o names (repository, tag,
// upload, digest), in a repository the walk listed whose name is in the
// reference grammar, under a tag whose name is in the tag grammar. It is the
// last word on what a sweep deletes, whatever the plan says: a plan read
// from a file, or a name the walk found on S3, cannot make the sweep delete
// a key of another kind or outside the item it names.
func (o op) check(p *mark.Plan, key string, repoErr map[string]error) error {
	refuse := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errRefused, fmt.Sprintf(format, a...))
	}
	if int(o.kind) >= len(keyKinds) || o.kind == kindNone {
		return refuse("%s: no phase deletes it", key)
	}
	k, err := storage.ParseKey(key)
	if err != nil {
		return refuse("%v", err)
	}
	if k.Kind != keyKinds[o.kind] {
		return refuse("%s: not a %s key", key, kindNames[o.kind])
	}
	var digest storage.Digest
	repo, tag := o.repo(p), ""
	switch o.kind {
	case kindTagCurrent:
		tag = p.Tags[o.index].Name
	case kindHistory:
		e := &p.History[o.index]
		tag, digest = e.Tag, p.Digest(e.ID)
	case kindRevision:
		digest = p.Digest(p.Revisions[o.index].ID)
	case kindLayerLink:
		digest = p.Digest(p.LayerLinks[o.index].ID)
	case kindUpload:
		if u := &p.Uploads[o.index]; k.Upload != u.ID {
			return refuse("%s: not a file of upload %s", key, u.ID)
		}
	case kindBlob:
		digest, repo = p.Digest(p.Blobs[o.index].ID), ""
	}
	if repo == "" && o.kind != kindBlob {
		return refuse("%s: of no repository of the plan", key)
	}
	if k.Repo != repo || k.Tag != tag || k.Digest != digest {
		return refuse("%s: names repository %q, tag %q, digest %s, not %q, %q, %s", key, k.Repo, k.Tag, k.Digest, repo, tag, digest)
	}
	if repo != "" {
		err, listed := repoErr[repo]
		switch {
		case !listed:
			return refuse("%s: repository %q is not one the walk listed", key, repo)
		case err != nil:
			return refuse("%s: %v", key, err)
		}
	}
	if tag != "" {
		if err := storage.ValidTag(tag); err != nil {
			return refuse("%s: %v", key, err)
		}
	}
	return nil
}

// kindNames name the kinds of key in refusals.
var kindNames = [...]string{
	kindNone: "", kindTagCurrent: "tag current link", kindHistory: "tag history", kindRevision: "manifest revision link",
	kindLayerLink: "layer link", kindUpload: "upload file", kindBlob: "blob data",
}

// repoErrs checks the name of every repository of plan against the
// reference grammar once, for check.
func repoErrs(plan *mark.Plan) map[string]error {
	m := make(map[string]error, len(plan.Repos))
	for _, name := range plan.Repos {
		m[name] = storage.ValidRepoName(name)
	}
	return m
}

// repo returns the repository o's deletion counts for; "" for none (a blob
// nothing linked).
func (o op) repo(p *mark.Plan) string {
	switch o.kind {
	case kindTagCurrent:
		return p.Repo(p.Tags[o.index].Repo)
	case kindHistory:
		return p.Repo(p.History[o.index].Repo)
	case kindRevision:
		return p.Repo(p.Revisions[o.index].Repo)
	case kindLayerLink:
		return p.Repo(p.LayerLinks[o.index].Repo)
	case kindUpload:
		return p.Repo(p.Uploads[o.index].Repo)
	case kindBlob:
		return p.Repo(p.Blobs[o.index].Repo)
	}
	return ""
}

// count adds what the deletion of o counts for to c.
func (o op) count(p *mark.Plan, bare bareTags, c *Counts) {
	switch o.kind {
	case kindTagCurrent:
		// A tag counts once, on its first key: the current link if it has
		// one (the registry stops serving the tag when it goes)...
		c.Tags++
	case kindHistory:
		e := &p.History[o.index]
		switch {
		case e.Of != mark.HistoryOfTag:
			c.TagIndexEntries++
		case bare[tagKey{e.Repo, e.Tag}] && (o.index == 0 || p.History[o.index-1].Repo != e.Repo || p.History[o.index-1].Tag != e.Tag):
			// ...else the first of its history entries (a deleted tag's
			// are the tag's keys, and count as the tag).
			c.Tags++
		}
	case kindRevision:
		c.Manifests++
	case kindLayerLink:
		c.LayerLinks++
	case kindUpload:
		// An upload counts once, on its first key.
		if o.sub == 0 {
			c.Uploads++
			c.UploadBytes += p.Uploads[o.index].Size
		}
	case kindBlob:
		c.Blobs++
		c.Bytes += p.Size(p.Blobs[o.index].ID)
	}
}

// tagKey names a tag of a plan.
type tagKey struct {
	repo mark.RepoIndex
	name string
}

// bareTags are the tags a plan deletes that have no current link: each
// counts once, on the first of its history entries.
type bareTags map[tagKey]bool

func bareTagsOf(p *mark.Plan) bareTags {
	b := bareTags{}
	for _, t := range p.Tags {
		if !t.HasCurrent {
			b[tagKey{t.Repo, t.Name}] = true
		}
	}
	return b
}

// historyWhy say why a history entry goes, for listings.
var historyWhy = map[mark.HistoryOf]Why{
	mark.HistoryOfTag:      HistoryOfTag,
	mark.HistoryOfRevision: HistoryOfDeleted,
	mark.HistoryOfAbsent:   HistoryOfAbsent,
}

// entry describes o for listings.
// A deleted tag's history entries are listed as keys of the tag, with its
// reason, as they count (tagReasons has the reason of each tag of p).
func (o op) entry(p *mark.Plan, kind string, tagReasons map[tagKey]*mark.Reason) Entry {
	e := Entry{Kind: kind, Key: o.key(p), Repo: o.repo(p)}
	switch o.kind {
	case kindTagCurrent:
		e.Why, e.Tag = TagDeleted, &p.Tags[o.index].Why
	case kindHistory:
		h := &p.History[o.index]
		e.Why = historyWhy[h.Of]
		if r, ok := tagReasons[tagKey{h.Repo, h.Tag}]; ok && h.Of == mark.HistoryOfTag {
			e.Kind, e.Why, e.Tag = phaseNames[phaseTagCurrent], TagDeleted, r
		}
	case kindRevision:
		e.Why = Untagged
	case kindLayerLink:
		e.Why = LinkUnneeded
	case kindUpload:
		e.Why, e.Upload = StaleUpload, p.Uploads[o.index].ID
	case kindBlob:
		e.Size = p.Size(p.Blobs[o.index].ID)
		e.Why = Unreferenced
	}
	return e
}

// Entry is one key a plan deletes, for listings; report.EntryReason says
// why in words.
type Entry struct {
	Kind string `json:"kind"`
	Key  string `json:"key"`
	Repo string `json:"repository,omitempty"`
	Size int64  `json:"size,omitempty"`
	// Why is why the key goes; Tag is the tag's reason (TagDeleted),
	// Upload the upload's ID (StaleUpload).
	Why    Why          `json:"why"`
	Tag    *mark.Reason `json:"tag_reason,omitempty"`
	Upload string       `json:"upload,omitempty"`
}

// Why is why a key of a plan is deleted.
type Why string

// Why each kind of key goes.
const (
	TagDeleted       Why = "tag-deleted"        // a file of a deleted tag
	HistoryOfTag     Why = "history-of-tag"     // a history entry of a tag the plan deletes
	HistoryOfDeleted Why = "history-of-deleted" // a history entry of a manifest the plan deletes
	HistoryOfAbsent  Why = "history-of-absent"  // a history entry of a manifest the repository no longer holds
	Untagged         Why = "untagged"           // an untagged manifest's revision link
	LinkUnneeded     Why = "layer-link"         // a link to a blob deleted or gone, or of an empty repository
	StaleUpload      Why = "stale-upload"       // a file of an abandoned upload
	Unreferenced     Why = "unreferenced"       // a blob no kept manifest references
)

// Entries lists every key plan deletes, in the order Execute deletes them.
// Unlike Execute it holds every key at once: it is for listing a plan.
func Entries(plan *mark.Plan) []Entry {
	var out []Entry
	n := 0
	for ph := range numPhases {
		n += phaseLen(plan, ph)
	}
	if n > 0 {
		out = make([]Entry, 0, n)
	}
	reasons := make(map[tagKey]*mark.Reason, len(plan.Tags))
	for i, t := range plan.Tags {
		reasons[tagKey{t.Repo, t.Name}] = &plan.Tags[i].Why
	}
	for ph := range numPhases {
		for o := range phaseOps(plan, ph) {
			out = append(out, o.entry(plan, phaseNames[ph], reasons))
		}
	}
	return out
}

type sweeper struct {
	store storage.Store
	plan  *mark.Plan
	opts  Options
	ctr   storage.Counter

	// repoErr is ValidRepoName of every repository the plan names.
	repoErr map[string]error
	bare    bareTags

	mu  sync.Mutex
	res *Result
	// tagFailed are the repositories a tag of which could not be deleted.
	tagFailed map[string]bool
	// uploadFailed holds the uploads a file of which failed to go: their
	// startedat stays.
	uploadFailed map[int32]bool
	// noTrash is set once the trash refused a key: the rest is deleted in
	// place, without asking the trash again for every batch.
	noTrash atomic.Bool
}

// trasher returns the trash keys go to, or nil to delete them in place.
func (s *sweeper) trasher() storage.Trasher {
	if s.opts.Trash == "" || s.opts.DryRun || s.noTrash.Load() {
		return nil
	}
	return storage.CapabilitiesOf(s.store).Trasher
}

// trash moves keys into the trash, calling done for each key moved or
// failed, and returns the keys to delete in place (storage.ErrNoTrash).
func (s *sweeper) trash(ctx context.Context, t storage.Trasher, keys []string, done func(string, error)) []string {
	var mu sync.Mutex
	var inPlace []string
	t.Trash(ctx, s.opts.Trash, keys, func(key string, err error) {
		if errors.Is(err, storage.ErrNoTrash) {
			s.mu.Lock()
			if s.res.TrashFallback == "" {
				s.res.TrashFallback = err.Error()
			}
			s.mu.Unlock()
			s.noTrash.Store(true)
			mu.Lock()
			inPlace = append(inPlace, key)
			mu.Unlock()
			return
		}
		if err == nil {
			s.mu.Lock()
			s.res.Trashed++
			s.mu.Unlock()
		}
		done(key, err)
	})
	return inPlace
}

// keeps reports whether o is kept for a tag of its repository whose
// delete failed (the tag may reach what o deletes), or is the startedat of
// an upload another file of which failed. Called between phases' deletes,
// never during the phase that fills tagFailed or uploadFailed.
func (s *sweeper) keeps(o op) bool {
	switch o.kind {
	case kindHistory, kindRevision, kindLayerLink:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.tagFailed[o.repo(s.plan)]
	case kindUpload:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.uploadFailed[o.index] && s.plan.Uploads[o.index].Files[o.sub] == uploadStarted
	}
	return false
}

// run deletes the keys of phase ph in batches, Jobs batches at a time. It
// stops starting batches when ctx ends; batches in flight finish.
func (s *sweeper) run(ctx context.Context, ph int) error {
	if ctx.Err() != nil {
		s.res.Interrupted = true
		return nil
	}
	p := s.plan
	n := phaseLen(p, ph)
	done := func(o op, key string, err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				s.res.Interrupted = true
				return
			}
			s.res.Failed = append(s.res.Failed, Failure{Key: key, Err: err.Error()})
			switch o.kind {
			case kindTagCurrent:
				if s.tagFailed == nil {
					s.tagFailed = map[string]bool{}
				}
				s.tagFailed[o.repo(p)] = true
			case kindUpload:
				if s.uploadFailed == nil {
					s.uploadFailed = map[int32]bool{}
				}
				s.uploadFailed[o.index] = true
			}
			return
		}
		o.count(p, s.bare, &s.res.Total)
		if c := s.res.Repos[o.repo(p)]; c != nil {
			o.count(p, s.bare, c)
		}
		s.ctr.Add(1)
	}
	jobs := max(s.opts.Jobs, 1)
	size := max(s.store.BatchSize(), 1)
	if !s.store.FlatListing() {
		// One system call a key: spread the keys over every job. A store
		// with request batches (S3) gets full batches, fewer requests.
		size = min(size, max(1, (n+jobs-1)/jobs))
	}
	// Each job deletes its own contiguous part of the phase, a batch at a
	// time. The phase is sorted by path, so jobs at once work in folders far
	// apart: on a filesystem, jobs on neighbouring batches would queue on the
	// same folder's lock (a blob prefix folder holds ~1/256 of the blobs).
	// Parts are whole batches: the batch count, and the requests to a
	// store with batched deletes, are what one sequence of batches makes.
	// Keys run to the store through a context that outlives the caller's,
	// so that a delete in flight completes; no new batch starts after ctx
	// ends. Ops stream from the plan into batches: at most Jobs batches
	// exist at once, never the phase (a million ops on a large registry).
	batches := (n + size - 1) / size
	parts := min(jobs, batches)
	if parts == 0 {
		return nil
	}
	per := (batches + parts - 1) / parts * size // ops a part
	deleteBatch := func(batch []op) {
		kept := 0
		batch = slices.DeleteFunc(batch, func(o op) bool {
			if s.keeps(o) {
				kept++
				return true
			}
			return false
		})
		if kept > 0 {
			s.mu.Lock()
			s.res.Skipped += kept
			s.mu.Unlock()
			s.ctr.Add(int64(kept))
		}
		// Every key is checked against its phase, in dry runs too: a dry
		// run reports the refusals a real run would make.
		keys := make([]string, 0, len(batch))
		byKey := make(map[string]op, len(batch))
		for _, o := range batch {
			key := o.key(p)
			if err := o.check(p, key, s.repoErr); err != nil {
				done(o, key, err)
				continue
			}
			if s.opts.DryRun {
				done(o, key, nil)
				continue
			}
			keys = append(keys, key)
			byKey[key] = o
		}
		// A store answering for a key it was not given gets the zero op,
		// kindNone, which counts nothing.
		doneKey := func(key string, err error) { done(byKey[key], key, err) }
		if t := s.trasher(); t != nil && len(keys) > 0 {
			keys = s.trash(context.WithoutCancel(ctx), t, keys, doneKey)
		}
		if len(keys) == 0 {
			return
		}
		s.store.Delete(context.WithoutCancel(ctx), keys, doneKey)
	}
	interrupted := func() bool {
		if ctx.Err() == nil {
			return false
		}
		s.mu.Lock()
		s.res.Interrupted = true
		s.mu.Unlock()
		return true
	}
	g := new(errgroup.Group)
	for from := 0; from < n; from += per {
		g.Go(func() error {
			batch := make([]op, 0, size)
			left := min(per, n-from)
			for o := range phaseOpsFrom(p, ph, from) {
				batch = append(batch, o)
				if left--; len(batch) < size && left > 0 {
					continue
				}
				if interrupted() {
					return nil
				}
				deleteBatch(batch)
				if left == 0 {
					return nil
				}
				batch = batch[:0]
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	return nil
}
