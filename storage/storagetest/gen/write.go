package gen

import (
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// V2Path is where distribution keeps everything below a filesystem driver's
// rootdirectory.
const V2Path = "docker/registry/v2"

// fileSpec is one file (or, with name "", one directory) to create below
// <root>/docker/registry/v2.
type fileSpec struct {
	parent string // slash-separated directory shared by many files: created once
	leaf   string // a directory of parent unique to this file, or ""
	name   string // file name in parent/leaf; "" creates only the directories
	data   []byte
	mtime  time.Time
}

// algReplacer is distribution's blobAlgorithmReplacer: '+', '.' and ';' in
// an algorithm name become directory separators.
var algReplacer = strings.NewReplacer("+", "/", ".", "/", ";", "/")

func digestDir(d string) (alg, hx string) {
	alg, hx = SplitDigest(d)
	return algReplacer.Replace(alg), hx
}

// files yields every file of the registry in the filesystem driver's layout.
func (g *Registry) files() iter.Seq[fileSpec] {
	old := g.Now.Add(-g.Age)
	return func(yield func(fileSpec) bool) {
		for _, b := range g.Blobs {
			alg, hx := digestDir(b.Digest)
			if !yield(fileSpec{parent: path.Join("blobs", alg, hx[:2]), leaf: hx, name: "data", data: b.Data, mtime: old}) {
				return
			}
		}
		for _, r := range g.Repos {
			repo := path.Join("repositories", r.Name)
			if r.Empty {
				for _, d := range []string{"_manifests/revisions/sha256", "_manifests/tags", "_layers/sha256", "_uploads"} {
					if !yield(fileSpec{parent: path.Join(repo, d)}) {
						return
					}
				}
			}
			if len(r.Layers) > 0 && len(r.Uploads) == 0 {
				// A finished upload leaves _uploads behind, empty.
				if !yield(fileSpec{parent: path.Join(repo, "_uploads")}) {
					return
				}
			}
			for _, d := range r.Layers {
				alg, hx := digestDir(d)
				if !yield(fileSpec{parent: path.Join(repo, "_layers", alg), leaf: hx, name: "link", data: []byte(g.Canonical(d)), mtime: old}) {
					return
				}
			}
			for _, d := range r.Revisions {
				alg, hx := digestDir(d)
				if !yield(fileSpec{parent: path.Join(repo, "_manifests/revisions", alg), leaf: hx, name: "link", data: []byte(d), mtime: old}) {
					return
				}
			}
			for _, d := range r.Deleted {
				alg, hx := digestDir(d)
				if !yield(fileSpec{parent: path.Join(repo, "_manifests/revisions", alg, hx)}) {
					return
				}
			}
			for _, t := range r.Tags {
				tag := path.Join(repo, "_manifests/tags", t.Name)
				for _, d := range t.History {
					alg, hx := digestDir(d)
					if !yield(fileSpec{parent: path.Join(tag, "index", alg), leaf: hx, name: "link", data: []byte(d), mtime: old}) {
						return
					}
				}
				if !yield(fileSpec{parent: path.Join(tag, "current"), name: "link", data: []byte(t.Current()), mtime: t.PushedAt}) {
					return
				}
			}
			for _, u := range r.Uploads {
				for _, f := range uploadFiles(repo, u) {
					if !yield(f) {
						return
					}
				}
			}
		}
	}
}

// uploadFiles returns startedat, data and a hash state after each chunk,
// as distribution's resumable blob writer leaves them.
func uploadFiles(repo string, u Upload) []fileSpec {
	dir := path.Join(repo, "_uploads", u.ID)
	at := u.StartedAt
	var data []byte
	var out []fileSpec
	h := sha256.New()
	out = append(out, fileSpec{parent: dir, name: "startedat", data: []byte(u.StartedAt.Format(time.RFC3339)), mtime: at})
	for _, c := range u.Chunks {
		data = append(data, c...)
		h.Write(c)
		state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			panic(err) // crypto/sha256 always marshals
		}
		out = append(out, fileSpec{parent: path.Join(dir, "hashstates/sha256"), name: strconv.Itoa(len(data)), data: state, mtime: at})
	}
	out = append(out, fileSpec{parent: dir, name: "data", data: data, mtime: at})
	return out
}

// WriteStats counts what Write created.
type WriteStats struct {
	Files int64
	Bytes int64
}

// ErrNotEmpty is returned by Write when the target already holds a registry.
var ErrNotEmpty = errors.New("target already holds docker/registry/v2")

// Write creates the registry below root/docker/registry/v2 with workers
// goroutines (0 means 16). Files are written with distribution's
// filesystem driver modes (0666 files, 0777 directories, before umask) and
// then given their modification times.
func (g *Registry) Write(ctx context.Context, root string, workers int) (WriteStats, error) {
	if workers <= 0 {
		workers = 16
	}
	base := filepath.Join(root, filepath.FromSlash(V2Path))
	if ents, err := os.ReadDir(base); err == nil && len(ents) > 0 {
		return WriteStats{}, fmt.Errorf("write %s: %w", base, ErrNotEmpty)
	}
	w := &writer{base: base}
	eg, ctx := errgroup.WithContext(ctx)
	batches := make(chan []fileSpec, 4*workers)
	eg.Go(func() error {
		defer close(batches)
		const size = 256
		batch := make([]fileSpec, 0, size)
		for f := range g.files() {
			batch = append(batch, f)
			if len(batch) == size {
				select {
				case batches <- batch:
				case <-ctx.Done():
					return ctx.Err()
				}
				batch = make([]fileSpec, 0, size)
			}
		}
		select {
		case batches <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	})
	for range workers {
		eg.Go(func() error {
			for batch := range batches {
				for _, f := range batch {
					if err := ctx.Err(); err != nil {
						return err
					}
					if err := w.write(f); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	err := eg.Wait()
	return WriteStats{Files: w.files.Load(), Bytes: w.bytes.Load()}, err
}

type writer struct {
	base  string
	dirs  sync.Map // created shared directories
	files atomic.Int64
	bytes atomic.Int64
}

func (w *writer) mkdirAll(dir string) error {
	if _, ok := w.dirs.Load(dir); ok {
		return nil
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	w.dirs.Store(dir, struct{}{})
	return nil
}

func (w *writer) write(f fileSpec) error {
	dir := filepath.Join(w.base, filepath.FromSlash(f.parent))
	if err := w.mkdirAll(dir); err != nil {
		return err
	}
	if f.leaf != "" {
		dir = filepath.Join(dir, f.leaf)
		if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create directory: %w", err)
		}
	}
	if f.name == "" {
		return nil
	}
	if err := writeFile(filepath.Join(dir, f.name), f.data, f.mtime); err != nil {
		return err
	}
	w.files.Add(1)
	w.bytes.Add(int64(len(f.data)))
	return nil
}
