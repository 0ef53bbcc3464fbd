package storage_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/regsweep/regsweep/storage"
)

// TestOpenS3WithoutCredentials: when the SDK's chain finds no credentials,
// OpenS3 says so (ErrNoS3Credentials) before any request, instead of
// failing the first request with the instance metadata service's error.
func TestOpenS3WithoutCredentials(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "", "AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
	// Port 9 (discard) on loopback: nothing is sent, the check comes first.
	o := storage.S3Options{Bucket: "b", Endpoint: "http://127.0.0.1:9", ForcePathStyle: true, Region: "us-east-1", MaxRetries: -1}
	_, err := storage.OpenS3(t.Context(), o)
	if !errors.Is(err, storage.ErrNoS3Credentials) {
		t.Errorf("OpenS3 without credentials: %v, want ErrNoS3Credentials", err)
	}
	// From the environment, or given: past the check, to the request.
	t.Setenv("AWS_ACCESS_KEY_ID", "id")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	if _, err := storage.OpenS3(t.Context(), o); err == nil || errors.Is(err, storage.ErrNoS3Credentials) {
		t.Errorf("OpenS3 with credentials in the environment: %v, want the request's error", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	o.AccessKey, o.SecretKey = "id", "secret"
	if _, err := storage.OpenS3(t.Context(), o); err == nil || errors.Is(err, storage.ErrNoS3Credentials) {
		t.Errorf("OpenS3 with static credentials: %v, want the request's error", err)
	}
}
