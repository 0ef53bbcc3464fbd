//go:build !unix

package gen

import (
	"fmt"
	"os"
	"time"
)

// writeFile creates p with data and modification time mtime.
func writeFile(p string, data []byte, mtime time.Time) error {
	if err := os.WriteFile(p, data, 0o666); err != nil {
		return fmt.Errorf("write file: %w", err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		return fmt.Errorf("set file time: %w", err)
	}
	return nil
}
