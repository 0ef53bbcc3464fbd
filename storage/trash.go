package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// TrashDir is the folder at the storage root, beside docker/ and outside
// the layout the registry serves, into which a sweep on a filesystem moves
// what it deletes: TrashDir/<run>/<key's unit>, the unit keeping its key
// (docker/registry/v2/...). Moving a blob folder is one rename, where
// deleting it unlinks its data and frees its blocks (with discard, one
// synchronous trim a file): the registry may leave read-only mode once the
// last rename is done, and the trash is freed after. The run's lock covers
// its trash: only a run holding the lock moves into, frees or restores
// from a trash.
const TrashDir = "regsweep-trash"

// ErrNoTrash is wrapped by the Trash error of a key that cannot be moved
// into the trash (the trash is on another filesystem: EXDEV; or the store
// cannot rename safely here). The caller deletes such a key in place.
var ErrNoTrash = errors.New("cannot be moved into the trash")

// Trasher is implemented by stores that can take what a sweep deletes out
// of the layout with one rename a key (a filesystem). Every method may be
// called from many goroutines at once.
type Trasher interface {
	// Trash moves the unit of each key (see TrashUnit) into the trash
	// folder of run, with one rename each, and removes the folders the
	// move left empty, up to the layout's fixed folders, as Delete does. It
	// calls done once per key with nil or the error that key met; a key
	// already gone counts as moved; an error wrapping ErrNoTrash says the
	// key was left where it is and may be deleted in place.
	Trash(ctx context.Context, run string, keys []string, done func(key string, err error))
	// Trashes lists the run folders of the trash, sorted; a name that is
	// not a valid run name (ValidTrashRun) is left out, and left alone.
	Trashes(ctx context.Context) ([]string, error)
	// TrashParts lists folders of run's trash that RemoveTrash can free
	// independently of each other (a blob prefix folder, a repository), so
	// that a caller can free them at once.
	TrashParts(ctx context.Context, run string) ([]string, error)
	// RemoveTrash removes part (one of TrashParts, or "" for the whole run
	// folder, and then the trash folder if it is left empty) and
	// everything under it, without following a symlink.
	RemoveTrash(ctx context.Context, run, part string) error
	// RestoreTrash renames every unit of run's trash back to its place in
	// the layout, what is referenced first (in restore's order: blobs and
	// uploads, links, tag history, tags), and calls fn with each unit and nil,
	// or the error that left it in the trash: a name that does not parse
	// as a key of the layout, or a place in the layout that is taken. The
	// folders made for a unit take the owner and mode of the folder they
	// are made in. The trash's folders left empty are removed.
	RestoreTrash(ctx context.Context, run string, fn func(unit string, err error)) error
}

var _ Trasher = (*FS)(nil)

// ValidTrashRun checks a trash run folder's name: letters, digits, '.',
// '_' and '-', at most 64, not starting with a dot. A run's name is its run
// ID; anything else found in the trash folder is foreign.
func ValidTrashRun(run string) error {
	if run == "" || len(run) > 64 || run[0] == '.' || strings.IndexFunc(run, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) >= 0 {
		return fmt.Errorf("trash run %q: want letters, digits, '.', '_' or '-', at most 64, not starting with '.'", run)
	}
	return nil
}

// TrashUnit returns what moving key out of the layout moves: the folder
// holding it for blob data, links and a tag's current link (each folder
// holds that one file in the layout, and deleting the key leaves it
// empty), the file itself for an upload's files. Any other key is an
// error: it is never moved.
func TrashUnit(key string) (string, KeyKind, error) {
	k, err := ParseKey(key)
	if err != nil {
		return "", KeyUnknown, err
	}
	switch k.Kind {
	case KeyBlobData, KeyLayerLink, KeyRevisionLink, KeyTagCurrent, KeyTagIndex:
		return keyDir(key), k.Kind, nil
	case KeyUploadFile:
		return key, k.Kind, nil
	}
	return "", KeyUnknown, fmt.Errorf("%s: not a key the trash takes", key)
}

// trashRoot is the folder of run's trash.
func trashRoot(run string) string { return TrashDir + "/" + run }

// Trashes implements Trasher.
func (f *FS) Trashes(ctx context.Context) ([]string, error) {
	entries, err := f.ReadDir(ctx, TrashDir)
	if IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var runs []string
	for _, e := range entries {
		if e.Type == TypeDir && ValidTrashRun(e.Name) == nil {
			runs = append(runs, e.Name)
		}
	}
	return runs, nil
}

// TrashParts implements Trasher: the blob prefix folders of each
// algorithm, then each repository's _layers, _manifests and _uploads.
func (f *FS) TrashParts(ctx context.Context, run string) ([]string, error) {
	if err := ValidTrashRun(run); err != nil {
		return nil, err
	}
	var parts []string
	blobs := trashRoot(run) + "/" + BlobsDir()
	algs, err := f.ReadDir(ctx, blobs)
	if err != nil && !IsNotFound(err) {
		return nil, err
	}
	for _, a := range algs {
		if a.Type != TypeDir {
			continue
		}
		prefixes, err := f.ReadDir(ctx, blobs+"/"+a.Name)
		if err != nil && !IsNotFound(err) {
			return nil, err
		}
		for _, p := range prefixes {
			if p.Type == TypeDir {
				parts = append(parts, BlobsDir()+"/"+a.Name+"/"+p.Name)
			}
		}
	}
	// Each repository's _layers, _manifests and _uploads, found by walking
	// the folders of nested repository names.
	var walk func(dir string) error
	walk = func(dir string) error {
		entries, err := f.ReadDir(ctx, trashRoot(run)+"/"+dir)
		if IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range entries {
			switch {
			case e.Type != TypeDir:
			case IsRepoMarker(e.Name):
				parts = append(parts, dir+"/"+e.Name)
			default:
				if err := walk(dir + "/" + e.Name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(RepositoriesDir()); err != nil {
		return nil, err
	}
	return parts, nil
}

// RemoveTrash implements Trasher.
func (f *FS) RemoveTrash(ctx context.Context, run, part string) error {
	if err := ValidTrashRun(run); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := trashRoot(run)
	if part != "" {
		if slices.ContainsFunc(strings.Split(part, "/"), notPlain) {
			return fmt.Errorf("free trash %s: %q: empty or dot segment", run, part)
		}
		dir += "/" + part
	}
	// The trash is untrusted: the folder must resolve without a symlink
	// (a symlinked run or part is refused, not followed into the layout),
	// and nothing under it is followed.
	if err := f.freeDir(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return f.wrap("free trash", dir, err)
	}
	if part == "" {
		_ = f.root.Remove(TrashDir) // fails, harmlessly, while another run's trash is kept
	}
	return nil
}

// RestoreTrash implements Trasher.
func (f *FS) RestoreTrash(ctx context.Context, run string, fn func(unit string, err error)) error {
	if err := ValidTrashRun(run); err != nil {
		return err
	}
	root := trashRoot(run)
	if _, err := f.ReadDir(ctx, root); err != nil {
		return err
	}
	type unit struct {
		key  string
		rank int
	}
	var units []unit
	seen := map[string]bool{}
	err := f.Walk(ctx, root+"/"+V2, func(o Object) error {
		key := strings.TrimPrefix(o.Key, root+"/")
		u, kind, err := TrashUnit(key)
		if err != nil {
			fn(key, fmt.Errorf("left in the trash: %w", err))
			return nil
		}
		if !seen[u] {
			seen[u] = true
			units = append(units, unit{u, restoreRank(kind)})
		}
		return nil
	})
	if err != nil && !IsNotFound(err) {
		return err
	}
	slices.SortStableFunc(units, func(a, b unit) int { return a.rank - b.rank })
	for _, u := range units {
		if err := ctx.Err(); err != nil {
			return err
		}
		fn(u.key, f.restoreUnit(root, u.key))
	}
	_ = f.removeEmptyBelow(ctx, root)
	_ = f.root.Remove(TrashDir)
	return nil
}

// restoreUnit renames root/key back to key, refusing a taken place.
func (f *FS) restoreUnit(root, key string) error {
	if _, err := f.root.Lstat(key); err == nil {
		return fmt.Errorf("%s: %w: left in the trash", path.Join(f.dir, key), ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return f.wrap("restore", key, err)
	}
	if _, err := f.mkdirLike(keyDir(key), new([]string)); err != nil {
		return f.wrap("restore", keyDir(key), err)
	}
	if err := f.root.Rename(root+"/"+key, key); err != nil {
		return f.wrap("restore", key, err)
	}
	return nil
}

// Trash implements Trasher. Without openat2 (old kernels, other systems)
// nothing is moved: every key is ErrNoTrash, and is deleted in place.
func (f *FS) Trash(ctx context.Context, run string, keys []string, done func(string, error)) {
	if err := ValidTrashRun(run); err != nil || !f.fast {
		if err == nil {
			err = errors.New("no safe rename on this system")
		}
		for _, key := range keys {
			done(key, fmt.Errorf("trash %s: %w: %w", path.Join(f.dir, key), ErrNoTrash, err))
		}
		return
	}
	src := dirFDs{}
	defer src.close()
	dst := map[string]int{}
	defer closeTrashDirs(dst)
	var emptied []string
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			done(key, err)
			continue
		}
		unit, kind, err := TrashUnit(key)
		if err == nil {
			file := ""
			if kind != KeyUploadFile {
				file = keyBase(key)
			}
			err = f.fastTrash(run, unit, file, kind == KeyLayerLink || kind == KeyTagIndex, src, dst)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			done(key, fmt.Errorf("trash %s: %w", path.Join(f.dir, key), err))
			continue
		}
		emptied = addDir(emptied, keyDir(unit))
		done(key, nil)
	}
	f.pruneAll(emptied, src)
}

// checkNoSymlinksSlow checks, without openat2, that dir resolves to a
// folder without a symlink in its path: each component
// of dir is lstat'ed in turn.
func (f *FS) checkNoSymlinksSlow(dir string) error {
	p := ""
	for _, c := range strings.Split(dir, "/") {
		p = path.Join(p, c)
		fi, err := f.root.Lstat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: %s, not a folder", p, typeNameOr(fi.Mode().Type()))
		}
	}
	return nil
}

// typeNameOr names a file's type for messages, a regular file included.
func typeNameOr(m fs.FileMode) string {
	if m == 0 {
		return "a file"
	}
	return typeName(m)
}
