package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, root, key, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenFSRefusesNonRegistry(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenFS(dir); err == nil || !strings.Contains(err.Error(), "not a registry rootdirectory") {
		t.Fatalf("OpenFS(empty dir) = %v, want a refusal", err)
	}
	if _, err := OpenFS(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("OpenFS(missing dir) succeeded")
	}
}

func TestFSDeletePrunesEmptyFoldersOnly(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, _ := ParseDigest("sha256:" + strings.Repeat("0a", 32))
	e, _ := ParseDigest("sha256:" + strings.Repeat("0b", 32))
	writeFile(t, root, BlobDataPath(d), "x")
	writeFile(t, root, BlobDataPath(e), "y")
	writeFile(t, root, TagCurrentPath("app", "v1"), d.String())
	writeFile(t, root, TagIndexLinkPath("app", "v1", d), d.String())
	s, err := OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var errs []error
	s.Delete(ctx, []string{BlobDataPath(d), TagCurrentPath("app", "v1"), TagIndexLinkPath("app", "v1", d), "docker/registry/v2/blobs/sha256/0a/nothing/data"}, func(_ string, err error) {
		errs = append(errs, err)
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for dir, gone := range map[string]bool{
		BlobDir(d):                  true,
		BlobPrefixDir(SHA256, "0a"): false, // fixed
		BlobDir(e):                  false,
		TagDir("app", "v1"):         true,
		TagsDir("app"):              false, // fixed
	} {
		_, err := os.Lstat(filepath.Join(root, dir))
		if gone != os.IsNotExist(err) {
			t.Errorf("%s: gone=%v, want %v (%v)", dir, !gone, gone, err)
		}
	}
}

func TestFSNeverFollowsSymlinks(t *testing.T) {
	ctx := context.Background()
	root, outside := t.TempDir(), t.TempDir()
	writeFile(t, outside, "secret", "sha256:"+strings.Repeat("0a", 32))
	writeFile(t, root, V2+"/repositories/app/_manifests/tags/v1/index/.keep", "")
	if err := os.Symlink(outside, filepath.Join(root, V2, "repositories/app/_manifests/tags/v1/current")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, V2, "repositories/link")); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.ReadFile(ctx, TagCurrentPath("app", "v1"), 100); err == nil {
		t.Error("read through a symlink pointing out of the root")
	}
	entries, err := s.ReadDir(ctx, RepositoriesDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name == "link" && e.Type != TypeOther {
			t.Errorf("symlink listed as %v", e.Type)
		}
	}
	var n int
	s.Delete(ctx, []string{"docker/registry/v2/repositories/link"}, func(string, error) { n++ })
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("the symlink's target was deleted: %v", err)
	}
}

func TestReadOnlyDeletesNothing(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, V2+"/blobs/x", "x")
	s, err := OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got error
	ReadOnly(s).Delete(context.Background(), []string{V2 + "/blobs/x"}, func(_ string, err error) { got = err })
	if !errors.Is(got, ErrReadOnly) {
		t.Fatalf("ReadOnly delete error = %v", got)
	}
	if _, err := os.Stat(filepath.Join(root, V2, "blobs/x")); err != nil {
		t.Fatal("ReadOnly store deleted a file")
	}
}

// TestFSStatChildrenMatchesStat checks the one-fstatat listing against
// ReadDir and Stat, on the fast path and on os.Root's, for every shape a
// blob folder may have.
func TestFSStatChildrenMatchesStat(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := V2 + "/blobs/sha256/ab"
	writeFile(t, root, dir+"/ab01/data", "blob")
	writeFile(t, root, dir+"/ab02/other", "no data")
	writeFile(t, root, dir+"/ab03/data/x", "data is a folder")
	writeFile(t, root, dir+"/ab05", "a file, not a folder")
	writeFile(t, root, "outside", "secret")
	if err := os.MkdirAll(filepath.Join(root, dir, "ab04"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "outside"), filepath.Join(root, dir, "ab04", "data")); err != nil {
		t.Fatal(err)
	}
	for _, fast := range []bool{true, false} {
		f, err := OpenFS(root)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.fast = f.fast && fast
		var got []string
		err = f.StatChildren(ctx, dir, "data", func(e Entry, o Object, err error) error {
			got = append(got, fmt.Sprintf("%s %v %s %d %v", e.Name, e.Type, o.Key, o.Size, err != nil))
			if e.Type == TypeDir {
				want, werr := f.Stat(ctx, dir+"/"+e.Name+"/data")
				if (werr != nil) != (err != nil) || want.Size != o.Size || !want.ModTime.Equal(o.ModTime) {
					t.Errorf("fast %v: %s: %+v, %v; Stat says %+v, %v", fast, e.Name, o, err, want, werr)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			fmt.Sprintf("ab01 %v %s/ab01/data 4 false", TypeDir, dir),
			fmt.Sprintf("ab02 %v  0 true", TypeDir),
			fmt.Sprintf("ab03 %v  0 true", TypeDir),
			fmt.Sprintf("ab04 %v  0 true", TypeDir),
			fmt.Sprintf("ab05 %v  0 false", TypeFile),
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("fast %v:\n%s\nwant\n%s", fast, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestFSDeleteNeverFollowsASymlinkedFolder deletes keys whose own folder is
// a symlink: on the fast path in a private prefix folder (the folder is
// checked, then "folder/file" unlinked from the prefix), in a prefix folder
// others may write to (the folder is opened without following symlinks),
// and on os.Root's: the target stays, the key fails, and a real folder next
// to it in the same batch still goes.
func TestFSDeleteNeverFollowsASymlinkedFolder(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		fast bool
		mode os.FileMode
	}{{true, 0o755}, {true, 0o777}, {false, 0o755}} {
		root, outside := t.TempDir(), t.TempDir()
		dir := V2 + "/blobs/sha256/ab"
		writeFile(t, outside, "data", "secret")
		writeFile(t, root, dir+"/ab01/data", "blob")
		writeFile(t, root, dir+"/ab03/data", "blob")
		if err := os.Symlink(outside, filepath.Join(root, dir, "ab02")); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(root, dir), c.mode); err != nil {
			t.Fatal(err)
		}
		f, err := OpenFS(root)
		if err != nil {
			t.Fatal(err)
		}
		f.fast = f.fast && c.fast
		errs := map[string]error{}
		f.Delete(ctx, []string{dir + "/ab01/data", dir + "/ab02/data", dir + "/ab03/data"}, func(k string, err error) { errs[k] = err })
		f.Close()
		if _, err := os.Stat(filepath.Join(outside, "data")); err != nil {
			t.Errorf("%+v: the symlinked folder's file was deleted: %v", c, err)
		}
		if errs[dir+"/ab02/data"] == nil {
			t.Errorf("%+v: delete through a symlinked folder reported no error", c)
		}
		for _, gone := range []string{dir + "/ab01", dir + "/ab03"} {
			if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) || errs[gone+"/data"] != nil {
				t.Errorf("%+v: %s: still there (%v) or failed (%v)", c, gone, err, errs[gone+"/data"])
			}
		}
	}
}
