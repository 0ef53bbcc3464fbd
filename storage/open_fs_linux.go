//go:build linux

package storage

import (
	"os"
)

// fastOpen opens a file for reading with the openat2 confinement and the
// flags of fastRead (see fsops_linux.go).
func (f *FS) fastOpen(key string) (*os.File, error) {
	fd, err := f.fastOpenRead(key)
	if err != nil {
		if mode, ok := f.fastSpecial(key, err); ok {
			return nil, f.notRegular("open", key, mode)
		}
		return nil, f.wrap("open", key, readErr(err))
	}
	return os.NewFile(uintptr(fd), key), nil
}
