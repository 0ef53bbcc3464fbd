package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// LockKey is the lock object at the storage root, outside docker/ so that
// the registry never sees it.
const LockKey = "regsweep.lock"

// ErrLocked is wrapped by AcquireLock when another run holds the lock.
var ErrLocked = errors.New("storage locked by another regsweep run")

// LockInfo says who holds the lock.
type LockInfo struct {
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	RunID     string    `json:"run_id"`
	Command   string    `json:"command"`
}

func (i LockInfo) String() string {
	return fmt.Sprintf("%s pid %d since %s (run %s, %s)", i.Host, i.PID, i.StartedAt.UTC().Format(time.RFC3339), i.RunID, i.Command)
}

// HolderState is what this host can tell of a lock's holder.
type HolderState uint8

// The states of a lock's holder.
const (
	// HolderUnknown: the holder ran on another host (or this system cannot
	// tell): it may be alive.
	HolderUnknown HolderState = iota
	// HolderAlive: its process is running on this host.
	HolderAlive
	// HolderGone: it ran on this host and its process is gone (or its PID
	// now belongs to a process started after the lock was taken).
	HolderGone
)

// State says whether the holder's process is alive, for the run self (its
// host and PID). A holder with self's PID on self's host is this very
// process: a lock it left (a run that stopped without releasing it, in a
// process that runs one run at a time), or one of a dead process whose PID
// this one reuses. Either way no other live process holds it.
func (i LockInfo) State(self LockInfo) HolderState {
	switch {
	case i.Host == "" || i.Host != self.Host:
		return HolderUnknown
	case i.PID == self.PID:
		return HolderGone
	}
	return processState(i.PID, i.StartedAt)
}

// describe names the holder with what self knows of it.
func (i LockInfo) describe(self LockInfo) string {
	switch i.State(self) {
	case HolderAlive:
		return i.String() + ", a process alive on this host"
	case HolderGone:
		return i.String() + ", whose process is gone"
	}
	if i.Host != self.Host {
		return i.String() + ", on another host: whether it is alive cannot be told from here"
	}
	return i.String() + ", on this host, whether it is alive cannot be told"
}

// Lock is a held lock; Release gives it back.
type Lock struct {
	store Store
	info  LockInfo
}

// AcquireLock takes the lock for one run, atomically: of two runs racing,
// one gets ErrLocked naming the other and saying whether its process is
// alive (when it ran on info.Host, this run's host). breakLock first removes
// a lock left by a run that died (the admin's call: regsweep cannot tell a
// dead run from a slow one on another host), but never one whose holder is
// alive on this host; the broken holder is returned for the report.
func AcquireLock(ctx context.Context, s Store, info LockInfo, breakLock bool) (*Lock, *LockInfo, error) {
	var broken *LockInfo
	if breakLock {
		if old, err := ReadLock(ctx, s); err == nil {
			if old.State(info) == HolderAlive {
				return nil, nil, fmt.Errorf("%w: held by %s: --break-lock refused; wait for it to end or stop it", ErrLocked, old.describe(info))
			}
			broken = old
		}
		var derr error
		s.Delete(ctx, []string{LockKey}, func(_ string, err error) { derr = err })
		if derr != nil {
			return nil, nil, fmt.Errorf("break lock: %w", derr)
		}
	}
	data, err := json.Marshal(info)
	if err != nil {
		return nil, nil, err
	}
	if err := s.PutIfAbsent(ctx, LockKey, data); err != nil {
		if !errors.Is(err, ErrExists) {
			return nil, nil, fmt.Errorf("take lock: %w", err)
		}
		holder, rerr := ReadLock(ctx, s)
		if rerr != nil {
			return nil, nil, fmt.Errorf("%w: %s/%s exists but cannot be read (%v); remove it or pass --break-lock if no run is going", ErrLocked, s, LockKey, rerr)
		}
		advice := "if that run is gone, pass --break-lock"
		switch holder.State(info) {
		case HolderAlive:
			advice = "wait for it to end"
		case HolderGone:
			advice = "pass --break-lock to remove it"
		}
		return nil, nil, fmt.Errorf("%w: held by %s; %s", ErrLocked, holder.describe(info), advice)
	}
	// A server that ignores If-None-Match lets both writes through: the
	// last one wins, and the other run sees it here. The lock is written:
	// an interrupt now must not fail the check and leave it behind, with no
	// Lock to release it.
	if holder, err := ReadLock(context.WithoutCancel(ctx), s); err != nil || holder.RunID != info.RunID {
		if err != nil {
			return nil, nil, fmt.Errorf("take lock: read back: %w", err)
		}
		return nil, nil, fmt.Errorf("%w: held by %s", ErrLocked, holder)
	}
	return &Lock{store: s, info: info}, broken, nil
}

// ReadLock returns the holder of the lock, or an error wrapping ErrNotFound.
func ReadLock(ctx context.Context, s Store) (*LockInfo, error) {
	b, _, err := s.ReadFile(ctx, LockKey, 64<<10)
	if err != nil {
		return nil, err
	}
	var info LockInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("lock %s/%s: %w", s, LockKey, err)
	}
	return &info, nil
}

// Release removes the lock if it is still this run's.
func (l *Lock) Release(ctx context.Context) error {
	holder, err := ReadLock(ctx, l.store)
	if err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	if holder.RunID != l.info.RunID {
		return fmt.Errorf("release lock: now held by %s, left in place", holder)
	}
	return deleteLock(ctx, l.store)
}

// ReleaseRun removes the lock if run holds it; no lock, or another run's,
// is left as it is, without error. It is for a run that may have written
// its lock without getting a Lock: AcquireLock failed after the write (its
// read-back), or never returned (a run given up on at a signal while it
// waited on the read-back).
func ReleaseRun(ctx context.Context, s Store, run string) error {
	holder, err := ReadLock(ctx, s)
	switch {
	case IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("release lock: %w", err)
	case holder.RunID != run:
		return nil
	}
	return deleteLock(ctx, s)
}

func deleteLock(ctx context.Context, s Store) error {
	var derr error
	s.Delete(ctx, []string{LockKey}, func(_ string, err error) { derr = err })
	if derr != nil {
		return fmt.Errorf("release lock: %w", derr)
	}
	return nil
}
