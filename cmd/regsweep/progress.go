package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/regsweep/regsweep/storage"
)

// phaseProgress shows one stage's progress: a bar on a terminal, one plain
// line at its end otherwise.
type phaseProgress interface {
	storage.Counter
	Done()
}

// newProgress returns the counter for a stage named name.
func newProgress(stdout io.Writer, log *slog.Logger, name string, quiet bool) phaseProgress {
	if quiet {
		return &lineProgress{}
	}
	if bar := newBar(stdout, name, progressbar.OptionShowIts(), progressbar.OptionSetItsString("objects")); bar != nil {
		return bar
	}
	return &lineProgress{log: log, name: name, start: time.Now()}
}

// newBar returns a progress bar on stderr when stdout is a terminal, nil
// otherwise.
func newBar(stdout io.Writer, name string, opts ...progressbar.Option) *barProgress {
	f, ok := stdout.(interface{ Fd() uintptr })
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	opts = append([]progressbar.Option{
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(fmt.Sprintf("%-6s", name)),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionClearOnFinish(),
	}, opts...)
	return &barProgress{bar: progressbar.NewOptions64(-1, opts...)}
}

// barProgress adapts a progress bar to storage.Counter.
type barProgress struct{ bar *progressbar.ProgressBar }

var _ storage.Counter = (*barProgress)(nil)

func (b *barProgress) Add(n int64)    { _ = b.bar.Add64(n) }
func (b *barProgress) SetMax(n int64) { b.bar.ChangeMax64(n) }
func (b *barProgress) Done()          { _ = b.bar.Finish() }

// lineProgress counts and logs one line when the stage ends.
type lineProgress struct {
	log   *slog.Logger
	name  string
	start time.Time
	n     atomic.Int64
}

func (l *lineProgress) Add(n int64)  { l.n.Add(n) }
func (l *lineProgress) SetMax(int64) {}
func (l *lineProgress) Done() {
	if l.log != nil {
		l.log.Info("phase done", "phase", l.name, "objects", l.n.Load(), "seconds", time.Since(l.start).Round(time.Millisecond).Seconds())
	}
}
