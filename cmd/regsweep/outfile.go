package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/regsweep/regsweep/storage"
)

// output is a file a run writes beside the storage: a --report, the
// --archive, a plan's -o.
type output struct {
	flag string // how the command line named it, for messages
	path string
}

// checkOutputs checks, before anything is read from storage, every file the
// run will write: its folder exists and the run can create files in it (a
// run that fails to write its report after deleting leaves the admin
// without the record), it is no folder, FIFO or device, it is not inside the
// registry's layout or its lock, symlinks resolved (writing through a
// symlink to a blob's data would replace the blob), and no two outputs are
// one file.
func checkOutputs(loc storage.Location, outs []output) error {
	seen := map[string]string{}
	for _, o := range outs {
		target, err := outputTarget(o.path)
		if err != nil {
			return usageError{fmt.Errorf("%s %s: %w", o.flag, o.path, err)}
		}
		if loc.Kind == storage.KindFilesystem {
			if err := outsideRegistry(loc.Dir, target); err != nil {
				return usageError{fmt.Errorf("%s %s: %w", o.flag, o.path, err)}
			}
		}
		if other, ok := seen[target]; ok {
			return usageError{fmt.Errorf("%s %s: the same file as %s", o.flag, o.path, other)}
		}
		seen[target] = o.flag + " " + o.path
		f, err := os.CreateTemp(filepath.Dir(target), ".regsweep-check-*")
		if err != nil {
			return usageError{fmt.Errorf("%s %s: cannot create files in its folder: %w", o.flag, o.path, unwrapPath(err))}
		}
		f.Close()
		os.Remove(f.Name())
	}
	return nil
}

// outputTarget is the file writing name replaces: name, or the file its
// symlinks lead to; the folder's symlinks are resolved too. It fails when
// the folder is missing or the file is not a regular one.
func outputTarget(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty file name")
	}
	target, err := filepath.EvalSymlinks(name)
	if err != nil {
		// Not there yet (or a dangling symlink, which the rename replaces):
		// the folder must be.
		dir, derr := filepath.EvalSymlinks(filepath.Dir(name))
		if derr != nil {
			return "", fmt.Errorf("its folder: %w", unwrapPath(derr))
		}
		target = filepath.Join(dir, filepath.Base(name))
	}
	target, err = filepath.Abs(target)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", unwrapPath(err)
	case !fi.Mode().IsRegular():
		what := "not a regular file"
		switch m := fi.Mode(); {
		case m.IsDir():
			what = "a folder"
		case m&fs.ModeNamedPipe != 0:
			what = "a FIFO"
		case m&fs.ModeSocket != 0:
			what = "a socket"
		case m&fs.ModeDevice != 0:
			what = "a device"
		}
		return "", fmt.Errorf("is %s: an output file is a regular file, replaced whole", what)
	}
	if fi, err := os.Stat(filepath.Dir(target)); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("its folder %s is no folder", filepath.Dir(target))
	}
	return target, nil
}

// outsideRegistry refuses a target inside the layout of the registry rooted
// at root, or its lock file. The folders above the target are compared with
// the layout's folder as files (device and inode), so that a bind mount or a
// second path to the same folder is caught too.
func outsideRegistry(root, target string) error {
	layout, err := os.Stat(filepath.Join(root, "docker"))
	if err != nil {
		return nil // no layout: OpenFS refuses the location anyway
	}
	if rootFi, err := os.Stat(root); err == nil && filepath.Base(target) == storage.LockKey {
		if dirFi, err := os.Stat(filepath.Dir(target)); err == nil && os.SameFile(rootFi, dirFi) {
			return fmt.Errorf("is the registry's lock file")
		}
	}
	for p := target; ; {
		if fi, err := os.Stat(p); err == nil && os.SameFile(fi, layout) {
			return fmt.Errorf("resolves to %s, inside the registry's layout %s: regsweep never writes there", target, filepath.Join(root, "docker"))
		}
		up := filepath.Dir(p)
		if up == p {
			return nil
		}
		p = up
	}
}

// writeFileAtomic writes name through a temporary file in the folder of the
// file it replaces (see outputTarget), synced, then renamed into place: a
// failed or interrupted write leaves the previous file whole. The file
// keeps the previous one's mode, or gets perm.
func writeFileAtomic(name string, perm fs.FileMode, write func(io.Writer) error) error {
	target, err := outputTarget(name)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if fi, err := os.Stat(target); err == nil {
		perm = fi.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, unwrapPath(err))
	}
	tmp := f.Name()
	err = write(f)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, target)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w; the previous file is left as it was", name, unwrapPath(err))
	}
	return nil
}

// unwrapPath drops a *PathError's operation and path: messages here name
// the file already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// openInput opens a file regsweep reads (a plan, an archive), refusing what
// is not a regular file: a FIFO would block the run, and an archive is read
// twice.
func openInput(name string) (*os.File, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", name, fi.Mode().Type())
	}
	return os.Open(name)
}
