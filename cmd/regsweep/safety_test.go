package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/regsweep/regsweep/storage"
)

func TestGCRefusesWhileAnotherRunHoldsTheLock(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s, err := storage.OpenFS(f.reg.Root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := storage.AcquireLock(ctx, s, storage.LockInfo{Host: "elsewhere", PID: 42, RunID: "other"}, false); err != nil {
		t.Fatal(err)
	}
	before := f.reg.State()
	code, out, _ := gc(t, "--delete-untagged", f.reg.Root)
	if code == 0 || !strings.Contains(out, "held by elsewhere pid 42") {
		t.Fatalf("exit %d, output %q: want a refusal naming the holder", code, out)
	}
	if after := f.reg.State(); len(after.Blobs) != len(before.Blobs) {
		t.Fatal("a refused run deleted blobs")
	}
	// A dry run needs no lock.
	if code, _, _ := gc(t, "--dry-run", f.reg.Root); code != 0 {
		t.Fatalf("dry run under a lock: exit %d", code)
	}
	code, out, rep := gc(t, "--break-lock", f.reg.Root)
	if code != 0 || rep.Blobs != 1 || !strings.Contains(out, "broke the lock held by elsewhere pid 42") {
		t.Fatalf("--break-lock: exit %d, %d blobs, output %q", code, rep.Blobs, out)
	}
	if _, err := storage.ReadLock(ctx, s); !storage.IsNotFound(err) {
		t.Errorf("the lock is still there after the run: %v", err)
	}
}

// TestGCBreakLockRefusesALiveHolder: --break-lock does not remove the lock
// of a run whose process is alive on this host (here, a child of the test),
// and the refusal names it; once the holder is gone, a run without
// --break-lock says so.
func TestGCBreakLockRefusesALiveHolder(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process states are read on Linux only")
	}
	f := newFixture(t)
	ctx := context.Background()
	s, err := storage.OpenFS(f.reg.Root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	host, _ := os.Hostname()
	running := exec.Command("sleep", "60")
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = running.Process.Kill(); _ = running.Wait() }()
	live := storage.LockInfo{Host: host, PID: running.Process.Pid, StartedAt: time.Now(), RunID: "live", Command: "gc"}
	if _, _, err := storage.AcquireLock(ctx, s, live, false); err != nil {
		t.Fatal(err)
	}
	before := f.reg.State()
	code, out, _ := gc(t, "--break-lock", "--delete-untagged", f.reg.Root)
	if code == 0 || !strings.Contains(out, "held by "+live.String()+", a process alive on this host: --break-lock refused") {
		t.Fatalf("exit %d: want a refusal naming the live holder", code)
	}
	if after := f.reg.State(); len(after.Blobs) != len(before.Blobs) || len(after.Revisions) != len(before.Revisions) {
		t.Fatal("a refused run deleted something")
	}
	if got, err := storage.ReadLock(ctx, s); err != nil || got.RunID != "live" {
		t.Fatalf("the live holder's lock: %+v, %v", got, err)
	}

	// The holder's process is gone (a PID that ran and exited).
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.reg.Root, storage.LockKey)); err != nil {
		t.Fatal(err)
	}
	dead := storage.LockInfo{Host: host, PID: exited.Process.Pid, StartedAt: time.Now(), RunID: "dead", Command: "gc"}
	if _, _, err := storage.AcquireLock(ctx, s, dead, false); err != nil {
		t.Fatal(err)
	}
	code, out, _ = gc(t, f.reg.Root)
	if code == 0 || !strings.Contains(out, dead.String()+", whose process is gone; pass --break-lock") {
		t.Fatalf("exit %d: want a refusal saying the holder is gone", code)
	}
	if code, _, _ := gc(t, "--break-lock", f.reg.Root); code != 0 {
		t.Fatalf("--break-lock of a gone holder: exit %d", code)
	}
	f.assertServes(t)
}

func TestGCWithConfigRequiresReadOnlyOrStopped(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	write := func(name, readonly string) string {
		p := filepath.Join(dir, name)
		cfg := "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + f.reg.Root + "\n"
		if readonly != "" {
			cfg += "  maintenance:\n    readonly:\n      enabled: " + readonly + "\n"
		}
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	live := write("live.yml", "")
	code, out, _ := gc(t, "--config", live)
	if code != exitUsage || !strings.Contains(out, "storage.maintenance.readonly.enabled") {
		t.Fatalf("live config: exit %d, %q", code, out)
	}
	if code, _, _ := gc(t, "--dry-run", "--config", live); code != 0 {
		t.Errorf("a dry run with a live config: exit %d", code)
	}
	if code, _, _ := gc(t, "--registry-stopped", "--config", live); code != 0 {
		t.Errorf("--registry-stopped: exit %d", code)
	}
	if code, _, _ := gc(t, "--config", write("ro.yml", "true")); code != 0 {
		t.Errorf("read-only config: exit %d", code)
	}
	f.assertServes(t)
}
