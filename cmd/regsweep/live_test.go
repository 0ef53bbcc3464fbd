package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// lockedBuffer is a bytes.Buffer safe to read while a run writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// liveConfig writes a registry config for root, in read-only maintenance
// mode or not, and returns its path.
func liveConfig(t *testing.T, root string, readOnly bool) string {
	t.Helper()
	cfg := "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + root + "\n"
	if readOnly {
		cfg += "  maintenance:\n    readonly:\n      enabled: true\n"
	}
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGCSaysWhatItKnowsOfTheRegistry: on a plain LOCATION gc says once,
// before its first delete, that it cannot check that the registry is
// stopped or read-only, and how to make it check or say so;
// --registry-stopped silences it, with or without --config. The closing
// advice fits the run: leave read-only mode only after a read-only config,
// start the registry again after --registry-stopped, nothing after a dry
// run.
func TestGCSaysWhatItKnowsOfTheRegistry(t *testing.T) {
	t.Parallel()
	template := newFixture(t).reg.Root
	const notice = "cannot check that the registry is stopped or read-only"
	for _, c := range []struct {
		name       string
		args       func(root string) []string
		notice     bool
		next, not  string
		noNextStep bool
	}{
		{"plain-location", func(root string) []string { return []string{root} }, true, "If you made it read-only", "Then leave", false},
		{"registry-stopped", func(root string) []string { return []string{"--registry-stopped", root} }, false, "start the registry again", "read-only", false},
		{"registry-stopped-config", func(root string) []string {
			return []string{"--registry-stopped", "--config", liveConfig(t, root, false)}
		}, false, "start the registry again", "read-only", false},
		{"read-only-config", func(root string) []string { return []string{"--config", liveConfig(t, root, true)} }, false, "Then leave read-only mode", "start the registry again", false},
		{"dry-run", func(root string) []string { return []string{"--dry-run", root} }, false, "", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "reg")
			storagetest.CopyTree(t, template, root)
			var out lockedBuffer
			fy := storagetest.NewFaulty(nil)
			fy.Counted = storagetest.UnderV2
			var atFirstDelete string
			var once sync.Once
			fy.Before = func(call storagetest.Call) {
				if call.Op == storagetest.OpDelete {
					once.Do(func() { atFirstDelete = out.String() })
				}
			}
			withFaulty(t, root, fy)
			args := append([]string{"gc", "--delete-untagged", "--min-age", "0"}, c.args(root)...)
			code := runT(context.Background(), args, &out, &out)
			got := out.String()
			t.Logf("regsweep %s: exit %d\n%s", strings.Join(args, " "), code, got)
			if code != exitOK {
				t.Fatalf("exit %d", code)
			}
			if n := strings.Count(got, notice); n != map[bool]int{true: 1}[c.notice] {
				t.Errorf("the notice %q is said %d times", notice, n)
			}
			if c.notice {
				if !strings.Contains(atFirstDelete, notice) {
					t.Error("the notice comes after the first delete")
				}
				for _, how := range []string{"--config", "--registry-stopped"} {
					if !strings.Contains(got, how) {
						t.Errorf("the notice does not name %s", how)
					}
				}
			}
			_, next, _ := strings.Cut(got, "\nnext:")
			if c.noNextStep {
				if strings.Contains(got, "next:") || strings.Contains(got, "cache") {
					t.Errorf("a dry run gives advice for after a real run")
				}
				return
			}
			if !strings.Contains(next, c.next) || strings.Contains(next, c.not) {
				t.Errorf("closing advice %q: want %q, not %q", next, c.next, c.not)
			}
		})
	}
}

// TestRestoreChecksTheRegistryAsGCDoes: restore into a registry whose
// --config is live is refused before anything is written, unless
// --registry-stopped; into a plain LOCATION it says it cannot check.
func TestRestoreChecksTheRegistryAsGCDoes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	archive := filepath.Join(t.TempDir(), "undo.tar.zst")
	if code, _, _ := gc(t, "--registry-stopped", "--delete-untagged", "--archive", archive, f.reg.Root); code != exitOK {
		t.Fatal("gc --archive failed")
	}
	after := f.reg.State()
	live := liveConfig(t, f.reg.Root, false)
	code, out := regsweep(t, "restore", "-q", archive, "--config", live)
	if code != exitUsage || !strings.Contains(out, "storage.maintenance.readonly.enabled") {
		t.Errorf("restore into a live registry: exit %d: want %d and a refusal", code, exitUsage)
	}
	if len(f.reg.State().Blobs) != len(after.Blobs) {
		t.Error("a refused restore wrote blobs")
	}
	if _, err := os.Stat(filepath.Join(f.reg.Root, storage.LockKey)); !os.IsNotExist(err) {
		t.Errorf("lock: %v", err)
	}
	other := t.TempDir()
	if code, out := regsweep(t, "restore", "-q", archive, other); code != exitOK || !strings.Contains(out, "cannot check that the registry is stopped or read-only") {
		t.Errorf("restore into a plain LOCATION: exit %d, no notice", code)
	}
	if code, out := regsweep(t, "restore", "-q", "--registry-stopped", archive, "--config", live); code != exitOK || strings.Contains(out, "cannot check") {
		t.Errorf("restore --registry-stopped --config live: exit %d", code)
	}
	if len(f.reg.State().Blobs) == len(after.Blobs) {
		t.Error("restore wrote nothing back")
	}
}

// TestGCLeavesNoLockWhenTakingItFails: the lock is written, then its
// read-back fails: the run exits 1 and removes the lock it wrote (it stayed
// behind, with no run to release it).
func TestGCLeavesNoLockWhenTakingItFails(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "reg")
	storagetest.CopyTree(t, sampleDir, root)
	fy := storagetest.NewFaulty(nil, storagetest.Fault{Op: storagetest.OpReadFile, N: 1})
	fy.Counted = func(key string) bool { return key == storage.LockKey }
	withFaulty(t, root, fy)
	code, out := regsweep(t, "gc", "--registry-stopped", root)
	if code != exitError || !strings.Contains(out, "read back") {
		t.Errorf("exit %d: want %d, the read-back failed", code, exitError)
	}
	if _, err := os.Stat(filepath.Join(root, storage.LockKey)); !os.IsNotExist(err) {
		t.Errorf("the lock the run wrote stays: %v", err)
	}
}
