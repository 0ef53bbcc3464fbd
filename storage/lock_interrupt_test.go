package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// TestAcquireLockInterrupted interrupts AcquireLock right after it wrote the
// lock, as a SIGINT arriving then does: it must either hold the lock (and
// give it back) or leave none, never leave a lock that no run will release.
func TestAcquireLockInterrupted(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, storage.V2), 0o755); err != nil {
		t.Fatal(err)
	}
	fsys, err := storage.OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fy := storagetest.NewFaulty(fsys)
	fy.Before = func(c storagetest.Call) {
		if c.Op == storagetest.OpReadFile && c.Key == storage.LockKey {
			cancel() // the lock is written; the signal comes now
		}
	}
	lock, _, acqErr := storage.AcquireLock(ctx, fy, storage.LockInfo{Host: "here", PID: 1, RunID: "run"}, false)
	if acqErr == nil {
		if err := lock.Release(context.WithoutCancel(ctx)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, storage.LockKey)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("AcquireLock interrupted after writing the lock returned %v, and the lock stays behind", acqErr)
	}
}

// TestReleaseRun removes the lock only when the run named holds it, and is
// no error when there is none: a run given up on inside AcquireLock may or
// may not have written it.
func TestReleaseRun(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, storage.V2), 0o755); err != nil {
		t.Fatal(err)
	}
	fsys, err := storage.OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	if err := storage.ReleaseRun(ctx, fsys, "mine"); err != nil {
		t.Fatalf("no lock: %v", err)
	}
	if _, _, err := storage.AcquireLock(ctx, fsys, storage.LockInfo{RunID: "other"}, false); err != nil {
		t.Fatal(err)
	}
	if err := storage.ReleaseRun(ctx, fsys, "mine"); err != nil {
		t.Fatalf("another run's lock: %v", err)
	}
	if held, err := storage.ReadLock(ctx, fsys); err != nil || held.RunID != "other" {
		t.Fatalf("another run's lock was touched: %+v, %v", held, err)
	}
	if err := storage.ReleaseRun(ctx, fsys, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.ReadLock(ctx, fsys); !storage.IsNotFound(err) {
		t.Fatalf("the run's own lock stays: %v", err)
	}
}
