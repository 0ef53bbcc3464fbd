//go:build unix

package storagetest

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Special kinds of file that MakeSpecial makes.
const (
	FIFO   = "a FIFO"
	Socket = "a socket"
)

// MakeSpecial replaces the file at p (or makes one, with its folders) with a
// special file of kind FIFO or Socket, as a careless admin or an attacker
// leaves one where the layout has a link or a blob. A FIFO blocks whoever
// opens it to read, blocking, until a writer comes.
func MakeSpecial(t testing.TB, p, kind string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	switch kind {
	case FIFO:
		if err := unix.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	case Socket:
		// Bound at a short path (sun_path holds 108 bytes), then moved.
		short, err := os.MkdirTemp("", "sock")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(short)
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(short, "s")}); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(short, "s"), p); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("MakeSpecial: unknown kind %q", kind)
	}
}
