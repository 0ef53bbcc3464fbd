package storagetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests' own S3 server: when REGSWEEP_S3_ENDPOINT is unset, the first
// S3 test of a package starts versitygw (a tool dependency in go.mod) on a
// free loopback port with its data in a temporary folder, and the package's
// TestMain (RunWithS3) stops it when its tests end. A package that runs no
// S3 test starts nothing.

// Credentials and region of the server the tests start.
const (
	ownAccess = "regsweep-test"
	ownSecret = "regsweep-test-secret"
	ownRegion = "us-east-1"
)

// howToRunS3 says how to run the S3 tests when the server cannot start.
const howToRunS3 = "the S3 tests need versitygw: it is a tool dependency in go.mod, which " +
	"'go tool -n versitygw' builds (the module proxy must be reachable the first time); " +
	"or point the tests at an S3 server of your own with REGSWEEP_S3_ENDPOINT, " +
	"REGSWEEP_S3_ACCESS_KEY, REGSWEEP_S3_SECRET_KEY and REGSWEEP_S3_REGION " +
	"(eval \"$(bash .ci/s3-server.sh start)\" starts one and prints them)"

// ownServer is the server the tests of this test binary started, once.
var ownServer struct {
	sync.Mutex
	registered bool // TestMain runs RunWithS3, which stops the server
	started    bool
	srv        *S3TestServer
	err        error
}

// RunWithS3 runs the tests of a package with S3 tests, and stops the S3
// server they started, if they started one; their temporary folders go
// to memory where it can (UseMemoryTempDir). Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(storagetest.RunWithS3(m)) }
func RunWithS3(m *testing.M) int {
	UseMemoryTempDir()
	ownServer.Lock()
	ownServer.registered = true
	ownServer.Unlock()
	code := m.Run()
	ownServer.Lock()
	defer ownServer.Unlock()
	if ownServer.srv != nil {
		ownServer.srv.Stop()
		ownServer.srv = nil
	}
	return code
}

// s3Env returns the S3 server of the tests: the one the environment names,
// else the one this test binary starts on first use. It fails the test,
// saying how to run the S3 tests, when the server cannot start.
func s3Env(t testing.TB) (endpoint, access, secret, region string) {
	t.Helper()
	if endpoint = os.Getenv(EnvS3Endpoint); endpoint != "" {
		region = os.Getenv(EnvS3Region)
		if region == "" {
			region = "us-east-1"
		}
		return endpoint, os.Getenv(EnvS3AccessKey), os.Getenv(EnvS3SecretKey), region
	}
	ownServer.Lock()
	defer ownServer.Unlock()
	if !ownServer.registered {
		t.Fatalf("storagetest: REGSWEEP_S3_ENDPOINT is unset and this package's TestMain does not call storagetest.RunWithS3, which stops the S3 server the tests start; add it, or set REGSWEEP_S3_ENDPOINT")
	}
	if !ownServer.started {
		ownServer.started = true
		t0 := time.Now()
		ownServer.srv, ownServer.err = StartS3TestServer()
		if ownServer.err == nil {
			fmt.Fprintf(os.Stderr, "storagetest: started versitygw at %s in %.2fs (REGSWEEP_S3_ENDPOINT unset)\n", ownServer.srv.Endpoint, time.Since(t0).Seconds())
		}
	}
	if ownServer.err != nil {
		t.Fatalf("storagetest: cannot start the tests' S3 server: %v\n%s", ownServer.err, howToRunS3)
	}
	return ownServer.srv.Endpoint, ownAccess, ownSecret, ownRegion
}

// S3TestServer is a versitygw process serving a temporary folder on
// loopback.
type S3TestServer struct {
	Endpoint string
	cmd      *exec.Cmd
	exited   chan struct{}
	dir      string
	log      *bytes.Buffer
}

// StartS3TestServer builds versitygw if needed and starts it on a free
// loopback port, returning once it accepts connections.
func StartS3TestServer() (*S3TestServer, error) {
	bin, err := versitygwBinary()
	if err != nil {
		return nil, err
	}
	var last error
	for range 5 {
		s, err := startVersitygw(bin)
		if err == nil {
			return s, nil
		}
		last = err // most likely the free port was taken in between
	}
	return nil, last
}

func startVersitygw(bin string) (*S3TestServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	dir, err := os.MkdirTemp("", "regsweep-s3-")
	if err != nil {
		return nil, err
	}
	s := &S3TestServer{Endpoint: "http://" + addr, dir: dir, exited: make(chan struct{}), log: &bytes.Buffer{}}
	s.cmd = exec.Command(bin, "--port", addr, "--access", ownAccess, "--secret", ownSecret, "--region", ownRegion, "--quiet", "posix", dir)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	// The server dies with the test binary, even when it is killed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	// Wait until it accepts connections, or exits, or 30 s pass.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("versitygw on %s exited: %s", addr, strings.TrimSpace(s.log.String()))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("versitygw on %s does not accept connections after 30 s: %s", addr, strings.TrimSpace(s.log.String()))
		}
	}
}

// DataDir is the folder the server keeps its buckets in.
func (s *S3TestServer) DataDir() string { return s.dir }

// Stop ends the server and removes its data; it may be called again.
func (s *S3TestServer) Stop() {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	os.RemoveAll(s.dir)
}

// versitygwBinary returns the path of the versitygw that go.mod's tool
// directive names, built by the go command into its build cache. Test
// binaries of several packages ask at once: a lock lets one build while
// the others wait, then find it built. The path is remembered in a file
// named after go.mod, go.sum and the Go version, so that later test
// binaries skip the go command's check (2 s).
func versitygwBinary() (string, error) {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "regsweep-versitygw-build.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	memo := versitygwMemo()
	if memo != "" {
		if b, err := os.ReadFile(memo); err == nil {
			if bin := string(b); bin != "" && isExecutable(bin) {
				return bin, nil
			}
		}
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("go", "tool", "-n", "versitygw")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go tool -n versitygw: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	bin := strings.TrimSpace(stdout.String())
	if bin == "" || strings.Contains(bin, "\n") {
		return "", errors.New("go tool -n versitygw: printed no path: " + bin)
	}
	if memo != "" {
		_ = os.WriteFile(memo, []byte(bin), 0o600)
	}
	return bin, nil
}

// versitygwMemo names the file that remembers the built versitygw of this
// module's go.mod and go.sum under this Go version; "" when go.mod is not
// found above the working folder.
func versitygwMemo() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			sum, _ := os.ReadFile(filepath.Join(dir, "go.sum"))
			h := sha256.New()
			fmt.Fprintf(h, "%s\x00%s\x00%s", runtime.Version(), mod, sum)
			return filepath.Join(os.TempDir(), fmt.Sprintf("regsweep-versitygw-%x", h.Sum(nil)[:12]))
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
