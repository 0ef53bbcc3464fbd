//go:build linux

package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

// fastOpen opens a file for reading with the openat2 confinement of
// fastRead (see fsops_linux.go).
func (f *FS) fastOpen(key string) (*os.File, error) {
	fd, err := beneath(f.dirfd, key, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return nil, osErr(err)
	}
	return os.NewFile(uintptr(fd), key), nil
}
