package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	t.Logf("regsweep-bench %s\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
	return out.String(), err
}

// TestGenerateGCCheck drives the three commands end to end: a fresh
// registry has garbage, upstream without --delete-untagged removes exactly
// that garbage (but for one known upstream gap).
func TestGenerateGCCheck(t *testing.T) {
	logrus.SetOutput(io.Discard)
	dir := t.TempDir()
	root, expect := filepath.Join(dir, "reg"), filepath.Join(dir, "expect.json")
	out, err := runCLI(t, "generate", "--root", root, "--blobs", "300", "--seed", "7", "--expect", expect)
	if err != nil || !strings.HasPrefix(out, "generated ") {
		t.Fatalf("generate: %v", err)
	}
	out, err = runCLI(t, "check", "--root", root, "--expect", expect, "--mode", "keep_untagged")
	if !errors.Is(err, errDiffer) || !strings.HasPrefix(out, "extra blob ") || strings.Contains(out, "\nmissing ") {
		t.Fatalf("check before gc: %v", err)
	}
	if _, err := runCLI(t, "upstream-gc", root); err != nil {
		t.Fatal(err)
	}
	// Upstream keeps one blob the expectation does not: the manifest of the
	// index child the generator deletes through the API (upstream marks every
	// descriptor of a kept index, not what that child references).
	out, err = runCLI(t, "check", "--root", root, "--expect", expect, "--mode", "keep_untagged")
	var diffs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "extra ") || strings.HasPrefix(l, "missing ") {
			diffs = append(diffs, l)
		}
	}
	if !errors.Is(err, errDiffer) || len(diffs) != 1 || !strings.HasPrefix(diffs[0], "extra blob ") {
		t.Fatalf("check after gc: %v, differences %q; want one extra blob: the deleted child's manifest", err, diffs)
	}
	if _, err := runCLI(t, "generate", "--root", root, "--blobs", "300"); err == nil {
		t.Error("generate over an existing registry succeeded")
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"generate", "--blobs", "10"},
		{"generate", "--root", "x"},
		{"check", "--root", "x", "--expect", "y", "--mode", "sometimes"},
		{"upstream-gc"},
		{"upstream-gc", "a", "b"},
		{"generate", "--no-such-flag"},
		{"compare"},
		{"compare", "--blobs", "10", "--backend", "gcs"},
		{"compare", "--blobs", "10", "--delay", "20ms"},
		{"compare", "--blobs", "10", "--rounds", "0"},
		{"compare", "--blobs", "10", "extra"},
	} {
		if _, err := runCLI(t, args...); exitCode(err, io.Discard) != 2 {
			t.Errorf("%q: exit %d (%v), want 2", args, exitCode(err, io.Discard), err)
		}
	}
	if _, err := runCLI(t, "generate", "-h"); exitCode(err, io.Discard) != 0 {
		t.Errorf("-h: %v", err)
	}
}
