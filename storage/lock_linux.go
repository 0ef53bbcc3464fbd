package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// processState says whether process pid of this host is alive and could be
// the one that took a lock at since: a process that started after it is
// another one under a reused PID. /proc gives the start time in clock ticks
// since boot (USER_HZ, 100 on Linux) and the boot time in whole seconds: a
// margin of two seconds covers both.
func processState(pid int, since time.Time) HolderState {
	if pid <= 0 {
		return HolderUnknown
	}
	switch err := syscall.Kill(pid, 0); {
	case errors.Is(err, syscall.ESRCH):
		return HolderGone
	case err != nil && !errors.Is(err, syscall.EPERM):
		return HolderUnknown
	}
	switch state, start, err := processStat(pid); {
	case err != nil:
	case state == 'Z' || state == 'X':
		return HolderGone // dead, not yet reaped by its parent
	case !since.IsZero() && start.After(since.Add(2*time.Second)):
		return HolderGone
	}
	return HolderAlive
}

// processStat returns the state letter of process pid and when it
// started, from /proc.
func processStat(pid int) (state byte, start time.Time, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return state, start, err
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after its last ')'. starttime is field 22; state, field 3, comes first.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return state, start, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return state, start, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	state = f[0][0]
	ticks, err := strconv.ParseInt(string(f[19]), 10, 64)
	if err != nil {
		return state, start, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	s, err := os.ReadFile("/proc/stat")
	if err != nil {
		return state, start, err
	}
	for _, line := range bytes.Split(s, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			boot, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return state, start, fmt.Errorf("/proc/stat: btime: %w", err)
			}
			const userHZ = 100
			return state, time.Unix(boot, 0).Add(time.Duration(ticks) * time.Second / userHZ), nil
		}
	}
	return state, start, errors.New("/proc/stat: no btime")
}
