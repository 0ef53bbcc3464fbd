package storagetest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// TestWrappersKeepEveryCapability: on both backends, with a registry
// written by distribution's code (an upload in flight: a multipart upload
// on S3), ReadOnly(s), Faulty(s) and either over the other offer every read
// capability s offers and no other, and each one answers as s's does; the
// Faulty's calls are counted as the operations they stand for (so fault
// tests fail the walk production makes); ReadOnly's writes fail with
// ErrReadOnly, and it creates or trashes nothing.
func TestWrappersKeepEveryCapability(t *testing.T) {
	t.Parallel()
	for _, backend := range []struct {
		name string
		// open returns the registry to write, and how to open its store.
		open func(t *testing.T) (*storagetest.Registry, func() storage.Store)
		// reads are the read capabilities the backend has.
		reads []string
	}{
		{"filesystem", func(t *testing.T) (*storagetest.Registry, func() storage.Store) {
			root := t.TempDir()
			return storagetest.New(t, root), func() storage.Store {
				s, err := storage.OpenFS(root)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}, []string{"DirTimer", "ChildStatter", "NameStatter", "Opener"}},
		{"S3", func(t *testing.T) (*storagetest.Registry, func() storage.Store) {
			bucket := storagetest.NewBucket(t)
			return storagetest.NewS3(t, bucket, "registry"), func() storage.Store {
				endpoint, access, secret, region := storagetest.S3Server(t)
				s, err := storage.OpenS3(t.Context(), storage.S3Options{Bucket: bucket, RootDirectory: "registry", Region: region, Endpoint: endpoint,
					ForcePathStyle: true, AccessKey: access, SecretKey: secret})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
		}, []string{"KeyWalker", "Opener", "Multipart"}},
	} {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			reg, open := backend.open(t)
			img := reg.PushImage("lib/app", storagetest.ImageOpts{Layers: 2})
			reg.Tag("lib/app", "v1", img)
			reg.StartUpload("lib/app", 64)
			base := open()

			baseCaps := storage.CapabilitiesOf(base)
			if got := readNames(baseCaps); !slices.Equal(got, backend.reads) {
				t.Fatalf("%s offers the reads %v, want %v", base, got, backend.reads)
			}
			want := exercise(t, baseCaps, img)
			if backend.name == "S3" && !strings.Contains(want["Multipart"], "_uploads/") {
				t.Fatalf("the upload in flight is no multipart upload: %q", want["Multipart"])
			}

			for _, w := range []struct {
				name string
				wrap func(storage.Store) (storage.Store, *storagetest.Faulty)
			}{
				{"ReadOnly", func(s storage.Store) (storage.Store, *storagetest.Faulty) { return storage.ReadOnly(s), nil }},
				{"Faulty", func(s storage.Store) (storage.Store, *storagetest.Faulty) {
					f := storagetest.NewFaulty(s)
					return f, f
				}},
				{"ReadOnly(Faulty)", func(s storage.Store) (storage.Store, *storagetest.Faulty) {
					f := storagetest.NewFaulty(s)
					return storage.ReadOnly(f), f
				}},
				{"Faulty(ReadOnly)", func(s storage.Store) (storage.Store, *storagetest.Faulty) {
					f := storagetest.NewFaulty(storage.ReadOnly(s))
					return f, f
				}},
			} {
				s, f := w.wrap(base)
				c := storage.CapabilitiesOf(s)
				if got := readNames(c); !slices.Equal(got, backend.reads) {
					t.Errorf("%s offers the reads %v, the store it wraps %v", w.name, got, backend.reads)
				}
				// Each read answers as the wrapped store's does, and a
				// Faulty counts it.
				for name, answer := range exerciseEach(t, c, f, img) {
					if answer != want[name] {
						t.Errorf("%s's %s answers\n%s\nthe wrapped store's\n%s", w.name, name, answer, want[name])
					}
				}
				readOnly := strings.Contains(w.name, "ReadOnly")
				switch {
				case readOnly && (c.Creator != nil || c.Syncer != nil || c.Trasher != nil):
					t.Errorf("%s creates, flushes or trashes files", w.name)
				case !readOnly && ((c.Creator != nil) != (baseCaps.Creator != nil) || (c.Syncer != nil) != (baseCaps.Syncer != nil) || (c.Trasher != nil) != (baseCaps.Trasher != nil)):
					t.Errorf("%s does not create, flush or trash files as the store it wraps", w.name)
				case (c.DirRemover != nil) != (baseCaps.DirRemover != nil):
					t.Errorf("%s removes folders: %v, the store it wraps: %v", w.name, c.DirRemover != nil, baseCaps.DirRemover != nil)
				}
				if !readOnly {
					continue
				}
				if c.DirRemover != nil {
					if err := c.DirRemover.RemoveEmptyDirs(t.Context(), storage.UploadsDir("lib/app")); !errors.Is(err, storage.ErrReadOnly) {
						t.Errorf("%s removed folders: %v", w.name, err)
					}
				}
				if c.Multipart != nil {
					if err := c.Multipart.AbortMultipartUpload(t.Context(), storage.MultipartUpload{Key: "k", ID: "x"}); !errors.Is(err, storage.ErrReadOnly) {
						t.Errorf("%s aborted a multipart upload: %v", w.name, err)
					}
				}
			}
		})
	}
}

// readNames names the read capabilities c offers.
func readNames(c storage.Capabilities) []string {
	var out []string
	for _, x := range []struct {
		name string
		has  bool
	}{{"DirTimer", c.DirTimer != nil}, {"ChildStatter", c.ChildStatter != nil},
		{"NameStatter", c.NameStatter != nil}, {"KeyWalker", c.KeyWalker != nil},
		{"Opener", c.Opener != nil}, {"Multipart", c.Multipart != nil}} {
		if x.has {
			out = append(out, x.name)
		}
	}
	return out
}

// exerciseEach is exercise, checking that f (if set) counts each read.
func exerciseEach(t *testing.T, c storage.Capabilities, f *storagetest.Faulty, img storagetest.Image) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range readNames(c) {
		before := counted(f)
		one := c
		one.DirTimer, one.ChildStatter, one.NameStatter, one.KeyWalker, one.Opener, one.Multipart = nil, nil, nil, nil, nil, nil
		switch name {
		case "DirTimer":
			one.DirTimer = c.DirTimer
		case "ChildStatter":
			one.ChildStatter = c.ChildStatter
		case "NameStatter":
			one.NameStatter = c.NameStatter
		case "KeyWalker":
			one.KeyWalker = c.KeyWalker
		case "Opener":
			one.Opener = c.Opener
		case "Multipart":
			one.Multipart = c.Multipart
		}
		out[name] = exercise(t, one, img)[name]
		if f != nil && counted(f) == before {
			t.Errorf("%s went past the Faulty uncounted", name)
		}
	}
	return out
}

func counted(f *storagetest.Faulty) int {
	if f == nil {
		return 0
	}
	n := 0
	for _, op := range []storagetest.Op{storagetest.OpReadDir, storagetest.OpWalk, storagetest.OpStat, storagetest.OpReadFile} {
		n += f.Count(op)
	}
	return n
}

// exercise calls each read capability c offers on the registry and
// returns what each answered, as text; img is an image of lib/app.
func exercise(t *testing.T, c storage.Capabilities, img storagetest.Image) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	var b strings.Builder
	if dt := c.DirTimer; dt != nil {
		b.Reset()
		entries, mt, err := dt.ReadDirTime(ctx, storage.RepoDir("lib/app"))
		fmt.Fprintf(&b, "%v %v %v;", entries, mt.IsZero(), err)
		names := []string{"_manifests", "_layers", "missing"}
		err = dt.ModTimes(ctx, storage.RepoDir("lib/app"), names, func(i int, mt time.Time, err error) {
			fmt.Fprintf(&b, " %s %v %v", names[i], mt.IsZero(), err)
		})
		fmt.Fprintf(&b, " %v", err)
		out["DirTimer"] = b.String()
	}
	if cs := c.ChildStatter; cs != nil {
		b.Reset()
		dir := storage.BlobsDir() + "/sha256"
		err := cs.StatChildren(ctx, dir, "", func(e storage.Entry, o storage.Object, err error) error {
			return cs.StatChildren(ctx, dir+"/"+e.Name, storage.BlobDataName, func(e storage.Entry, o storage.Object, err error) error {
				fmt.Fprintf(&b, "%s %d %v;", e.Name, o.Size, err)
				return nil
			})
		})
		fmt.Fprintf(&b, " %v", err)
		out["ChildStatter"] = b.String()
	}
	if ns := c.NameStatter; ns != nil {
		b.Reset()
		dir := storage.RevisionsDir("lib/app") + "/sha256"
		names := []string{img.Digest.Encoded() + "/link", "0000/link", img.Digest.Encoded()}
		err := ns.StatNames(ctx, dir, names, func(i int, o storage.Object, err error) {
			fmt.Fprintf(&b, " %s %s %d %v %v", names[i], o.Key, o.Size, o.ModTime.IsZero(), err)
		})
		fmt.Fprintf(&b, " %v", err)
		out["NameStatter"] = b.String()
	}
	if kw := c.KeyWalker; kw != nil {
		b.Reset()
		err := kw.WalkKeys(ctx, storage.V2+"/", func(o storage.Object) error {
			fmt.Fprintf(&b, "%s %d;", o.Key, o.Size)
			return nil
		})
		fmt.Fprintf(&b, " %v", err)
		out["KeyWalker"] = b.String()
	}
	if op := c.Opener; op != nil {
		rc, o, err := op.Open(ctx, storage.TagCurrentPath("lib/app", "v1"))
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		out["Opener"] = fmt.Sprintf("%q %d %v", data, o.Size, err)
	}
	if ms := c.Multipart; ms != nil {
		var ups []storage.MultipartUpload
		err := ms.WalkMultipartUploads(ctx, storage.V2, func(u storage.MultipartUpload) error {
			ups = append(ups, u)
			return nil
		})
		out["Multipart"] = fmt.Sprintf("%v %v", ups, err)
	}
	if d := cmp.Diff(out, map[string]string{}); d == "" {
		t.Fatal("no capability exercised")
	}
	return out
}
