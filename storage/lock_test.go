package storage

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLockIsExclusive(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	writeFile(t, root, V2+"/blobs/.keep", "")
	s, err := OpenFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Many runs race; exactly one wins.
	var wins int
	var mu sync.Mutex
	var wg sync.WaitGroup
	var held *Lock
	for i := range 16 {
		wg.Go(func() {
			l, _, err := AcquireLock(ctx, s, LockInfo{Host: "h", PID: i, RunID: string(rune('a' + i)), StartedAt: time.Now()}, false)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
				held = l
			} else if !errors.Is(err, ErrLocked) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d runs took the lock", wins)
	}
	_, _, err = AcquireLock(ctx, s, LockInfo{Host: "other", RunID: "z"}, false)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "held by h pid") || !strings.Contains(err.Error(), "--break-lock") {
		t.Fatalf("second run: %v", err)
	}
	l2, broken, err := AcquireLock(ctx, s, LockInfo{Host: "other", RunID: "z"}, true)
	if err != nil || broken == nil || broken.Host != "h" {
		t.Fatalf("break lock: %v, broken %+v", err, broken)
	}
	if err := held.Release(ctx); err == nil {
		t.Error("a run released a lock that another run broke and took")
	}
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLock(ctx, s); !IsNotFound(err) {
		t.Errorf("lock still there after release: %v", err)
	}
}
