package storagetest

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// State is what a registry tree holds, read from the files on disk. Digests of links are
// taken from their paths; only a tag's current link is read.
type State struct {
	// Blobs holds every blob with a data file.
	Blobs map[digest.Digest]bool
	// Revisions holds every manifest revision link, as "repo@digest".
	Revisions map[string]bool
	// Tags maps "repo:tag" to the digest in the tag's current link.
	Tags map[string]digest.Digest
	// LayerLinks holds every layer link, as "repo@digest".
	LayerLinks map[string]bool
	// TagIndex holds every entry of the tags' histories, as "repo:tag@digest".
	TagIndex map[string]bool
	// Uploads holds every upload directory, as "repo/uuid".
	Uploads map[string]bool
}

// Snapshot reads the registry tree under root (root/docker/registry/v2) directly from the
// file system, with no help from distribution or from regsweep's packages. A root with no
// tree yet gives an empty State.
func Snapshot(t testing.TB, root string) State {
	t.Helper()
	s := newState()
	base := filepath.Join(root, "docker", "registry", "v2")
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == base && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		read := func() ([]byte, error) { return os.ReadFile(p) }
		if !d.Type().IsRegular() {
			// A FIFO would block the read; a test put it there.
			read = func() ([]byte, error) { return nil, nil }
		}
		return s.add(filepath.ToSlash(rel), read)
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return s
}

func newState() State {
	return State{
		Blobs:      map[digest.Digest]bool{},
		Revisions:  map[string]bool{},
		Tags:       map[string]digest.Digest{},
		LayerLinks: map[string]bool{},
		TagIndex:   map[string]bool{},
		Uploads:    map[string]bool{},
	}
}

// add records the file rel (relative to docker/registry/v2, slash-separated) in s; read
// returns its content, and is called for a tag's current link only.
func (s State) add(rel string, read func() ([]byte, error)) error {
	parts := strings.Split(rel, "/")
	dg := func(alg, hex string) digest.Digest { return digest.Digest(alg + ":" + hex) }
	switch parts[0] {
	case "blobs": // blobs/<alg>/<2 hex>/<hex>/data
		if len(parts) == 5 && parts[4] == "data" {
			s.Blobs[dg(parts[1], parts[3])] = true
		}
	case "repositories":
		i := 1
		for i < len(parts) && !strings.HasPrefix(parts[i], "_") {
			i++
		}
		if i == 1 || i == len(parts) {
			return nil
		}
		repo, rest := strings.Join(parts[1:i], "/"), parts[i:]
		switch {
		case match(rest, "_layers", "*", "*", "link"):
			s.LayerLinks[repo+"@"+dg(rest[1], rest[2]).String()] = true
		case match(rest, "_manifests", "revisions", "*", "*", "link"):
			s.Revisions[repo+"@"+dg(rest[2], rest[3]).String()] = true
		case match(rest, "_manifests", "tags", "*", "current", "link"):
			b, err := read()
			if err != nil {
				return err
			}
			s.Tags[repo+":"+rest[2]] = digest.Digest(b)
		case match(rest, "_manifests", "tags", "*", "index", "*", "*", "link"):
			s.TagIndex[repo+":"+rest[2]+"@"+dg(rest[4], rest[5]).String()] = true
		case len(rest) >= 3 && rest[0] == "_uploads":
			s.Uploads[repo+"/"+rest[1]] = true
		}
	}
	return nil
}

// match reports whether parts equals pattern, where "*" matches any one element.
func match(parts []string, pattern ...string) bool {
	if len(parts) != len(pattern) {
		return false
	}
	for i, p := range pattern {
		if p != "*" && p != parts[i] {
			return false
		}
	}
	return true
}

// CopyTree copies the tree under src to dst (created if needed), keeping file modes and the
// modification times of files and directories.
func CopyTree(t testing.TB, src, dst string) {
	t.Helper()
	type dir struct {
		path string
		info fs.FileInfo
	}
	var dirs []dir
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, dir{target, info})
			return os.MkdirAll(target, 0o755)
		}
		if err := copyFile(p, target, info.Mode().Perm()); err != nil {
			return err
		}
		return os.Chtimes(target, info.ModTime(), info.ModTime())
	})
	// Children first: writing into a directory changes its modification time.
	for i := len(dirs) - 1; err == nil && i >= 0; i-- {
		if err = os.Chmod(dirs[i].path, dirs[i].info.Mode().Perm()); err == nil {
			err = os.Chtimes(dirs[i].path, dirs[i].info.ModTime(), dirs[i].info.ModTime())
		}
	}
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

func copyFile(src, dst string, perm fs.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = io.Copy(out, in)
	return err
}
