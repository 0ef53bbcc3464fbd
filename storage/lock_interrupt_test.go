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
