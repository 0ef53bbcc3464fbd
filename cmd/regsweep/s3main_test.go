package main

import (
	"os"
	"testing"

	"github.com/regsweep/regsweep/storage/storagetest"
)

// TestMain stops the S3 server the S3 tests start (see storagetest.S3Server).
// With $REGSWEEP_TEST_CHILD set, the test binary is a regsweep process a
// test started (see childMain).
func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(childMain())
	}
	os.Exit(storagetest.RunWithS3(m))
}
