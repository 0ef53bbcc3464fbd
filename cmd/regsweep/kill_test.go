package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
	"github.com/regsweep/regsweep/storage/storagetest/gen"
)

// buildRegsweep builds the command into a temporary folder.
func buildRegsweep(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to build regsweep with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "regsweep")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// phaseDone matches the line regsweep logs on stderr at the end of a phase,
// as a plain line ("walk: 7208 objects in 0.08s") or a log record
// (msg="phase done" phase=walk objects=7208).
var phaseDone = regexp.MustCompile(`^(\w+): (?:\d+ objects|done)|phase done.* phase=(\w+)`)

// proc is a regsweep process under test.
type proc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	start  time.Time

	mu     sync.Mutex
	stderr strings.Builder
	// phases receives the name of each phase as regsweep reports its end
	// on stderr ("walk: 123 objects in 0.05s").
	phases chan string
	ended  []string // the phases reported so far
	done   chan struct{}
	err    error
}

func startRegsweep(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	return startRegsweepEnv(t, bin, nil, args...)
}

// startRegsweepEnv is startRegsweep with vars ("KEY=value") added to the
// process's environment.
func startRegsweepEnv(t *testing.T, bin string, vars []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), phases: make(chan string, 16), done: make(chan struct{})}
	if len(vars) > 0 {
		p.cmd.Env = append(os.Environ(), vars...)
	}
	p.cmd.Stdout = &p.stdout
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.start = time.Now()
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := phaseDone.FindStringSubmatch(line); m != nil {
				p.mu.Lock()
				p.ended = append(p.ended, m[1]+m[2])
				p.mu.Unlock()
				p.phases <- m[1] + m[2]
			}
		}
		close(p.phases)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// waitPhase waits until the process reports the end of phase, and reports
// whether it did before exiting.
func (p *proc) waitPhase(phase string) bool {
	for name := range p.phases {
		if name == phase {
			return true
		}
	}
	return false
}

// wait waits for the end of the process and returns whether a signal ended
// it, and its exit status otherwise.
func (p *proc) wait(t *testing.T) (signaled bool, code int) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatal("regsweep still running after a minute")
	}
	for range p.phases {
	}
	ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	p.mu.Lock()
	t.Logf("%s: %v after %v\nstdout:\n%s\nstderr:\n%s", strings.Join(p.cmd.Args, " "), p.cmd.ProcessState, time.Since(p.start).Round(time.Millisecond), p.stdout.String(), p.stderr.String())
	p.mu.Unlock()
	return ws.Signaled(), p.cmd.ProcessState.ExitCode()
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String() + p.stderr.String()
}

// killPoint is when a test kills a run: delay after the end of phase, or
// after the start of the process when phase is "".
type killPoint struct {
	phase string
	delay time.Duration
}

func (k killPoint) String() string {
	if k.phase == "" {
		return fmt.Sprintf("%v after start", k.delay)
	}
	return fmt.Sprintf("%v after %s", k.delay, k.phase)
}

// TestGCSurvivesSIGKILL runs the real binary on a generated registry of
// about 3,000 blobs and kills it with SIGKILL at several points, each run
// starting from where the killed one left off. After every kill,
// distribution's code must serve every tag; the killed run's lock stays and
// a run without --break-lock refuses naming the dead holder; a last run
// with --break-lock must leave exactly what the generator says a complete
// --delete-untagged collection leaves. Before the kills, a SIGINT must end
// the run with status 130 and no lock left: in the walk, having deleted
// nothing; in the sweep, with a report saying "interrupted".
func TestGCSurvivesSIGKILL(t *testing.T) {
	bin := buildRegsweep(t)
	root := filepath.Join(t.TempDir(), "registry")
	g := gen.Build(gen.Options{Blobs: 3000, Seed: 11})
	if _, err := g.Write(context.Background(), root, 8); err != nil {
		t.Fatal(err)
	}
	tags := storagetest.Snapshot(t, root).Tags
	reg := storagetest.New(t, root)
	assertServe := func(when string) {
		t.Helper()
		reg.Reopen()
		var failed []string
		for rt := range tags {
			if slices.Contains(g.Broken, rt) {
				continue // broken by the generator, on purpose
			}
			i := strings.LastIndexByte(rt, ':')
			if err := reg.Serves(context.Background(), rt[:i], rt[i+1:]); err != nil {
				failed = append(failed, err.Error())
			}
		}
		slices.Sort(failed)
		if len(failed) > 0 {
			t.Fatalf("%s: %d of %d tags no longer serve:\n%s", when, len(failed), len(tags), strings.Join(failed, "\n"))
		}
	}
	assertServe("before gc")
	lock := filepath.Join(root, storage.LockKey)
	gcArgs := func(extra ...string) []string {
		return append(append([]string{"gc"}, extra...), "--delete-untagged", "--min-age", "0", root)
	}

	t.Run("SIGINT-in-the-walk", func(t *testing.T) {
		// Interrupted before it planned anything: status 130, no lock,
		// nothing deleted.
		before := storagetest.Snapshot(t, root)
		p := startRegsweep(t, bin, gcArgs()...)
		waitForLock(t, root) // the signal handler is up, the walk starts
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		if _, code := p.wait(t); code != exitInterrupted {
			t.Fatalf("exit %d after SIGINT, want %d", code, exitInterrupted)
		}
		if _, err := os.Stat(lock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("an interrupted run left its lock: %v", err)
		}
		if slices.Contains(p.ended, "mark") {
			t.Skip("the walk ended before the signal came: this machine is too fast for the test")
		}
		after := storagetest.Snapshot(t, root)
		if len(after.Blobs) != len(before.Blobs) || len(after.Revisions) != len(before.Revisions) {
			t.Errorf("a run interrupted in its walk deleted something: %d -> %d blobs, %d -> %d revisions", len(before.Blobs), len(after.Blobs), len(before.Revisions), len(after.Revisions))
		}
	})

	t.Run("SIGINT-in-the-sweep", func(t *testing.T) {
		rep := filepath.Join(t.TempDir(), "report.json")
		p := startRegsweep(t, bin, gcArgs("--report", rep)...)
		if p.waitPhase("recheck") {
			time.Sleep(20 * time.Millisecond)
		}
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Fatal(err)
		}
		_, code := p.wait(t)
		if code != exitInterrupted {
			t.Fatalf("exit %d after SIGINT, want %d", code, exitInterrupted)
		}
		var r report.Report
		if b, err := os.ReadFile(rep); err != nil {
			t.Errorf("no report after SIGINT: %v", err)
		} else if err := json.Unmarshal(b, &r); err != nil {
			t.Errorf("report: %v", err)
		} else if !r.Interrupted {
			t.Errorf("the report after SIGINT does not say interrupted: %s", b)
		}
		if !strings.Contains(p.output(), "interrupted") {
			t.Error("the output does not say the run was interrupted")
		}
		if _, err := os.Stat(lock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("an interrupted run left its lock: %v", err)
		}
		assertServe("after SIGINT")
	})

	points := []killPoint{
		{"", 30 * time.Millisecond},
		{"recheck", 0},
		{"recheck", 40 * time.Millisecond},
		{"recheck", 120 * time.Millisecond},
		{"recheck", 250 * time.Millisecond},
	}
	inSweep := 0
	for i, k := range points {
		p := startRegsweep(t, bin, gcArgs("--break-lock")...)
		switch {
		case k.phase == "":
			time.Sleep(k.delay - time.Since(p.start))
		case p.waitPhase(k.phase):
			time.Sleep(k.delay)
		}
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		signaled, code := p.wait(t)
		if !signaled {
			t.Logf("kill %d (%v): the run ended first with status %d", i, k, code)
			if code != exitOK {
				t.Fatalf("exit %d", code)
			}
			continue
		}
		if k.phase == "recheck" {
			inSweep++
		}
		assertServe(fmt.Sprintf("after SIGKILL %v", k))
		if _, err := os.Stat(lock); err != nil {
			continue // killed before it took the lock
		}
		if i == 0 || i == len(points)-1 {
			q := startRegsweep(t, bin, gcArgs()...)
			_, code := q.wait(t)
			want := fmt.Sprintf("held by %s pid %d", hostname(t), p.cmd.Process.Pid)
			if code != exitError || !strings.Contains(q.output(), want) {
				t.Errorf("a run over a dead run's lock: exit %d, output %q: want %d and %q", code, q.output(), exitError, want)
			}
		}
	}
	if inSweep < 2 {
		t.Errorf("only %d kills landed in the sweep: the registry is too small for this machine", inSweep)
	}

	// A run killed in its sweep leaves what it moved in its trash, out
	// of the layout; the next run frees it.
	trashes, _ := os.ReadDir(filepath.Join(root, storage.TrashDir))
	t.Logf("%d trash folders left by the killed runs", len(trashes))
	p := startRegsweep(t, bin, gcArgs("--break-lock")...)
	if _, code := p.wait(t); code != exitOK {
		t.Fatalf("last run: exit %d", code)
	}
	noTrash(t, root, "after the last run")
	assertServe("after the last run")
	if _, err := os.Stat(lock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the last run left its lock: %v", err)
	}
	disk, err := gen.Scan(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range gen.Compare(g.Survivors(true), disk, true) {
		// Layer links of blobs that stay are kept, as upstream keeps them
		// (see TestGCOnGeneratedRegistry); everything else must match.
		if !d.Missing && d.What == "layer" {
			continue
		}
		t.Error(d)
	}
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
