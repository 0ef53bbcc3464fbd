package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/sweep"
)

// windowFlags say what a run that deletes does when its window closes:
// the moment the last key is out of the layout, after which the registry
// may leave read-only mode.
type windowFlags struct {
	command   string
	timeout   time.Duration
	keepTrash bool
}

func (w *windowFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&w.command, "after-window", "", "when the last key is out of the layout, before the trash is freed, run `CMD` with /bin/sh -c (e.g. the command that makes the registry writable again); a failure makes the run exit 1")
	fl.DurationVar(&w.timeout, "after-window-timeout", 5*time.Minute, "stop the --after-window command (SIGTERM to its process group, SIGKILL 10 s later) after this long")
	fl.BoolVar(&w.keepTrash, "keep-trash", false, "on a filesystem, keep what the run moved into the trash (an undo: regsweep trash restore) instead of freeing it; the next run or regsweep trash purge frees it")
}

// errAfterWindow is wrapped by the error of a failed --after-window.
var errAfterWindow = errors.New("--after-window failed; the registry may still be read-only")

// runAfterWindow runs the --after-window command, if any, through
// /bin/sh -c, with no input, its output on stderr (stdout is the run's
// report), and REGSWEEP_RUN_ID, REGSWEEP_LOCATION and
// REGSWEEP_WINDOW_SECONDS in its environment. It runs in its own process
// group, stopped with SIGTERM (SIGKILL 10 s later) when the run is
// interrupted or --after-window-timeout passes.
func (s *session) runAfterWindow(window time.Duration) (*report.AfterWindow, error) {
	w := s.flags.window
	if w.command == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, w.timeout)
	defer cancel()
	c := exec.CommandContext(ctx, "/bin/sh", "-c", w.command)
	c.Stdout, c.Stderr = s.stderr, s.stderr
	c.Env = append(os.Environ(), "REGSWEEP_RUN_ID="+s.runID, "REGSWEEP_LOCATION="+s.store.String(),
		"REGSWEEP_WINDOW_SECONDS="+strconv.FormatFloat(window.Seconds(), 'f', 3, 64))
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGTERM) }
	c.WaitDelay = 10 * time.Second
	s.log.Info("running --after-window", "command", w.command)
	t := time.Now()
	err := c.Run()
	a := &report.AfterWindow{Command: w.command, Seconds: time.Since(t).Seconds()}
	if err == nil {
		return a, nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("stopped after --after-window-timeout %s: %w", w.timeout, err)
	}
	a.Error = err.Error()
	s.log.Error("--after-window failed: the registry may still be read-only", "command", w.command, "err", err)
	return a, fmt.Errorf("%w: %q: %v", errAfterWindow, w.command, err)
}

// trasher is the store's trash when the run moves keys into one: on a
// filesystem, in a run that holds the lock.
func (s *session) trasher() storage.Trasher {
	if s.loc.Kind != storage.KindFilesystem || s.runID == "" {
		return nil
	}
	return storage.CapabilitiesOf(s.store).Trasher
}

// freeTrash frees the trash once the window closed: this run's (unless
// --keep-trash kept it), and any an earlier run left (killed, or kept). It
// returns the run folder kept, if any.
func (s *session) freeTrash(res *sweep.Result) (string, error) {
	t := s.trasher()
	if t == nil {
		return "", nil
	}
	keep := ""
	if s.flags.window.keepTrash && res.Trashed > 0 {
		keep = s.runID
	}
	var freed []string
	err := s.timed("free trash", func(storage.Counter) (err error) {
		freed, err = sweep.FreeTrash(s.ctx, t, keep, s.jobs)
		return err
	})
	for _, run := range freed {
		if run != s.runID {
			s.log.Info("freed the trash an earlier run left", "run", run)
		}
	}
	if err != nil {
		return keep, fmt.Errorf("free the trash in %s/%s (the next run frees it): %w", s.store, storage.TrashDir, err)
	}
	return keep, nil
}

// closeWindow is what a run does when the sweep is done: it says the
// window closed, runs --after-window, frees the trash, and fills rep. It
// returns the error that sets the exit status, if any.
func (s *session) closeWindow(rep *report.Report, res *sweep.Result, dryRun bool, sweptAt time.Time) error {
	window := sweptAt.Sub(s.startedAt)
	if dryRun || res.Interrupted {
		return nil
	}
	if s.trasher() != nil {
		rep.WindowSeconds = window.Seconds()
		s.log.Info("window closed: every key the run deletes is out of the layout; the registry may leave read-only mode", "window_seconds", fmt.Sprintf("%.1f", window.Seconds()))
	}
	var errs []error
	a, err := s.runAfterWindow(window)
	rep.AfterWindow = a
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		errs = append(errs, err)
	}
	kept, err := s.freeTrash(res)
	rep.TrashKept = kept
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
		errs = append(errs, fmt.Errorf("%w: %v", errIncomplete, err))
	}
	if res.TrashFallback != "" {
		rep.Warnings = append(rep.Warnings, "deleted in place, not moved into the trash: "+res.TrashFallback)
	}
	return errors.Join(errs...)
}
