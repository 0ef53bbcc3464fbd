package walker_test

import (
	"os"
	"testing"

	"github.com/regsweep/regsweep/storage/storagetest"
)

// TestMain stops the S3 server the S3 tests start (see storagetest.S3Server).
func TestMain(m *testing.M) { os.Exit(storagetest.RunWithS3(m)) }
