package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cost is what one collector's process cost.
type cost struct {
	Wall   time.Duration
	User   time.Duration
	Sys    time.Duration
	MaxRSS int64 // bytes: the peak resident set of the process
	// RSSFromWait4 says MaxRSS came from wait4, which counts this process's
	// own peak in (see measure).
	RSSFromWait4 bool
}

// CPU is user plus system time.
func (u cost) CPU() time.Duration { return u.User + u.Sys }

// gnuTime is GNU time, which measures the peak RSS of a command right: see
// measure.
const gnuTime = "/usr/bin/time"

// measure runs name with args in its own process and returns its wall time
// (fork to exit), its user and system CPU time and its peak RSS. Output goes
// to a buffer whose tail is in the error of a failed run.
//
// The CPU times are the rusage wait4 reports. Its ru_maxrss is no use for
// the peak RSS of a child of a Go program: Go starts children with
// CLONE_VM|CLONE_VFORK, and exec records the high-water RSS of the memory
// the child shared, the parent's, as the child's starting maxrss (the
// kernel's exec_mmap). A 300-blob run read 32 MiB for both collectors, the
// size of this process. So the command runs under GNU time, which forks
// for real (its own 2 MiB are the floor) and reports its child's maxrss
// (%M, in KiB); without GNU time, wait4's figure is used and flagged.
func measure(ctx context.Context, env []string, name string, args ...string) (cost, []byte, error) {
	rssFile := ""
	if _, err := os.Stat(gnuTime); err == nil {
		f, err := os.CreateTemp("", "regsweep-bench-rss-")
		if err != nil {
			return cost{}, nil, err
		}
		f.Close()
		rssFile = f.Name()
		defer os.Remove(rssFile)
		args = append([]string{"-f", "%M", "-o", rssFile, name}, args...)
		name = gnuTime
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var u cost
	if ps := cmd.ProcessState; ps != nil {
		u = cost{Wall: wall, User: ps.UserTime(), Sys: ps.SystemTime()}
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok && rssFile == "" {
			u.MaxRSS = int64(ru.Maxrss) * 1024 // Linux reports KiB
			u.RSSFromWait4 = true
		}
	}
	if rssFile != "" {
		// On failure GNU time writes "Command exited with non-zero status N"
		// first: the figure is the last line.
		b, _ := os.ReadFile(rssFile)
		lines := strings.Fields(string(b))
		if len(lines) > 0 {
			if kib, perr := strconv.ParseInt(lines[len(lines)-1], 10, 64); perr == nil {
				u.MaxRSS = kib * 1024
			}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return u, out.Bytes(), ctx.Err()
		}
		return u, out.Bytes(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(out.String(), 20))
	}
	return u, out.Bytes(), nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// dropCaches writes back dirty pages and drops the page cache, dentries and
// inodes, so that the next run reads from the disk (needs root).
func dropCaches() error {
	syscall.Sync()
	err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("drop the page cache (--cold needs root): %w", err)
		}
		return fmt.Errorf("drop the page cache: %w", err)
	}
	return nil
}
