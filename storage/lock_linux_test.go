package storage

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLockTellsALiveHolderFromAGoneOne: on the holder's host, a refusal
// says whether its process is alive; --break-lock is refused while it is,
// naming it, and goes through once it is gone, when its PID belongs to a
// process started after the lock, or when it ran on another host.
func TestLockTellsALiveHolderFromAGoneOne(t *testing.T) {
	ctx := context.Background()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	running := exec.Command("sleep", "60")
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = running.Process.Kill(); _ = running.Wait() }()
	now := time.Now()
	for _, tc := range []struct {
		name         string
		holder       LockInfo
		refusal      string // without --break-lock
		breakRefused bool
	}{
		{"alive here", LockInfo{Host: host, PID: running.Process.Pid, StartedAt: now}, "a process alive on this host; wait for it to end", true},
		{"this process", LockInfo{Host: host, PID: os.Getpid(), StartedAt: now}, "whose process is gone; pass --break-lock", false},
		{"gone here", LockInfo{Host: host, PID: exited.Process.Pid, StartedAt: now}, "whose process is gone; pass --break-lock", false},
		{"PID reused here", LockInfo{Host: host, PID: running.Process.Pid, StartedAt: now.Add(-365 * 24 * time.Hour)}, "whose process is gone", false},
		{"another host", LockInfo{Host: host + "-other", PID: running.Process.Pid, StartedAt: now}, "on another host: whether it is alive cannot be told from here; if that run is gone, pass --break-lock", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, root, V2+"/blobs/.keep", "")
			s, err := OpenFS(root)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tc.holder.RunID, tc.holder.Command = "holder", "gc"
			if _, _, err := AcquireLock(ctx, s, tc.holder, false); err != nil {
				t.Fatal(err)
			}
			me := LockInfo{Host: host, PID: os.Getpid(), StartedAt: now, RunID: "me"}
			_, _, err = AcquireLock(ctx, s, me, false)
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), tc.holder.String()) || !strings.Contains(err.Error(), tc.refusal) {
				t.Errorf("refusal %q, want it to name the holder and say %q", err, tc.refusal)
			}
			l, broken, err := AcquireLock(ctx, s, me, true)
			if tc.breakRefused {
				if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "--break-lock refused") || !strings.Contains(err.Error(), tc.holder.String()) {
					t.Errorf("--break-lock of a live holder: %v", err)
				}
				if got, err := ReadLock(ctx, s); err != nil || got.RunID != "holder" {
					t.Errorf("the live holder's lock is gone: %+v, %v", got, err)
				}
				return
			}
			if err != nil || broken == nil || broken.RunID != "holder" {
				t.Fatalf("--break-lock: %v, broken %+v", err, broken)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLockHolderReapedLateIsGone: a holder killed and not yet reaped by its
// parent (a zombie) is gone, not alive.
func TestLockHolderReapedLateIsGone(t *testing.T) {
	host, _ := os.Hostname()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	info := LockInfo{Host: host, PID: cmd.Process.Pid, StartedAt: time.Now()}
	self := LockInfo{Host: host, PID: os.Getpid()}
	if st := info.State(self); st != HolderAlive {
		t.Errorf("a running holder: state %d, want alive", st)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Wait for its exit without reaping it (WNOWAIT): a zombie now.
	var si unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &si, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if st := info.State(self); st != HolderGone {
		t.Errorf("a killed holder not yet reaped: state %d, want gone", st)
	}
	_ = cmd.Wait()
}
