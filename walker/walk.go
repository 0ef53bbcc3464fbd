package walker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/regsweep/regsweep/storage"
)

// Options tune a walk.
type Options struct {
	// Jobs is how many storage operations run at once.
	Jobs int
	// ReadLinks reads every revision link, layer link and tag history
	// entry too (a walk knows them by their paths alone) and reports those
	// whose content is missing, empty, garbage or another digest as
	// Problems (see verify.go), and stats every blob's data (a walk
	// otherwise leaves sizes and ages to StatBlobs, for the blobs a plan
	// would delete). The plan made from the inventory is the same.
	ReadLinks bool
	// StartedAt is when the walk begins (Inventory.StartedAt): the walk
	// does not read the clock. A recheck compares folder times with the
	// StartedAt of the walk it rechecks.
	StartedAt time.Time
	// Repos, when set, selects the repositories the walk lists and reads
	// (a sharded run's mark shard takes those whose name hashes to it);
	// the others are left out of the inventory, unread. Every blob is
	// listed all the same, unless NoBlobListing.
	Repos func(name string) bool
	// NoBlobListing leaves the blob store unlisted: the digest table holds
	// what the repositories walked name (links, tags, what their manifests
	// reference), manifests are read from their data files by path, and a
	// blob counts as stored only when such a read found its data (a missing
	// data file is a missing manifest, as a walk of the blob store finds
	// it). Nothing tells whether any other blob is stored
	// (Digests.Listed): a sharded run's mark shard walks this way, and its
	// sweep shards, which list the blobs, judge the rest. The layer links
	// to blobs gone are not stat'ed either (see StatOrphanLayerLinks).
	NoBlobListing bool
	// BlobsHint, when set, is called once, early in the walk, with an
	// estimate of the blobs the store holds: the first sha256 listing's
	// count scaled by the share of the key space it covers (digests are
	// uniform: a two-digit prefix folder holds 1/256 of them). A caller
	// sizes its memory budget with it (cmd/regsweep). Not called by a walk
	// that lists no sha256 blob folder (NoBlobListing, a recheck).
	BlobsHint func(blobs int)
}

// maxLinkSize bounds link and startedat files: "sha512:" and 128 hex digits
// fit; anything longer is garbage.
const maxLinkSize = 256

// walk holds the state of one Walk; its maps are guarded by mu.
type walk struct {
	store storage.Store
	// timer is the store's folder times, or nil; old is the walk being
	// rechecked, or nil.
	timer storage.DirTimer
	old   *Inventory
	ctr   storage.Counter
	pool  *pool
	// repos is Options.Repos.
	repos func(string) bool

	mu  sync.Mutex
	inv *Inventory
	// linkETags are the listed ETags of links, for ReadLinks on a flat store.
	linkETags map[string]string
	// verifyLinks reads every link (Options.ReadLinks); statBlobs stats every
	// blob's data as it is listed (ReadLinks too).
	verifyLinks, statBlobs bool

	// The blob tree's listings, until the digest table is built from them
	// (freeze) once the last one is done; blobPending counts the listing
	// tasks queued or running. Repositories listed before that wait in
	// parked: their links get IDs once the table exists.
	blobParts   []*blobPart
	otherBlobs  map[storage.Digest]Blob
	blobPending int
	parked      []*rawRepo
	// nProblems counts the problems met so far.
	nProblems int
	// named is Options.NoBlobListing: the digest table is built from the
	// names the repositories listed hold.
	named bool
	// blobsHint is Options.BlobsHint until it has been called.
	blobsHint func(int)
}

// rawRepo is a repository as listed, its digests not yet IDs: what both
// strategies (the tree walk, the flat walk of keys) feed build.
type rawRepo struct {
	// listed is set for a folder known to be a repository (it holds
	// _manifests, _layers or _uploads); a folder that could not be listed
	// or followed is not.
	listed    bool
	repo      *Repo // all but the links and tags
	revisions []rawLink
	layers    []rawLink
	tags      []rawTag
	// deleted are revision folders without a link (Repo.Deleted).
	deleted []rawLink
}

// rawLink is a listed link, 48 bytes: a registry may hold a million, and
// those listed before the digest table exists wait in this form. The rare
// link of another algorithm, corrupt or naming another digest keeps the
// rest in odd.
type rawLink struct {
	sum     [32]byte // of a sha256 digest
	modTime Time
	odd     *oddLink
}

type oddLink struct {
	d, target storage.Digest
	corrupt   bool
}

func newRawLink(d storage.Digest, modTime Time) rawLink {
	if s, ok := d.Sum256(); ok {
		return rawLink{sum: s, modTime: modTime}
	}
	return rawLink{modTime: modTime, odd: &oddLink{d: d}}
}

func (l *rawLink) digest() storage.Digest {
	if l.odd != nil {
		return l.odd.d
	}
	return storage.DigestOfSum256(l.sum)
}

// setTarget records the digest the link holds, other than its path's;
// corrupt unless it is an alias.
func (l *rawLink) setTarget(target storage.Digest, corrupt bool) {
	if l.odd == nil {
		l.odd = &oddLink{d: l.digest()}
	}
	l.odd.target, l.odd.corrupt = target, corrupt
}

type rawTag struct {
	Tag
	current storage.Digest
	index   []storage.Digest
}

// Walk lists the repository tree and the blob tree of store concurrently,
// then reads every manifest the graph may need. It fails only when the
// store cannot be listed at all; what it cannot make sense of goes into
// Inventory.Problems or Repo.Unreadable.
func Walk(ctx context.Context, store storage.Store, opts Options, ctr storage.Counter) (*Inventory, error) {
	return run(ctx, store, opts, nil, ctr)
}

// Recheck walks store again after first, an earlier walk of it, and
// consumes first: a run rechecks its tags and revisions this way just
// before it deletes anything. Only the repository tree is listed again;
// the blobs are first's, and manifests first read are not read again (both
// inventories share first's digest table and map of manifests, to which
// the recheck adds). On a store with folder times, a repository whose
// folders and links kept the times first saw (see unchanged) is taken from
// first as it is; first's other repositories are emptied as they are
// listed again, so that the two are never held whole at once. When Recheck
// returns, first has no repositories left (Repos is nil); its digest table
// and manifests are the returned inventory's.
func Recheck(ctx context.Context, store storage.Store, first *Inventory, opts Options, ctr storage.Counter) (*Inventory, error) {
	defer func() { first.Repos = nil }()
	return run(ctx, store, opts, first, ctr)
}

// run is Walk, or with old a Recheck of old.
func run(ctx context.Context, store storage.Store, opts Options, old *Inventory, ctr storage.Counter) (*Inventory, error) {
	if ctr == nil {
		ctr = storage.Nop{}
	}
	w := &walk{
		store: store,
		ctr:   ctr,
		pool:  newPool(),
		inv: &Inventory{
			Location:  store.String(),
			Manifests: make(map[ID]*Manifest),
			StartedAt: opts.StartedAt,
		},
		old:         old,
		otherBlobs:  map[storage.Digest]Blob{},
		verifyLinks: opts.ReadLinks,
		statBlobs:   opts.ReadLinks || store.FlatListing(),
		repos:       opts.Repos,
		named:       opts.NoBlobListing && old == nil,
	}
	if old == nil {
		w.blobsHint = opts.BlobsHint
	}
	w.inv.Stats.BlobSizes = w.statBlobs
	jobs := max(opts.Jobs, 1)
	caps := storage.CapabilitiesOf(store)
	w.timer = caps.DirTimer
	if opts.ReadLinks && store.FlatListing() {
		w.linkETags = make(map[string]string)
	}
	if old != nil {
		w.inv.Digests = old.Digests
		w.inv.Multipart = old.Multipart // listed with the blobs, not rechecked
		w.inv.Stats.Blobs, w.inv.Stats.BlobBytes, w.inv.Stats.BlobSizes = old.Stats.Blobs, old.Stats.BlobBytes, old.Stats.BlobSizes
		// The manifests read are shared, not copied: the recheck adds those
		// it reads to the earlier inventory's map too (a million-manifest
		// map is tens of megabytes).
		w.inv.Manifests = old.Manifests
		for _, p := range old.Problems {
			if strings.HasPrefix(p.Path, storage.BlobsDir()+"/") {
				w.inv.Problems = append(w.inv.Problems, p)
			}
		}
	}
	if ms := caps.Multipart; ms != nil && old == nil {
		w.pool.Go(func(ctx context.Context) error {
			var ups []storage.MultipartUpload
			err := ms.WalkMultipartUploads(ctx, storage.V2, func(u storage.MultipartUpload) error {
				ups = append(ups, u)
				return nil
			})
			w.mu.Lock()
			w.inv.Multipart = ups
			w.mu.Unlock()
			return err
		})
	}
	if store.FlatListing() {
		fr := &flatRepos{repos: map[string]*flatRepo{}}
		if kw := caps.KeyWalker; kw != nil && old == nil && !w.named {
			w.blobTask(w.flatBlobKeys(kw))
		} else if old == nil && !w.named {
			w.blobTask(w.blobTree(w.flatBlobPrefix))
		}
		w.pool.Go(func(ctx context.Context) error { return w.flatRepoTree(ctx, fr) })
		if err := w.pool.Run(ctx, jobs); err != nil {
			return nil, fmt.Errorf("walk %s: %w", store, err)
		}
		w.freeze(fr.selected(w.repos)...)
		if err := w.flatFinish(ctx, fr, jobs); err != nil {
			return nil, fmt.Errorf("walk %s: %w", store, err)
		}
	} else {
		if old == nil && !w.named {
			w.blobTask(w.blobTree(w.blobPrefix))
		}
		w.pool.Go(func(ctx context.Context) error { return w.repoDir(ctx, "") })
		if err := w.pool.Run(ctx, jobs); err != nil {
			return nil, fmt.Errorf("walk %s: %w", store, err)
		}
		w.freeze() // a registry without a blob tree, or a walk that lists none
	}
	sort.Slice(w.inv.Repos, func(i, j int) bool { return w.inv.Repos[i].Name < w.inv.Repos[j].Name })

	if err := w.readManifests(ctx, jobs); err != nil {
		return nil, fmt.Errorf("walk %s: %w", store, err)
	}
	if !w.named {
		if err := StatOrphanLayerLinks(ctx, store, w.inv, jobs); err != nil {
			return nil, err
		}
	}
	if opts.ReadLinks {
		if err := w.readLinks(ctx, jobs); err != nil {
			return nil, fmt.Errorf("walk %s: %w", store, err)
		}
	}
	sort.Slice(w.inv.Problems, func(i, j int) bool { return w.inv.Problems[i].Path < w.inv.Problems[j].Path })
	return w.inv, nil
}

// blobTask queues a task listing part of the blob tree, ahead of the
// repository tree's tasks. The digest table is built when the last such
// task ends, and until then every repository listed waits in its raw form
// (48 bytes a link against 16, digests as strings in tag histories): with
// the blob listings last in line, a million-blob walk held most of its
// repositories so, and the table's two copies beside them made the run's
// peak RSS (250 MiB, where the inventory's live heap peaked at 160 MiB).
func (w *walk) blobTask(f func(context.Context) error) {
	w.mu.Lock()
	w.blobPending++
	w.mu.Unlock()
	w.pool.GoFirst(func(ctx context.Context) error {
		err := f(ctx)
		w.mu.Lock()
		w.blobPending--
		last := w.blobPending == 0
		w.mu.Unlock()
		if last && err == nil {
			w.freeze()
		}
		return err
	})
}

// addBlobs records what one blob listing found; its sha256 digests are
// those of 1/shares of the key space (0: unknown), for Options.BlobsHint.
func (w *walk) addBlobs(part *blobPart, others map[storage.Digest]Blob, problems []Problem, shares int) {
	var hint func(int) // called after the unlock
	defer func() {
		if hint != nil {
			hint(len(part.sums) * shares)
		}
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	if shares > 0 && len(part.sums) > 0 {
		hint, w.blobsHint = w.blobsHint, nil
	}
	w.blobParts = append(w.blobParts, part)
	for _, b := range part.stats {
		w.inv.Stats.BlobBytes += b.Size
	}
	for d, b := range others {
		w.otherBlobs[d] = b
		w.inv.Stats.BlobBytes += b.Size
	}
	w.inv.Stats.Blobs += len(part.sums) + len(others)
	w.inv.Problems = append(w.inv.Problems, problems...)
}

// freeze builds the digest table from the blob listings, if it is not
// built yet, and gives the repositories parked until then their IDs. A
// walk that lists no blob (named) builds it from the sha256 digests the
// parked repositories and more (those the flat strategy holds) name.
func (w *walk) freeze(more ...*rawRepo) {
	w.mu.Lock()
	if w.inv.Digests == nil && w.named {
		w.inv.Digests = newNamedDigests(namedSums(append(w.parked, more...)))
	} else if w.inv.Digests == nil {
		w.inv.Digests = newDigests(w.blobParts, w.otherBlobs)
		w.blobParts, w.otherBlobs = nil, nil
	}
	parked := w.parked
	w.parked = nil
	w.mu.Unlock()
	for _, raw := range parked {
		w.addRepo(w.build(raw), true)
	}
}

// namedSums are the sha256 digests the repositories name: their links,
// their tags' targets and history.
func namedSums(raws []*rawRepo) *blobPart {
	part := &blobPart{}
	add := func(d storage.Digest) {
		if s, ok := d.Sum256(); ok {
			part.sums = append(part.sums, s)
		}
	}
	for _, raw := range raws {
		for _, links := range [][]rawLink{raw.revisions, raw.layers, raw.deleted} {
			for i := range links {
				add(links[i].digest())
				if links[i].odd != nil {
					add(links[i].odd.target)
				}
			}
		}
		for _, t := range raw.tags {
			add(t.current)
			for _, d := range t.index {
				add(d)
			}
		}
	}
	return part
}

// finishRepo adds a listed repository, or parks it until the digest
// table exists.
func (w *walk) finishRepo(raw *rawRepo, count bool) {
	if w.repos != nil && !w.repos(raw.repo.Name) {
		return
	}
	w.mu.Lock()
	if w.inv.Digests == nil {
		w.parked = append(w.parked, raw)
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	w.addRepo(w.build(raw), count)
}

// build makes a listed repository into a Repo, giving its digests their
// IDs. Both strategies' repositories come here, and the names they list
// are judged here once: a repository or tag name outside the grammar is
// reported the same way whichever listed it (mark keeps such a repository
// whole, and such tags). Link names were checked as digests by the
// listing itself (storage.DigestFromHex, storage.ParseKey).
func (w *walk) build(raw *rawRepo) *Repo {
	t, r := w.inv.Digests, raw.repo
	if raw.listed {
		if err := storage.ValidRepoName(r.Name); err != nil {
			// Foreign: not a name the registry would serve or write. Its
			// links still count as references, so its blobs are kept.
			w.problem(storage.RepoDir(r.Name), fmt.Errorf("%w: listed as a foreign repository, nothing in it is deleted", err))
		}
	}
	links := func(raw []rawLink) []Link {
		out := make([]Link, len(raw))
		for i, l := range raw {
			out[i] = Link{ModTime: l.modTime, ID: t.Intern(l.digest())}
			if l.odd != nil {
				out[i] = NewLink(out[i].ID, l.modTime, t.Intern(l.odd.target), l.odd.corrupt)
			}
		}
		return out
	}
	r.Revisions, r.Layers = links(raw.revisions), links(raw.layers)
	if len(raw.deleted) > 0 {
		r.Deleted = links(raw.deleted)
	}
	r.Tags = make([]Tag, len(raw.tags))
	for i, rt := range raw.tags {
		if err := storage.ValidTag(rt.Name); err != nil {
			w.problem(storage.TagDir(r.Name, rt.Name), fmt.Errorf("%w: kept as it is", err))
		}
		tag := rt.Tag
		tag.Current = t.Intern(rt.current)
		if len(rt.index) > 0 {
			tag.Index = make([]ID, len(rt.index))
			for j, d := range rt.index {
				tag.Index[j] = t.Intern(d)
			}
		}
		r.Tags[i] = tag
	}
	return r
}

func (w *walk) problem(p string, err error) {
	w.mu.Lock()
	w.inv.Problems = append(w.inv.Problems, Problem{Path: p, Err: err})
	w.nProblems++
	w.mu.Unlock()
}

// blobAlgs lists the algorithm folders of the blob tree (none if it is
// missing); anything else there is a problem, left alone.
func (w *walk) blobAlgs(ctx context.Context) ([]storage.Algorithm, error) {
	entries, err := w.store.ReadDir(ctx, storage.BlobsDir())
	if storage.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var algs []storage.Algorithm
	for _, a := range entries {
		alg, ok := storage.AlgorithmFromString(a.Name)
		if a.Type != storage.TypeDir || !ok {
			w.problem(storage.BlobsDir()+"/"+a.Name, errors.New("not a digest algorithm folder: left alone"))
			continue
		}
		algs = append(algs, alg)
	}
	return algs, nil
}

// blobTree lists blobs/<alg>/ and queues, for each two-digit prefix
// folder, list(alg, prefix) as a task: both strategies can split the blob
// tree this way.
func (w *walk) blobTree(list func(ctx context.Context, alg storage.Algorithm, prefix string) error) func(context.Context) error {
	return func(ctx context.Context) error {
		algs, err := w.blobAlgs(ctx)
		if err != nil {
			return err
		}
		for _, alg := range algs {
			prefixes, err := w.store.ReadDir(ctx, storage.BlobAlgDir(alg))
			if err != nil {
				return err
			}
			for _, p := range prefixes {
				if p.Type != storage.TypeDir || len(p.Name) != 2 {
					w.problem(storage.BlobAlgDir(alg)+"/"+p.Name, errors.New("not a blob prefix folder: left alone"))
					continue
				}
				w.blobTask(func(ctx context.Context) error { return list(ctx, alg, p.Name) })
			}
		}
		return nil
	}
}

// blobPrefix lists the blobs of one prefix folder. A blob's folder name
// is its digest: the walk does not open it, and the size and age of its
// data are read later, for the blobs a plan would delete only (StatBlobs),
// unless Options.ReadLinks asks for every one now.
func (w *walk) blobPrefix(ctx context.Context, alg storage.Algorithm, prefix string) error {
	dir := storage.BlobPrefixDir(alg, prefix)
	part := &blobPart{}
	others := map[storage.Digest]Blob{}
	visit := func(e storage.Entry, o storage.Object, err error) error {
		d, derr := storage.DigestFromHex(alg.String(), e.Name)
		if derr == nil && (e.Type != storage.TypeDir || !strings.HasPrefix(e.Name, prefix)) {
			derr = errors.New("not a blob folder")
		}
		if derr != nil {
			w.problem(dir+"/"+e.Name, fmt.Errorf("%w: left alone", derr))
			return nil
		}
		if err != nil {
			// A blob folder without data: an interrupted write or delete.
			// The registry cannot serve it; we leave it alone and say so.
			w.problem(storage.BlobDir(d), fmt.Errorf("blob folder without readable data: %w", err))
			return nil
		}
		b := Blob{Size: o.Size, ModTime: TimeOf(o.ModTime)}
		if s, ok := d.Sum256(); ok {
			part.add(s, b, w.statBlobs)
			if e.Ino != 0 {
				part.inos = append(part.inos, uint32(e.Ino))
			}
		} else {
			others[d] = b
		}
		return nil
	}
	cs := storage.CapabilitiesOf(w.store).ChildStatter
	if w.statBlobs && cs != nil {
		if err := cs.StatChildren(ctx, dir, storage.BlobDataName, visit); err != nil {
			return err
		}
	} else {
		entries, err := w.store.ReadDir(ctx, dir)
		if err != nil {
			return err
		}
		part.sums = make([][32]byte, 0, len(entries))
		for _, e := range entries {
			var o storage.Object
			var err error
			if w.statBlobs && e.Type == storage.TypeDir {
				o, err = w.store.Stat(ctx, dir+"/"+e.Name+"/"+storage.BlobDataName)
			}
			if err := visit(e, o, err); err != nil {
				return err
			}
		}
	}
	n := len(part.sums) + len(others)
	w.addBlobs(part, others, nil, shares(alg, 256))
	w.ctr.Add(int64(n))
	return nil
}

// repoDir lists a folder of the repository tree (rel is relative to
// repositories/). A folder holding _manifests, _layers or _uploads is a
// repository; every other child folder may hold more repositories.
func (w *walk) repoDir(ctx context.Context, rel string) error {
	dir := storage.RepositoriesDir()
	if rel != "" {
		dir += "/" + rel
	}
	entries, err := w.store.ReadDir(ctx, dir)
	if storage.IsNotFound(err) && rel == "" {
		return nil // a registry with no repository yet
	}
	if err != nil {
		if rel == "" {
			return err
		}
		// Whatever repositories lie below are unknown: their blobs may be
		// referenced, so the sweep of blobs must not run.
		w.problem(dir, fmt.Errorf("cannot list: %w", err))
		w.finishRepo(&rawRepo{repo: &Repo{Name: rel, Unreadable: err}}, true)
		return nil
	}
	isRepo := false
	for _, e := range entries {
		if storage.IsRepoMarker(e.Name) {
			isRepo = true
			continue
		}
		if e.Type == storage.TypeOther {
			// The registry follows a symlink, to a repository that may
			// reference any blob: unknown, like a folder we cannot list.
			err := errors.New("symlink or special file in the repository tree: not followed, left alone")
			w.problem(dir+"/"+e.Name, err)
			name := e.Name
			if rel != "" {
				name = rel + "/" + e.Name
			}
			w.finishRepo(&rawRepo{repo: &Repo{Name: name, Unreadable: fmt.Errorf("%s/%s: %w", dir, e.Name, err)}}, true)
			continue
		}
		if e.Type != storage.TypeDir {
			w.problem(dir+"/"+e.Name, errors.New("file in the repository tree: left alone"))
			continue
		}
		child := e.Name
		if rel != "" {
			child = rel + "/" + e.Name
		}
		w.pool.Go(func(ctx context.Context) error { return w.repoDir(ctx, child) })
	}
	if !isRepo {
		return nil
	}
	if w.old != nil {
		if old := w.old.Repo(rel); old != nil {
			if w.unchanged(ctx, old) {
				w.addRepo(old, true)
				return nil
			}
			// Listed again: the first walk's lists go now, not after the
			// recheck, so that the two are never held whole at once.
			old.Tags, old.Revisions, old.Layers, old.Uploads, old.Deleted = nil, nil, nil, nil, nil
		}
	}
	if w.repos != nil && !w.repos(rel) {
		return nil // another shard's
	}
	return w.repo(ctx, rel)
}

// addRepo adds a listed repository; count adds its objects to the progress
// counter (the flat strategy counted them as it listed).
func (w *walk) addRepo(r *Repo, count bool) {
	w.mu.Lock()
	w.inv.Repos = append(w.inv.Repos, r)
	w.inv.Stats.Repos++
	w.inv.Stats.Tags += len(r.Tags)
	w.inv.Stats.Revisions += len(r.Revisions)
	w.inv.Stats.LayerLinks += len(r.Layers)
	w.inv.Stats.Uploads += len(r.Uploads)
	for _, t := range r.Tags {
		w.inv.Stats.TagIndexEntries += len(t.Index)
	}
	w.mu.Unlock()
	if count {
		w.ctr.Add(int64(len(r.Tags) + len(r.Revisions) + len(r.Layers) + len(r.Uploads)))
	}
}

// repo lists one repository: revisions (reading each link), tags (reading
// current/link), layer links (names only) and uploads.
func (w *walk) repo(ctx context.Context, name string) error {
	r := &Repo{Name: name}
	raw := &rawRepo{repo: r, listed: true}
	w.mu.Lock()
	problems := w.nProblems
	w.mu.Unlock()
	var times repoTimes
	plain := true
	fail := func(p string, err error) {
		if ctx.Err() != nil {
			return
		}
		w.problem(p, err)
		if r.Unreadable == nil {
			r.Unreadable = fmt.Errorf("%s: %w", p, err)
		}
	}
	revs, revTimes, ok, err := w.linkDigests(ctx, storage.RevisionsDir(name))
	times.revisions, times.revisions256, plain = revTimes[0], revTimes[1], plain && ok
	if err != nil {
		fail(storage.RevisionsDir(name), err)
	}
	pre := w.statRevisionLinks(ctx, name, revs)
	for i, d := range revs {
		p := storage.RevisionLinkPath(name, d)
		var got storage.Digest
		var mt time.Time
		if pre != nil && pre[i].done {
			mt, err = pre[i].o.ModTime, pre[i].err
		} else {
			got, mt, err = w.revisionLink(ctx, p, d)
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case storage.IsNotFound(err):
			// A revision folder without link: a manifest deleted through
			// the registry's API (see Repo.Deleted), unless it holds
			// something else.
			if err := w.deletedRevision(ctx, raw, d); err != nil {
				return err
			}
		case err != nil:
			// Corrupt: kept whatever the policy, and what either digest
			// references stays.
			w.problem(p, fmt.Errorf("%w: revision kept", err))
			l := newRawLink(d, TimeOf(mt))
			l.setTarget(got, true)
			raw.revisions = append(raw.revisions, l)
		default:
			raw.revisions = append(raw.revisions, newRawLink(d, TimeOf(mt)))
		}
	}
	if times.tags, ok, err = w.tags(ctx, raw); err != nil {
		fail(storage.TagsDir(name), err)
	}
	plain = plain && ok
	layers, layerTimes, ok, err := w.linkDigests(ctx, storage.LayersDir(name))
	times.layers, times.layers256, plain = layerTimes[0], layerTimes[1], plain && ok
	if err != nil {
		fail(storage.LayersDir(name), err)
	}
	raw.layers = make([]rawLink, 0, len(layers))
	for _, d := range layers {
		l := newRawLink(d, 0)
		if err := w.resolveAlias(ctx, name, &l); err != nil {
			return err
		}
		if len(raw.revisions) == 0 && l.modTime.IsZero() {
			// A repository without manifests may be removed whole by
			// compaction, which needs the age of its links (a push in
			// progress links blobs before it puts its manifest).
			if o, err := w.store.Stat(ctx, storage.LayerLinkPath(name, d)); err == nil {
				l.modTime = TimeOf(o.ModTime)
			}
		}
		raw.layers = append(raw.layers, l)
	}
	if times.uploads, err = w.uploads(ctx, r); err != nil {
		fail(storage.UploadsDir(name), err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	if plain && w.timer != nil && w.nProblems == problems {
		r.times = &times
	}
	w.mu.Unlock()
	w.finishRepo(raw, true)
	return nil
}

// revisionLink checks the revision link at p, of digest d by its path.
// In a sha256 folder the path is trusted: the link is only stat'ed (its
// age, and whether it exists: a manifest deleted through the registry's API
// leaves its folder without link), one inode read where reading its content
// costs another block, for a fact its folder already states. Links of other
// algorithms, and every link with Options.ReadLinks, are read and checked
// against their path. got is the digest read, zero when not read.
func (w *walk) revisionLink(ctx context.Context, p string, d storage.Digest) (got storage.Digest, mt time.Time, err error) {
	if !w.verifyLinks && d.Algorithm() == storage.SHA256 {
		o, err := w.store.Stat(ctx, p)
		return storage.Digest{}, o.ModTime, err
	}
	got, mt, err = w.readLinkDigest(ctx, p)
	if err == nil && got != d {
		err = fmt.Errorf("link holds %s, its path says %s", got, d)
	}
	return got, mt, err
}

// statResult is the stat of one file of a batch.
type statResult struct {
	o    storage.Object
	err  error
	done bool
}

// statRevisionLinks stats the sha256 revision links of repository repo
// (revs, as linkDigests listed them) in one batch relative to their
// folder, on stores that can (storage.NameStatter): one fstatat each. The
// result is nil, or holds done entries for the links stat'ed; the others
// are revisionLink's. The link folders were listed as folders.
func (w *walk) statRevisionLinks(ctx context.Context, repo string, revs []storage.Digest) []statResult {
	ns := storage.CapabilitiesOf(w.store).NameStatter
	if ns == nil || w.verifyLinks {
		return nil
	}
	var names []string
	var idx []int
	dir := ""
	for i, d := range revs {
		if d.Algorithm() != storage.SHA256 {
			continue
		}
		if dir == "" {
			p := storage.RevisionLinkPath(repo, d)
			dir = path.Dir(path.Dir(p))
		}
		names = append(names, d.Hex()+"/"+path.Base(storage.RevisionLinkPath("x", d)))
		idx = append(idx, i)
	}
	if len(names) == 0 {
		return nil
	}
	res := make([]statResult, len(revs))
	if err := ns.StatNames(ctx, dir, names, func(i int, o storage.Object, err error) {
		res[idx[i]] = statResult{o: o, err: err, done: true}
	}); err != nil {
		return nil // each link is stat'ed on its own then
	}
	return res
}

// deletedRevision looks into the folder of revision d of raw, whose link
// is missing. Empty, it is a manifest deleted through the registry's API,
// noted with the folder's time in raw.deleted; holding anything else, it is
// a problem, left alone. Either way the repository does not hold d.
func (w *walk) deletedRevision(ctx context.Context, raw *rawRepo, d storage.Digest) error {
	dir := path.Dir(storage.RevisionLinkPath(raw.repo.Name, d))
	entries, at, err := w.list(ctx, dir)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case storage.IsNotFound(err):
		// Gone since it was listed: nothing left of it.
	case err != nil:
		w.problem(dir, fmt.Errorf("revision folder without link file, cannot list: %w: left alone", err))
	case len(entries) > 0:
		w.problem(dir, errors.New("revision folder without link file, holding other files: left alone"))
	default:
		raw.deleted = append(raw.deleted, newRawLink(d, at))
	}
	return nil
}

// linkDigests lists <dir>/<alg>/<hex> folders; a missing dir is empty. It
// returns the times of dir and dir/sha256 (see list), and whether sha256
// is the only algorithm there.
func (w *walk) linkDigests(ctx context.Context, dir string) ([]storage.Digest, [2]Time, bool, error) {
	times := [2]Time{absent, absent}
	algs, at, err := w.list(ctx, dir)
	if storage.IsNotFound(err) {
		return nil, times, true, nil
	}
	if err != nil {
		return nil, times, false, err
	}
	times[0] = at
	plain := true
	var out []storage.Digest
	for _, a := range algs {
		if _, ok := storage.AlgorithmFromString(a.Name); !ok || a.Type != storage.TypeDir {
			w.problem(dir+"/"+a.Name, errors.New("not a digest algorithm folder: left alone"))
			continue
		}
		entries, at, err := w.list(ctx, dir+"/"+a.Name)
		if err != nil {
			return nil, times, false, err
		}
		if a.Name == storage.SHA256.String() {
			times[1] = at
		} else {
			plain = false
		}
		for _, e := range entries {
			if e.Type == storage.TypeOther {
				// A revision, tag or link the registry would follow.
				return nil, times, false, fmt.Errorf("%s/%s/%s: symlink or special file: not followed", dir, a.Name, e.Name)
			}
			d, err := storage.DigestFromHex(a.Name, e.Name)
			if err == nil && e.Type != storage.TypeDir {
				err = errors.New("not a link folder")
			}
			if err != nil {
				w.problem(dir+"/"+a.Name+"/"+e.Name, fmt.Errorf("%w: left alone", err))
				continue
			}
			out = append(out, d)
		}
	}
	return out, times, plain, nil
}

// list is ReadDir, with dir's time when the store has folder times: absent
// when dir is missing, 0 when the store has none.
func (w *walk) list(ctx context.Context, dir string) ([]storage.Entry, Time, error) {
	if w.timer == nil {
		entries, err := w.store.ReadDir(ctx, dir)
		return entries, 0, err
	}
	entries, at, err := w.timer.ReadDirTime(ctx, dir)
	if err != nil {
		return nil, absent, err
	}
	return entries, TimeOf(at), nil
}

// readLinkDigest reads the digest a link file holds.
func (w *walk) readLinkDigest(ctx context.Context, p string) (storage.Digest, time.Time, error) {
	b, o, err := w.store.ReadFile(ctx, p, maxLinkSize)
	if err != nil {
		return storage.Digest{}, o.ModTime, err
	}
	if len(b) == 0 {
		return storage.Digest{}, o.ModTime, errors.New("empty link file")
	}
	d, err := storage.ParseDigest(string(b))
	if err != nil {
		return storage.Digest{}, o.ModTime, fmt.Errorf("garbage in link file: %w", err)
	}
	return d, o.ModTime, nil
}

// subdirs lists the folders in dir (none if dir is missing); any other
// entry is recorded as a problem, not "what" folder, and left alone.
func (w *walk) subdirs(ctx context.Context, dir, what string) ([]string, Time, error) {
	entries, at, err := w.list(ctx, dir)
	if storage.IsNotFound(err) {
		return nil, absent, nil
	}
	if err != nil {
		return nil, at, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Type == storage.TypeOther {
			// A tag (or upload) the registry would follow, anywhere.
			return nil, at, fmt.Errorf("%s/%s: symlink or special file: not followed", dir, e.Name)
		}
		if e.Type != storage.TypeDir {
			w.problem(dir+"/"+e.Name, fmt.Errorf("not a%s %s folder: left alone", article(what), what))
			continue
		}
		names = append(names, e.Name)
	}
	return names, at, nil
}

func article(w string) string {
	if strings.ContainsRune("aeiou", rune(w[0])) {
		return "n"
	}
	return ""
}

// tags lists the tags of r, reading current/link and listing index/.
// tags lists the tags of a repository; it returns the tags folder's time,
// and whether every tag is plain (see Repo.times).
func (w *walk) tags(ctx context.Context, raw *rawRepo) (Time, bool, error) {
	r := raw.repo
	dir := storage.TagsDir(r.Name)
	names, at, err := w.subdirs(ctx, dir, "tag")
	if err != nil {
		return at, false, err
	}
	plain := true
	for _, name := range names {
		t := rawTag{Tag: Tag{Name: name}}
		cur := storage.TagCurrentPath(r.Name, name)
		d, mt, err := w.readLinkDigest(ctx, cur)
		switch {
		case storage.IsNotFound(err):
			// No current link: an interrupted tag delete. The registry does
			// not serve this tag.
		case err != nil:
			t.Err = fmt.Errorf("%s: %w", cur, err)
			w.problem(cur, err)
		default:
			t.current, t.PushedAt = d, mt
		}
		var ok bool
		t.index, t.indexTimes, ok, err = w.linkDigests(ctx, storage.TagIndexDir(r.Name, name))
		if err != nil {
			return at, false, err
		}
		plain = plain && ok
		raw.tags = append(raw.tags, t)
	}
	return at, plain, nil
}

// uploads lists _uploads/<id>/ folders and reads their startedat.
func (w *walk) uploads(ctx context.Context, r *Repo) (Time, error) {
	names, at, err := w.subdirs(ctx, storage.UploadsDir(r.Name), "upload")
	if err != nil {
		return at, err
	}
	for _, name := range names {
		u := Upload{ID: name}
		err := w.store.Walk(ctx, storage.UploadDir(r.Name, name), func(o storage.Object) error {
			u.Keys = append(u.Keys, o.Key)
			u.Size += o.Size
			return nil
		})
		if err != nil && !storage.IsNotFound(err) {
			return at, err
		}
		u.StartedAt = w.readStartedAt(ctx, storage.UploadStartedAtPath(r.Name, name))
		r.Uploads = append(r.Uploads, u)
	}
	return at, nil
}

// resolveAlias reads a layer link of an algorithm other than sha256. The
// registry stores a blob pushed under a sha512 digest at its sha256 digest,
// and links it from _layers/sha512/<hex>/link holding "sha256:<hex>": such
// a link's content legitimately differs from its path, and marking the
// sha512 digest must keep the sha256 blob. An unreadable alias is corrupt.
func (w *walk) resolveAlias(ctx context.Context, repo string, l *rawLink) error {
	if l.odd == nil {
		return nil // sha256
	}
	p := storage.LayerLinkPath(repo, l.odd.d)
	d, mt, err := w.readLinkDigest(ctx, p)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	l.modTime = TimeOf(mt)
	if err != nil {
		w.problem(p, fmt.Errorf("%w: layer link kept", err))
		l.setTarget(storage.Digest{}, true)
		return nil
	}
	if d != l.odd.d {
		l.setTarget(d, false)
	}
	return nil
}

// readStartedAt reads an upload's start time; zero when it is missing or
// unreadable (such an upload counts as young). A startedat that exists but
// cannot be read (a FIFO, a folder, a failed read) is also a problem.
func (w *walk) readStartedAt(ctx context.Context, p string) time.Time {
	b, _, err := w.store.ReadFile(ctx, p, maxLinkSize)
	if err != nil {
		if ctx.Err() == nil && !storage.IsNotFound(err) {
			w.problem(p, fmt.Errorf("%w: upload kept as young", err))
		}
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, string(bytes.TrimSpace(b)))
	if err != nil {
		return time.Time{}
	}
	return t
}

// readManifests reads and parses every manifest a repository holds or a
// tag names, then, wave after wave, the children of indexes among them.
func (w *walk) readManifests(ctx context.Context, jobs int) error {
	var wave []ID
	// IDs wanted so far, a bit each: links and tags are interned now,
	// children wanted may be interned by the manifests read (a walk that
	// lists no blob reads every child; a missing one is a missing
	// manifest, as its absence from a listing tells).
	seen := make([]uint64, w.inv.Digests.Len()/64+1)
	mark := func(id ID) bool {
		for int(id/64) >= len(seen) {
			seen = append(seen, 0) // interned by a manifest read
		}
		if seen[id/64]&(1<<(id%64)) != 0 {
			return false
		}
		seen[id/64] |= 1 << (id % 64)
		return true
	}
	for id := range w.inv.Manifests {
		mark(id) // read by the walk being rechecked
	}
	want := func(id ID) {
		if id != 0 && mark(id) {
			wave = append(wave, id)
		}
	}
	for _, r := range w.inv.Repos {
		for _, l := range r.Revisions {
			want(l.ID)
			want(l.Target())
		}
		for _, t := range r.Tags {
			want(t.Current)
		}
	}
	w.ctr.SetMax(int64(len(wave)))
	for len(wave) > 0 {
		w.inv.Digests.SortByDiskOrder(wave)
		for _, d := range wave {
			w.pool.Go(func(ctx context.Context) error { return w.readManifest(ctx, d) })
		}
		if err := w.pool.Run(ctx, jobs); err != nil {
			return err
		}
		next := wave
		wave = nil
		for _, id := range next {
			if w.inv.Manifests[id] == nil {
				continue
			}
			for _, c := range w.inv.Manifests[id].Children() {
				if w.named || w.inv.Digests.Stored(c) {
					want(c)
				}
			}
		}
	}
	return nil
}

func (w *walk) readManifest(ctx context.Context, id ID) error {
	d := w.inv.Digests.Digest(id)
	p := storage.BlobDataPath(d)
	b, o, err := w.store.ReadFile(ctx, p, storage.MaxManifestSize)
	var m *Manifest
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		m = &Manifest{Err: err}
	case !d.Matches(b):
		m = &Manifest{Err: fmt.Errorf("read %s: content does not match its digest", p)}
	default:
		refs, err := storage.ParseManifest(b)
		if err != nil {
			m = &Manifest{Err: fmt.Errorf("parse %s: %w", p, err)}
		} else {
			m = NewManifest(w.inv.Digests, refs, 0)
		}
	}
	m.Size = o.Size
	if w.named && !storage.IsNotFound(err) {
		w.inv.Digests.setStored(id) // its data is there, readable or not
	}
	w.mu.Lock()
	w.inv.Manifests[id] = m
	w.inv.Stats.ManifestsRead++
	w.mu.Unlock()
	w.ctr.Add(1)
	return nil
}

// AgeLayerLinks reads the modification times of the layer links of the
// named repositories of inv that the walk left unknown: a plan that removes
// a repository whole needs the age of every link in it
// (mark.Plan.LinkAgesWanted), and a walk reads a link's age only where it
// must. A link whose stat fails keeps an unknown age (and so its
// repository). It completes inv, which must not be in use meanwhile.
func AgeLayerLinks(ctx context.Context, store storage.Store, inv *Inventory, repos []string, jobs int) error {
	p := newPool()
	for _, name := range repos {
		r := inv.Repo(name)
		if r == nil {
			continue
		}
		for i := range r.Layers {
			l := &r.Layers[i]
			if !l.ModTime.IsZero() || l.Corrupt() {
				continue
			}
			key := storage.LayerLinkPath(r.Name, inv.Digests.Digest(l.ID))
			p.Go(func(ctx context.Context) error {
				if o, err := store.Stat(ctx, key); err == nil {
					l.ModTime = TimeOf(o.ModTime)
				}
				return ctx.Err()
			})
		}
	}
	if err := p.Run(ctx, jobs); err != nil {
		return fmt.Errorf("age layer links in %s: %w", store, err)
	}
	return nil
}

// StatOrphanLayerLinks stats the layer links of inv whose blob is gone and
// whose age is unknown: they are the only layer links a sweep may delete
// on their own account, and it needs their age. A walk does it for the
// blob store it listed; a sharded run's sweep shard, for the links routed
// to its range of blobs. A link whose stat fails keeps an unknown age (and
// so stays), a Problem of inv. It completes inv, which must not be in use
// meanwhile.
func StatOrphanLayerLinks(ctx context.Context, store storage.Store, inv *Inventory, jobs int) error {
	var mu sync.Mutex
	p := newPool()
	for _, r := range inv.Repos {
		for i := range r.Layers {
			l := &r.Layers[i]
			if inv.Digests.Stored(l.ID) || !l.ModTime.IsZero() {
				continue
			}
			key := storage.LayerLinkPath(r.Name, inv.Digests.Digest(l.ID))
			p.Go(func(ctx context.Context) error {
				o, err := store.Stat(ctx, key)
				switch {
				case ctx.Err() != nil:
					return ctx.Err()
				case err != nil:
					mu.Lock()
					inv.Problems = append(inv.Problems, Problem{Path: key, Err: err})
					mu.Unlock()
				default:
					l.ModTime = TimeOf(o.ModTime)
				}
				return nil
			})
		}
	}
	if err := p.Run(ctx, jobs); err != nil {
		return fmt.Errorf("stat layer links in %s: %w", store, err)
	}
	return nil
}

// NoData is the modification time StatBlobs gives a blob whose data it
// could not stat: later than any cutoff, so that the blob is kept.
const NoData Time = math.MaxInt64

// StatBlobs reads the size and age of the data of the stored blobs ids of
// inv, jobs at once: a filesystem walk lists blobs by their folder names
// only, and a plan needs the age of the blobs it would delete
// (mark.Plan.BlobAgesWanted) and their sizes to report. A blob already
// stat'ed is skipped. A blob whose data cannot be stat'ed (a folder without
// data: an interrupted write or delete) is a Problem of inv, and gets
// NoData, which keeps it. It completes inv, which must not be in use
// meanwhile.
func StatBlobs(ctx context.Context, store storage.Store, inv *Inventory, ids []ID, jobs int) error {
	t := inv.Digests
	t.prepareStats()
	var mu sync.Mutex
	set := func(ctx context.Context, id ID, o storage.Object, err error) {
		switch {
		case ctx.Err() != nil:
		case err != nil:
			t.setBlob(id, Blob{ModTime: NoData})
			mu.Lock()
			inv.Problems = append(inv.Problems, Problem{Path: storage.BlobDir(t.Digest(id)), Err: fmt.Errorf("blob folder without readable data: %w", err)})
			mu.Unlock()
		default:
			t.setBlob(id, Blob{Size: o.Size, ModTime: TimeOf(o.ModTime)})
		}
	}
	stat := func(ctx context.Context, id ID) {
		o, err := store.Stat(ctx, storage.BlobDataPath(t.Digest(id)))
		set(ctx, id, o, err)
	}
	// Tasks of a few hundred blobs each: a task per blob would hold a
	// closure for each of hundreds of thousands at once. In disk order,
	// the tasks running at once read neighbouring inodes; each band of
	// what they read at once is then put in digest order, so that a task
	// stats the blobs of one prefix folder relative to it opened once
	// (statBlobsIn; an ID's order is its digest's), not each blob through
	// the whole path from the root.
	ids = slices.Clone(ids)
	t.SortByDiskOrder(ids)
	const chunk = 256
	band := chunk * max(jobs, 1)
	for rest := ids; len(rest) > 0; rest = rest[min(band, len(rest)):] {
		slices.Sort(rest[:min(band, len(rest))])
	}
	p := newPool()
	for len(ids) > 0 {
		part := ids[:min(chunk, len(ids))]
		ids = ids[len(part):]
		p.Go(func(ctx context.Context) error {
			var todo []ID
			for _, id := range part {
				if b, ok := t.Blob(id); ok && b.ModTime.IsZero() {
					todo = append(todo, id)
				}
			}
			if ns := storage.CapabilitiesOf(store).NameStatter; ns != nil {
				todo = statBlobsIn(ctx, ns, t, todo, set)
			}
			for _, id := range todo {
				stat(ctx, id)
			}
			return ctx.Err()
		})
	}
	if err := p.Run(ctx, jobs); err != nil {
		return fmt.Errorf("stat blobs in %s: %w", store, err)
	}
	sort.Slice(inv.Problems, func(i, j int) bool { return inv.Problems[i].Path < inv.Problems[j].Path })
	return nil
}

// Ages returns the reader of the ages a plan wants (mark.ComputeAged):
// StatBlobs for the blobs, AgeLayerLinks for the repositories' layer links.
func Ages(ctx context.Context, store storage.Store, inv *Inventory, jobs int) func(blobs []ID, repos []string) error {
	return func(blobs []ID, repos []string) error {
		if err := StatBlobs(ctx, store, inv, blobs, jobs); err != nil {
			return err
		}
		return AgeLayerLinks(ctx, store, inv, repos, jobs)
	}
}

// statBlobsIn stats the sha256 blobs of ids (in digest order) prefix folder
// by prefix folder, each batch relative to its folder opened once (one
// fstatat a blob), and passes each result to set. It returns the blobs left
// to stat one by one: other algorithms, and the batches that failed whole.
// The blob folders were listed as folders.
func statBlobsIn(ctx context.Context, ns storage.NameStatter, t *Digests, ids []ID, set func(context.Context, ID, storage.Object, error)) []ID {
	var rest []ID
	for len(ids) > 0 {
		d := t.Digest(ids[0])
		if d.Algorithm() != storage.SHA256 {
			rest, ids = append(rest, ids[0]), ids[1:]
			continue
		}
		dir := path.Dir(storage.BlobDir(d))
		n := 1
		for n < len(ids) {
			e := t.Digest(ids[n])
			if e.Algorithm() != storage.SHA256 || path.Dir(storage.BlobDir(e)) != dir {
				break
			}
			n++
		}
		batch := ids[:n]
		ids = ids[n:]
		names := make([]string, len(batch))
		for i, id := range batch {
			names[i] = path.Base(storage.BlobDir(t.Digest(id))) + "/" + storage.BlobDataName
		}
		if err := ns.StatNames(ctx, dir, names, func(i int, o storage.Object, err error) { set(ctx, batch[i], o, err) }); err != nil {
			rest = append(rest, batch...)
		}
	}
	return rest
}
