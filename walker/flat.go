package walker

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/regsweep/regsweep/storage"
)

// The flat strategy, for stores whose listings are flat and cheap (S3: a
// thousand keys a request whatever their depth): the blob tree is listed
// by two-digit prefix and the repository tree by top-level folder, all at
// once, and every key is classified by its path alone. The digest of a
// revision, layer link or tag history entry is in its key, so none of them
// is read; a link's ETag (the MD5 of its 71 bytes) checks its content for
// free. Only tag current links whose ETag matches none of the tag's history
// entries, links whose ETag disagrees with their path, and upload start
// times are read.

// flatRepos collects the repositories of one listing, guarded by mu.
type flatRepos struct {
	mu    sync.Mutex
	repos map[string]*flatRepo
}

// flatRepo is a repository as its keys reveal it.
type flatRepo struct {
	raw     *rawRepo
	tags    map[string]*flatTag
	uploads map[string]*Upload
	// suspect are revision links whose ETag does not prove their content.
	suspect []int
}

type flatTag struct {
	tag        rawTag
	currentKey string
	etag       string
	hasCurrent bool
}

func (fr *flatRepos) get(name string) *flatRepo {
	r := fr.repos[name]
	if r == nil {
		r = &flatRepo{raw: &rawRepo{repo: &Repo{Name: name}, listed: true}, tags: map[string]*flatTag{}, uploads: map[string]*Upload{}}
		fr.repos[name] = r
	}
	return r
}

// linkETag is the ETag S3 gives a link file holding d.
func linkETag(d storage.Digest) string {
	sum := md5.Sum([]byte(d.String()))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// flatBlobKeys lists the blob tree of each algorithm in sixteen flat
// listings by the first hex digit, on stores that list by key prefix: a
// thousand keys a request whatever the registry's size, and sixteen
// streams at once, where a listing per two-digit folder would cost 256
// requests however few the blobs.
func (w *walk) flatBlobKeys(kw storage.KeyWalker) func(context.Context) error {
	return func(ctx context.Context) error {
		algs, err := w.blobAlgs(ctx)
		if err != nil {
			return err
		}
		for _, alg := range algs {
			for _, h := range "0123456789abcdef" {
				prefix := storage.BlobAlgDir(alg) + "/" + string(h)
				w.blobTask(func(ctx context.Context) error { return w.flatBlobs(ctx, prefix, shares(alg, 16), kw.WalkKeys) })
			}
		}
		return nil
	}
}

// flatBlobPrefix lists one blob prefix folder flat: data files come with
// their size and age.
func (w *walk) flatBlobPrefix(ctx context.Context, alg storage.Algorithm, prefix string) error {
	return w.flatBlobs(ctx, storage.BlobPrefixDir(alg, prefix), shares(alg, 256), w.store.Walk)
}

// shares is n for sha256, whose digests spread evenly over the prefixes
// (see Options.BlobsHint), 0 otherwise.
func shares(alg storage.Algorithm, n int) int {
	if alg != storage.SHA256 {
		return 0
	}
	return n
}

// flatBlobs records the blob data files a flat listing of prefix gives;
// prefix is 1/shares of the sha256 key space (see addBlobs).
func (w *walk) flatBlobs(ctx context.Context, prefix string, shares int, list func(context.Context, string, func(storage.Object) error) error) error {
	part := &blobPart{}
	others := map[storage.Digest]Blob{}
	var problems []Problem
	err := list(ctx, prefix, func(o storage.Object) error {
		k, err := storage.ParseKey(o.Key)
		if err != nil || k.Kind != storage.KeyBlobData {
			if err == nil {
				err = errors.New("not a blob data file")
			}
			problems = append(problems, Problem{Path: o.Key, Err: fmt.Errorf("%w: left alone", err)})
			return nil
		}
		b := Blob{Size: o.Size, ModTime: TimeOf(o.ModTime)}
		if s, ok := k.Digest.Sum256(); ok {
			part.add(s, b, true)
		} else {
			others[k.Digest] = b
		}
		return nil
	})
	if err != nil {
		return err
	}
	n := len(part.sums) + len(others)
	w.addBlobs(part, others, problems, shares)
	w.ctr.Add(int64(n))
	return nil
}

// flatRepoTree lists each top-level folder of the repository tree and
// classifies its keys.
func (w *walk) flatRepoTree(ctx context.Context, fr *flatRepos) error {
	tops, err := w.store.ReadDir(ctx, storage.RepositoriesDir())
	if storage.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, top := range tops {
		prefix := storage.RepositoriesDir() + "/" + top.Name
		if top.Type != storage.TypeDir {
			w.problem(prefix, errors.New("file in the repository tree: left alone"))
			continue
		}
		w.pool.Go(func(ctx context.Context) error {
			// Classified a page at a time: a folder may hold millions of
			// keys, a page of them is all this listing keeps.
			keys := make([]storage.Object, 0, 1000)
			flush := func() {
				fr.mu.Lock()
				for _, o := range keys {
					w.classify(fr, o)
				}
				fr.mu.Unlock()
				w.ctr.Add(int64(len(keys)))
				keys = keys[:0]
			}
			if err := w.store.Walk(ctx, prefix, func(o storage.Object) error {
				if keys = append(keys, o); len(keys) == cap(keys) {
					flush()
				}
				return nil
			}); err != nil {
				return err
			}
			flush()
			return nil
		})
	}
	return nil
}

// classify files one listed key of the repository tree; fr.mu is held.
func (w *walk) classify(fr *flatRepos, o storage.Object) {
	k, err := storage.ParseKey(o.Key)
	if err != nil {
		w.problem(o.Key, fmt.Errorf("%w: left alone", err))
		return
	}
	w.noteLinkETag(k, o)
	r := fr.get(k.Repo)
	switch k.Kind {
	case storage.KeyRevisionLink:
		r.raw.revisions = append(r.raw.revisions, newRawLink(k.Digest, TimeOf(o.ModTime)))
		if o.ETag != linkETag(k.Digest) {
			r.suspect = append(r.suspect, len(r.raw.revisions)-1)
		}
	case storage.KeyLayerLink:
		r.raw.layers = append(r.raw.layers, newRawLink(k.Digest, TimeOf(o.ModTime)))
	case storage.KeyTagCurrent, storage.KeyTagIndex:
		t := r.tags[k.Tag]
		if t == nil {
			t = &flatTag{tag: rawTag{Tag: Tag{Name: k.Tag}}}
			r.tags[k.Tag] = t
		}
		if k.Kind == storage.KeyTagIndex {
			t.tag.index = append(t.tag.index, k.Digest)
		} else {
			t.hasCurrent, t.currentKey, t.etag = true, o.Key, o.ETag
			t.tag.PushedAt = o.ModTime
		}
	case storage.KeyUploadFile:
		u := r.uploads[k.Upload]
		if u == nil {
			u = &Upload{ID: k.Upload}
			r.uploads[k.Upload] = u
		}
		u.Keys = append(u.Keys, o.Key)
		u.Size += o.Size
	}
}

// selected drops the repositories keep does not select (another shard's;
// nil keeps every one) and returns the others as listed.
func (fr *flatRepos) selected(keep func(string) bool) []*rawRepo {
	out := make([]*rawRepo, 0, len(fr.repos))
	for name, r := range fr.repos {
		if keep != nil && !keep(name) {
			delete(fr.repos, name)
			continue
		}
		out = append(out, r.raw)
	}
	return out
}

// flatFinish resolves what the keys alone could not tell (tag targets,
// suspect links, upload start times) and adds the repositories (those
// selected: see selected, which runs first).
func (w *walk) flatFinish(ctx context.Context, fr *flatRepos, jobs int) error {
	for name, r := range fr.repos {
		for _, t := range r.tags {
			if t.hasCurrent {
				for _, d := range t.tag.index {
					if linkETag(d) == t.etag {
						t.tag.current = d // the ETag proves the content
					}
				}
			}
			if t.hasCurrent && t.tag.current.IsZero() {
				w.pool.Go(func(ctx context.Context) error {
					d, _, err := w.readLinkDigest(ctx, t.currentKey)
					switch {
					case ctx.Err() != nil:
						return ctx.Err()
					case storage.IsNotFound(err):
					case err != nil:
						t.tag.Err = fmt.Errorf("%s: %w", t.currentKey, err)
						w.problem(t.currentKey, err)
					default:
						t.tag.current = d
					}
					return nil
				})
			}
		}
		for _, i := range r.suspect {
			l := &r.raw.revisions[i]
			d := l.digest()
			p := storage.RevisionLinkPath(name, d)
			w.pool.Go(func(ctx context.Context) error {
				got, _, err := w.readLinkDigest(ctx, p)
				if err == nil && got != d {
					err = fmt.Errorf("link holds %s, its path says %s", got, d)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err != nil {
					w.problem(p, fmt.Errorf("%w: revision kept", err))
					l.setTarget(got, true)
				}
				return nil
			})
		}
		for i := range r.raw.layers {
			if l := &r.raw.layers[i]; l.odd != nil {
				w.pool.Go(func(ctx context.Context) error { return w.resolveAlias(ctx, name, l) })
			}
		}
		for _, u := range r.uploads {
			p := storage.UploadStartedAtPath(name, u.ID)
			w.pool.Go(func(ctx context.Context) error {
				u.StartedAt = w.readStartedAt(ctx, p)
				return ctx.Err()
			})
		}
	}
	if err := w.pool.Run(ctx, jobs); err != nil {
		return err
	}
	for _, r := range fr.repos {
		for _, t := range r.tags {
			r.raw.tags = append(r.raw.tags, t.tag)
		}
		sort.Slice(r.raw.tags, func(i, j int) bool { return r.raw.tags[i].Name < r.raw.tags[j].Name })
		for _, u := range r.uploads {
			r.raw.repo.Uploads = append(r.raw.repo.Uploads, *u)
		}
		sort.Slice(r.raw.repo.Uploads, func(i, j int) bool { return r.raw.repo.Uploads[i].ID < r.raw.repo.Uploads[j].ID })
		w.addRepo(w.build(r.raw), false)
	}
	return nil
}
