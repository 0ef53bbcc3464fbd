//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sys/unix"

	"github.com/regsweep/regsweep/report"
	"github.com/regsweep/regsweep/storage"
	"github.com/regsweep/regsweep/storage/storagetest"
)

// TestRunsEnd runs the real binary where a run can get stuck or lose its
// output, and checks how it ends: a signal stops it within seconds,
// whatever it waits on, with status 130 and its lock released; a closed
// stdout or stderr stops the output, not the run.
func TestRunsEnd(t *testing.T) {
	t.Parallel()
	bin := buildRegsweep(t)
	sample := func(t *testing.T) string {
		root := t.TempDir()
		storagetest.CopyTree(t, sampleDir, root)
		return root
	}
	// bound is how long a stuck run may take to end after the signal.
	const bound = stopGrace + releaseGrace + 5*time.Second

	// stuck runs regsweep with args, stderr into a pipe the test filled
	// before the start: the run's first write to stderr (the end of its
	// walk, or the word that it was interrupted) waits forever, a wait no
	// context cancels, with the lock held. Once it holds the lock, sig
	// must end it with 130 within bound, the lock released.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run("full-stderr/"+sig.String(), func(t *testing.T) {
			t.Parallel()
			root := sample(t)
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			fillPipe(t, w)
			cmd := exec.Command(bin, "gc", "--registry-stopped", "--min-age", "0", root)
			var stdout bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, w
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			waitForLock(t, root)
			signaled := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code := waitBounded(t, cmd, bound)
			took := time.Since(signaled)
			_ = unix.SetNonblock(int(r.Fd()), true)
			rest, _ := io.ReadAll(r)
			t.Logf("exit %d %v after %s; stderr after the filler: %q", code, took.Round(time.Millisecond), sig, bytes.TrimLeft(rest, "x"))
			if code != exitInterrupted {
				t.Errorf("exit %d after %s, want %d", code, sig, exitInterrupted)
			}
			if _, err := os.Stat(filepath.Join(root, storage.LockKey)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a run stopped by %s left its lock: %v", sig, err)
			}
		})
	}

	// The walk of an S3 registry waits on a listing of the repositories
	// that the server (a proxy in front of the tests' S3 server) never
	// answers. sig must end the run with 130 well within stopGrace: the
	// request is cancelled with the run's context, and the lock released
	// through the same server.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run("s3-walk-blocked/"+sig.String(), func(t *testing.T) {
			t.Parallel()
			endpoint, access, secret, region := storagetest.S3Server(t)
			bucket := storagetest.NewBucket(t)
			reg := storagetest.NewS3(t, bucket, "registry")
			reg.Tag("app", "v1", reg.PushImage("app", storagetest.ImageOpts{}))
			target, err := url.Parse(endpoint)
			if err != nil {
				t.Fatal(err)
			}
			blocked := make(chan struct{})
			var once sync.Once
			fwd := httputil.NewSingleHostReverseProxy(target)
			fwd.ErrorLog = log.New(io.Discard, "", 0) // requests the run cancelled
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet && strings.Contains(r.URL.Query().Get("prefix"), "/repositories") {
					once.Do(func() { close(blocked) })
					<-r.Context().Done() // never answered: the client gives up
					return
				}
				fwd.ServeHTTP(w, r)
			}))
			defer proxy.Close()
			cmd := exec.Command(bin, "gc", "--registry-stopped", "--min-age", "0",
				"--s3-endpoint", proxy.URL, "--s3-region", region, "--s3-force-path-style", "s3://"+bucket+"/registry")
			cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+access, "AWS_SECRET_ACCESS_KEY="+secret)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-blocked:
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				t.Fatal("the walk never listed the repositories")
			}
			signaled := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code := waitBounded(t, cmd, bound)
			took := time.Since(signaled)
			t.Logf("exit %d %v after %s\n%s", code, took.Round(time.Millisecond), sig, out.String())
			if code != exitInterrupted {
				t.Errorf("exit %d after %s, want %d", code, sig, exitInterrupted)
			}
			if took >= stopGrace {
				t.Errorf("%v to stop a walk waiting on S3: the request was not cancelled", took)
			}
			_, err = storagetest.S3Client(t).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("registry/" + storage.LockKey)})
			var nf *types.NotFound
			if !errors.As(err, &nf) {
				t.Errorf("the lock after %s: %v, want it gone", sig, err)
			}
		})
	}

	t.Run("second-signal", func(t *testing.T) {
		// A second signal stops waiting for the stuck run at once.
		t.Parallel()
		root := sample(t)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		fillPipe(t, w)
		cmd := exec.Command(bin, "gc", "--registry-stopped", "--min-age", "0", root)
		cmd.Stderr = w
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		waitForLock(t, root)
		signaled := time.Now()
		// Two different signals: the kernel merges a second SIGINT that
		// arrives while the first is pending.
		for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
		}
		code := waitBounded(t, cmd, bound)
		if took := time.Since(signaled); code != exitInterrupted || took >= stopGrace {
			t.Errorf("exit %d %v after two signals: want %d before %v", code, took, exitInterrupted, stopGrace)
		}
		if _, err := os.Stat(filepath.Join(root, storage.LockKey)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lock: %v", err)
		}
	})

	t.Run("full-stdout", func(t *testing.T) { stdoutFull(t, bin) })

	t.Run("policy-fifo", func(t *testing.T) {
		// The run waits reading its --policy from a FIFO that the test
		// holds open without writing: a read no context cancels, before
		// any lock. SIGINT ends it with 130 within bound, no lock taken.
		t.Parallel()
		root := sample(t)
		policy := filepath.Join(t.TempDir(), "policy.yml")
		if err := unix.Mkfifo(policy, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "gc", "--registry-stopped", "--policy", policy, root)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Opening the FIFO to write returns once the run opened it to read.
		fifo, err := os.OpenFile(policy, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fifo.Close()
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		code := waitBounded(t, cmd, bound)
		t.Logf("exit %d\n%s", code, out.String())
		if code != exitInterrupted {
			t.Errorf("exit %d after SIGINT, want %d", code, exitInterrupted)
		}
		if !strings.Contains(out.String(), "did not stop in time") || strings.Contains(out.String(), "lock released") {
			t.Error("the run does not say it was left where it waited, or says it released a lock it never took")
		}
		if _, err := os.Stat(filepath.Join(root, storage.LockKey)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lock: %v", err)
		}
	})

	// A closed stdout, stderr or both: the run completes, deletes what it
	// would, writes its report file and releases the lock, exit 0.
	for _, closed := range []string{"stdout", "stderr", "both"} {
		t.Run("closed-"+closed, func(t *testing.T) {
			t.Parallel()
			root := sample(t)
			rep := filepath.Join(t.TempDir(), "report.json")
			cmd := exec.Command(bin, "gc", "--registry-stopped", "--delete-untagged", "--min-age", "0", "--report", rep, root)
			var kept bytes.Buffer
			cmd.Stdout, cmd.Stderr = &kept, &kept
			for _, which := range []*io.Writer{&cmd.Stdout, &cmd.Stderr} {
				if closed != "both" && (which == &cmd.Stdout) != (closed == "stdout") {
					continue
				}
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				r.Close() // as head does once it has its lines
				defer w.Close()
				*which = w
			}
			err := cmd.Run()
			t.Logf("%v\n%s", err, kept.String())
			if code := cmd.ProcessState.ExitCode(); code != exitOK {
				t.Fatalf("exit %d (%v) with %s closed, want 0", code, cmd.ProcessState, closed)
			}
			b, err := os.ReadFile(rep)
			if err != nil {
				t.Fatalf("no report with %s closed: %v", closed, err)
			}
			var r report.Report
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if r.Blobs == 0 {
				t.Errorf("the report says no blob was deleted: %s", b)
			}
			if _, err := os.Stat(filepath.Join(root, storage.LockKey)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("lock: %v", err)
			}
			if closed != "both" && strings.Contains(kept.String(), "regsweep:") {
				t.Errorf("the open output has an error: %s", kept.String())
			}
		})
	}
}

// stdoutFull: a stdout that fails for another reason than a
// closed pipe (a full disk) stops the output, not the run, which completes
// (report file, lock released), says so on stderr and exits 1, so that a
// lost output is not taken for a success.
func stdoutFull(t *testing.T, bin string) {
	t.Parallel()
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	root := t.TempDir()
	storagetest.CopyTree(t, sampleDir, root)
	rep := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command(bin, "gc", "--registry-stopped", "--delete-untagged", "--min-age", "0", "--report", rep, root)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = full, &stderr
	_ = cmd.Run()
	t.Logf("%v\n%s", cmd.ProcessState, stderr.String())
	if code := cmd.ProcessState.ExitCode(); code != exitError || !strings.Contains(stderr.String(), "no space left on device") {
		t.Errorf("exit %d: want %d and the write error on stderr", code, exitError)
	}
	if _, err := os.Stat(rep); err != nil {
		t.Errorf("no report: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, storage.LockKey)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock: %v", err)
	}
}

// fillPipe writes into w until its pipe is full, then makes w blocking
// again: the next writer waits until someone reads.
func fillPipe(t *testing.T, w *os.File) {
	t.Helper()
	fd := int(w.Fd())
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat([]byte("x"), 4096)
	for {
		if _, err := unix.Write(fd, buf); err == unix.EAGAIN {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	for { // the last bytes, fewer than a page
		if _, err := unix.Write(fd, buf[:1]); err == unix.EAGAIN {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
}

// waitBounded waits for cmd for at most d, killing it then, and returns its
// exit status.
func waitBounded(t *testing.T, cmd *exec.Cmd, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("still running %v after the signal: killed", d)
	}
	return cmd.ProcessState.ExitCode()
}
