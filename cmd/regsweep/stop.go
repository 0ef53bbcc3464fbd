package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// How a run ends when it is told to stop. A signal (SIGINT, SIGTERM)
// cancels the run's context: the walk and the sweep stop between storage
// operations, in-flight deletes finish, the report says "interrupted", the
// lock is released, exit 130. Some waits cannot be cancelled: a system call
// on a hung disk or network filesystem, an S3 request made without the
// run's context (the lock's read-back, the sweep's in-flight deletes), a
// write to a full pipe nobody reads. After stopGrace, or at a second
// signal, the run is left where it waits: what it holds (the lock) is
// released, within releaseGrace, and the process exits 130. Leaving
// mid-sweep is as safe as a kill: the sweep's order leaves a registry that
// serves every kept tag at any point.
const (
	stopGrace    = 5 * time.Second
	releaseGrace = 3 * time.Second
)

// mainRun runs args with the process's signals and output, and returns the
// exit status.
func mainRun(args []string, stdout, stderr *os.File) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, errOut := &stream{f: stdout}, &stream{f: stderr}
	e := env{stdout: out, stderr: errOut, holds: &holds{}, memoryBudget: memoryBudget}
	done := make(chan int, 1)
	go func() { done <- out.status(runEnv(ctx, args, e), errOut) }()
	var late <-chan time.Time
wait:
	for {
		select {
		case code := <-done:
			return code
		case <-sigs:
			if late != nil {
				break wait // a second signal: stop waiting
			}
			cancel()
			late = time.After(stopGrace)
		case <-late:
			break wait
		}
	}
	// The run is stuck in a wait that ignores its context. Give back what
	// it holds first, then say so, without waiting on a stuck stderr.
	msg := "regsweep: interrupted; the run did not stop in time (it waits on storage or on its output): left where it waits"
	switch held, err := e.holds.release(releaseGrace); {
	case err != nil:
		msg += "; " + err.Error()
	case held:
		msg += "; lock released"
	}
	say := make(chan struct{})
	go func() {
		fmt.Fprintln(errOut, msg)
		close(say)
	}()
	select {
	case <-say:
	case <-time.After(100 * time.Millisecond):
	}
	return exitInterrupted
}

// stream is the run's stdout or stderr. A write that fails stops the
// output, not the run: every later write is dropped, and the run goes on to
// its report files and releases its lock. A closed pipe (regsweep gc … |
// head: SIGPIPE is ignored, see main) is the reader's choice and changes
// nothing else; any other failure (a full disk under stdout) is said at the
// end and fails a run that would have succeeded (see status).
type stream struct {
	f      *os.File
	closed atomic.Bool
	err    atomic.Pointer[error] // the failure, unless a closed pipe
}

func (o *stream) Write(p []byte) (int, error) {
	if !o.closed.Load() {
		if _, err := o.f.Write(p); err != nil {
			o.closed.Store(true)
			if !errors.Is(err, syscall.EPIPE) {
				o.err.Store(&err)
			}
		}
	}
	return len(p), nil
}

// status is the exit status of a run that ended with code, given what
// became of its output: a lost stdout, but for a closed pipe, fails a run
// that succeeded, and is said on stderr.
func (o *stream) status(code int, stderr io.Writer) int {
	p := o.err.Load()
	if p == nil {
		return code
	}
	fmt.Fprintf(stderr, "regsweep: stdout: %v: the output stopped there (the run went on)\n", *p)
	if code == exitOK {
		return exitError
	}
	return code
}

// Fd is the file's descriptor, to tell a terminal.
func (o *stream) Fd() uintptr { return o.f.Fd() }

// holds are what a run holds that it must give back even when it cannot
// stop: its lock. The session adds the lock's release; the release runs
// once, from the session's Close or from a forced exit, whichever comes
// first.
type holds struct {
	mu  sync.Mutex
	fns []func() error
}

// add registers release and returns it wrapped to run once: call the
// result to release.
func (h *holds) add(release func() error) func() error {
	once := sync.OnceValue(release)
	if h == nil {
		return once
	}
	h.mu.Lock()
	h.fns = append(h.fns, once)
	h.mu.Unlock()
	return once
}

// release runs every release, for at most grace; held says whether there
// was any.
func (h *holds) release(grace time.Duration) (held bool, err error) {
	h.mu.Lock()
	fns := h.fns
	h.mu.Unlock()
	if len(fns) == 0 {
		return false, nil
	}
	done := make(chan error, 1)
	go func() {
		var first error
		for _, fn := range fns {
			if err := fn(); err != nil && first == nil {
				first = err
			}
		}
		done <- first
	}()
	select {
	case err := <-done:
		return true, err
	case <-time.After(grace):
		return true, fmt.Errorf("the lock could not be released within %v: remove it, or pass --break-lock to the next run", grace)
	}
}

var _ io.Writer = (*stream)(nil)
