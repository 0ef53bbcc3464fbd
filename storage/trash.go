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
	// TrashUnits lists the units of run's trash in restore's order, one
	// slice a rank, each sorted: what is referenced first (blobs and
	// uploads, links, tag history, tags), so that a restore stopped between
	// ranks leaves no tag pointing at a missing manifest. A name that does
	// not parse as a key of the layout is passed to bad and left out.
	TrashUnits(ctx context.Context, run string, bad func(name string, err error)) ([][]string, error)
	// RestoreTrash renames each unit (one of TrashUnits') of run's trash
	// back to its place in the layout, with one rename each, and calls
	// done once per unit with nil or the error that left it in the trash:
	// a name that is not a unit of the layout, something else than the
	// layout has there (a symlink), or a place in the layout that is taken
	// (ErrExists; never replaced). The folders made for a unit take the
	// owner and mode of the folder they are made in. Calls for distinct
	// units may run at once.
	RestoreTrash(ctx context.Context, run string, units []string, done func(unit string, err error))
	// PruneTrash removes the folders of run's trash left empty, then the
	// trash folder if it is empty.
	PruneTrash(ctx context.Context, run string) error
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

// TrashUnits implements Trasher. It lists folders down to the units and
// no further: a unit is known by its path (unitKind), and what it holds is
// checked when it is renamed back (fastRestore), so the listing is the
// folders above the units (a blob prefix folder, a repository's link
// folders), a small part of a trash of blob and link folders.
func (f *FS) TrashUnits(ctx context.Context, run string, bad func(string, error)) ([][]string, error) {
	if err := ValidTrashRun(run); err != nil {
		return nil, err
	}
	root := trashRoot(run) + "/"
	if _, err := f.ReadDir(ctx, trashRoot(run)); err != nil {
		return nil, err
	}
	ranks := make([][]string, numRanks)
	var list func(dir string) error
	list = func(dir string) error {
		entries, err := f.ReadDir(ctx, root+dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			key := dir + "/" + e.Name
			// A folder unit is a folder, an upload's file a file (an
			// upload's hashstates folder parses as one: it is listed); a
			// symlink is one too, for RestoreTrash to refuse and say why.
			if kind, file, err := unitKind(key); err == nil && (e.Type == TypeOther || (file != "") == (e.Type == TypeDir)) {
				r := restoreRank(kind)
				ranks[r] = append(ranks[r], key)
				continue
			}
			switch e.Type {
			case TypeDir:
				if err := list(key); err != nil && !IsNotFound(err) {
					return err
				}
			default:
				bad(key, fmt.Errorf("left in the trash: %s: not a unit of the layout", key))
			}
		}
		return nil
	}
	if err := list(V2); err != nil && !IsNotFound(err) {
		return nil, err
	}
	for _, r := range ranks {
		slices.Sort(r)
	}
	return ranks, nil
}

// unitKind parses unit as TrashUnit makes it: an upload's file, or the
// folder of a blob's data or of a link. It is the inverse of TrashUnit, so
// that a restore renames only what a sweep could have moved.
func unitKind(unit string) (kind KeyKind, file string, err error) {
	if k, err := ParseKey(unit); err == nil && k.Kind == KeyUploadFile {
		return k.Kind, "", nil
	}
	for _, file := range []string{"data", "link"} {
		if u, kind, err := TrashUnit(unit + "/" + file); err == nil && u == unit && kind != KeyUploadFile {
			return kind, file, nil
		}
	}
	return KeyUnknown, "", fmt.Errorf("%s: not a unit of the trash", unit)
}

// RestoreTrash implements Trasher.
func (f *FS) RestoreTrash(ctx context.Context, run string, units []string, done func(string, error)) {
	if err := ValidTrashRun(run); err != nil {
		for _, u := range units {
			done(u, err)
		}
		return
	}
	src, dst := dirFDs{}, dirFDs{}
	defer src.close()
	defer dst.close()
	for _, u := range units {
		if err := ctx.Err(); err != nil {
			done(u, err)
			continue
		}
		_, file, err := unitKind(u)
		if err != nil {
			done(u, fmt.Errorf("left in the trash: %w", err))
			continue
		}
		if f.fast {
			err = f.fastRestore(run, u, file, src, dst)
		} else {
			err = f.restoreUnit(trashRoot(run), u, file)
		}
		if errors.Is(err, ErrExists) {
			err = fmt.Errorf("%s: %w: left in the trash", path.Join(f.dir, u), ErrExists)
		} else if err != nil {
			err = f.wrap("restore", u, err)
		}
		done(u, err)
	}
}

// PruneTrash implements Trasher.
func (f *FS) PruneTrash(ctx context.Context, run string) error {
	if err := ValidTrashRun(run); err != nil {
		return err
	}
	_ = f.removeEmptyBelow(ctx, trashRoot(run))
	_ = f.root.Remove(TrashDir)
	return nil
}

// restoreUnit renames root/key back to key through os.Root, where openat2
// is missing: key must be what the layout has there (a folder holding a
// regular file named file, or, file "", a regular file), and its place
// free (else ErrExists).
func (f *FS) restoreUnit(root, key, file string) error {
	fi, err := f.root.Lstat(root + "/" + key)
	if err != nil {
		return err
	}
	if err := checkUnitMode(fi.Mode().Type(), file != ""); err != nil {
		return err
	}
	if file != "" {
		fi, err := f.root.Lstat(root + "/" + key + "/" + file)
		if err != nil {
			return err
		}
		if err := checkUnitMode(fi.Mode().Type(), false); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	if _, err := f.root.Lstat(key); err == nil {
		return ErrExists
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, err := f.mkdirLike(keyDir(key), new([]string)); err != nil {
		return err
	}
	return f.root.Rename(root+"/"+key, key)
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
			err = f.fastTrash(run, unit, file, src, dst)
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

// checkUnitMode checks that a unit's type m is what the layout has: a
// folder for a folder unit (wantDir), a regular file for an upload's file.
// A symlink or anything else is left alone.
func checkUnitMode(m fs.FileMode, wantDir bool) error {
	if wantDir && m != fs.ModeDir || !wantDir && m != 0 {
		return fmt.Errorf("%s where the layout has a %s: left alone", typeNameOr(m), map[bool]string{true: "folder", false: "file"}[wantDir])
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
