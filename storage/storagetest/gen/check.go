package gen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

// OnDisk is what a registry directory holds, as Scan reads it.
type OnDisk struct {
	Blobs map[string]bool        // digests with a blobs/<alg>/<2>/<hex>/data file
	Repos map[string]*RepoOnDisk // directories holding _manifests or _layers
}

// RepoOnDisk lists a repository's links (a link counts when its link file exists).
type RepoOnDisk struct {
	Revisions map[string]bool
	Layers    map[string]bool
}

// Scan reads the blobs, revision links and layer links below
// root/docker/registry/v2. It lists directories and checks that data and
// link files exist; it does not read them.
func Scan(ctx context.Context, root string) (*OnDisk, error) {
	base := filepath.Join(root, filepath.FromSlash(V2Path))
	if _, err := os.Stat(base); err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	d := &OnDisk{Blobs: map[string]bool{}, Repos: map[string]*RepoOnDisk{}}
	if err := scanBlobs(ctx, filepath.Join(base, "blobs"), d.Blobs); err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	if err := scanRepos(filepath.Join(base, "repositories"), "", d.Repos); err != nil {
		return nil, fmt.Errorf("scan %s: %w", root, err)
	}
	return d, nil
}

func readDirOK(dir string) ([]os.DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return ents, err
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func scanBlobs(ctx context.Context, dir string, out map[string]bool) error {
	algs, err := readDirOK(dir)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(8)
	for _, alg := range algs {
		prefixes, err := readDirOK(filepath.Join(dir, alg.Name()))
		if err != nil {
			return err
		}
		for _, pre := range prefixes {
			if ctx.Err() != nil {
				break
			}
			pdir := filepath.Join(dir, alg.Name(), pre.Name())
			eg.Go(func() error {
				hexes, err := readDirOK(pdir)
				if err != nil {
					return err
				}
				var found []string
				for _, h := range hexes {
					if exists(filepath.Join(pdir, h.Name(), "data")) {
						found = append(found, alg.Name()+":"+h.Name())
					}
				}
				mu.Lock()
				for _, f := range found {
					out[f] = true
				}
				mu.Unlock()
				return nil
			})
		}
	}
	return eg.Wait()
}

// scanLinks returns the digests under dir/<alg>/<hex>/link.
func scanLinks(dir string) (map[string]bool, error) {
	out := map[string]bool{}
	algs, err := readDirOK(dir)
	if err != nil {
		return nil, err
	}
	for _, alg := range algs {
		hexes, err := readDirOK(filepath.Join(dir, alg.Name()))
		if err != nil {
			return nil, err
		}
		for _, h := range hexes {
			if exists(filepath.Join(dir, alg.Name(), h.Name(), "link")) {
				out[alg.Name()+":"+h.Name()] = true
			}
		}
	}
	return out, nil
}

func scanRepos(dir, name string, out map[string]*RepoOnDisk) error {
	ents, err := readDirOK(dir)
	if err != nil {
		return err
	}
	isRepo := false
	for _, e := range ents {
		if e.Name() == "_manifests" || e.Name() == "_layers" {
			isRepo = true
		}
	}
	if isRepo {
		r := &RepoOnDisk{}
		if r.Revisions, err = scanLinks(filepath.Join(dir, "_manifests", "revisions")); err != nil {
			return err
		}
		if r.Layers, err = scanLinks(filepath.Join(dir, "_layers")); err != nil {
			return err
		}
		out[name] = r
	}
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), "_") {
			child := e.Name()
			if name != "" {
				child = name + "/" + child
			}
			if err := scanRepos(filepath.Join(dir, e.Name()), child, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// Diff is one difference between a registry and its expectation.
type Diff struct {
	// Missing is true for something that should have survived (data loss),
	// false for something that should have been deleted (garbage left).
	Missing bool
	What    string // "blob", "revision" or "layer"
	Repo    string // "" for blobs
	Digest  string
}

// String formats d as "missing revision team-1/app-0@sha256:…".
func (d Diff) String() string {
	s := "extra"
	if d.Missing {
		s = "missing"
	}
	if d.Repo == "" {
		return fmt.Sprintf("%s %s %s", s, d.What, d.Digest)
	}
	return fmt.Sprintf("%s %s %s@%s", s, d.What, d.Repo, d.Digest)
}

// Compare lists how disk differs from exp, sorted. Layer links are compared
// only when layers is set.
func Compare(exp *Survivors, disk *OnDisk, layers bool) []Diff {
	var out []Diff
	diffSets := func(what, repo string, want []string, have map[string]bool) {
		w := make(map[string]bool, len(want))
		for _, d := range want {
			w[d] = true
			if !have[d] {
				out = append(out, Diff{Missing: true, What: what, Repo: repo, Digest: d})
			}
		}
		for d := range have {
			if !w[d] {
				out = append(out, Diff{What: what, Repo: repo, Digest: d})
			}
		}
	}
	diffSets("blob", "", exp.Blobs, disk.Blobs)
	empty := &RepoOnDisk{Revisions: map[string]bool{}, Layers: map[string]bool{}}
	for name, rs := range exp.Repos {
		rd := disk.Repos[name]
		if rd == nil {
			rd = empty
		}
		diffSets("revision", name, rs.Revisions, rd.Revisions)
		if layers {
			diffSets("layer", name, rs.Layers, rd.Layers)
		}
	}
	for name, rd := range disk.Repos {
		if exp.Repos[name] == nil {
			diffSets("revision", name, nil, rd.Revisions)
			if layers {
				diffSets("layer", name, nil, rd.Layers)
			}
		}
	}
	slices.SortFunc(out, func(a, b Diff) int {
		if a.Missing != b.Missing {
			if a.Missing {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.What, b.What), cmp.Compare(a.Repo, b.Repo), cmp.Compare(a.Digest, b.Digest))
	})
	return out
}
