//go:build !linux

package storage

import "time"

// processState cannot tell a process's state on this system.
func processState(int, time.Time) HolderState { return HolderUnknown }
