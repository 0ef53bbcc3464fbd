package storage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		arg     string
		want    Location
		wantErr string
	}{
		{arg: "s3://bucket", want: Location{Kind: KindS3, S3: S3Options{Bucket: "bucket"}}},
		{arg: "s3://bucket/", want: Location{Kind: KindS3, S3: S3Options{Bucket: "bucket"}}},
		{arg: "s3://bucket/registry", want: Location{Kind: KindS3, S3: S3Options{Bucket: "bucket", RootDirectory: "registry"}}},
		{arg: "s3://bucket//a/b/", want: Location{Kind: KindS3, S3: S3Options{Bucket: "bucket", RootDirectory: "a/b"}}},
		{arg: "/var/lib/registry", want: Location{Kind: KindFilesystem, Dir: "/var/lib/registry"}},
		{arg: "/var/lib/registry/", want: Location{Kind: KindFilesystem, Dir: "/var/lib/registry"}},
		{arg: "data/../reg", want: Location{Kind: KindFilesystem, Dir: "reg"}},
		{arg: "./odd://name", want: Location{Kind: KindFilesystem, Dir: "odd:/name"}},
		{arg: "", wantErr: "empty storage location"},
		{arg: "s3://", wantErr: "no bucket"},
		{arg: "s3:///root", wantErr: "no bucket"},
		{arg: "gs://bucket", wantErr: `unsupported scheme "gs"`},
		{arg: "file:///var/lib/registry", wantErr: `unsupported scheme "file"`},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			got, err := ParseLocation(tc.arg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseLocation(%q) = %+v, %v; want error containing %q", tc.arg, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLocation(%q): %v", tc.arg, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseLocation(%q) (-want +got):\n%s", tc.arg, diff)
			}
		})
	}
}

func TestLocationString(t *testing.T) {
	for _, arg := range []string{"s3://bucket", "s3://bucket/a/b", "/var/lib/registry"} {
		l, err := ParseLocation(arg)
		if err != nil {
			t.Fatal(err)
		}
		if l.String() != arg {
			t.Errorf("ParseLocation(%q).String() = %q", arg, l.String())
		}
	}
}

func writeConfig(t *testing.T, yml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// clearRegistryEnv unsets the REGISTRY_* variables of the test's environment
// for the test, so that only the test's own overrides apply.
func clearRegistryEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "REGISTRY_") {
			t.Setenv(k, "") // restores the value after the test
			os.Unsetenv(k)
		}
	}
}

func TestLocationFromConfig(t *testing.T) {
	const s3Config = `version: 0.1
storage:
  s3:
    bucket: registry-bucket
    region: eu-west-1
    regionendpoint: http://127.0.0.1:9000
    forcepathstyle: true
    accesskey: AKIAEXAMPLE
    secretkey: secret-example
    rootdirectory: /registry/root/
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: true
`
	for _, tc := range []struct {
		name    string
		yml     string
		env     map[string]string
		want    Location
		wantErr string
	}{
		{
			name: "filesystem",
			yml:  "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv/registry\n  delete:\n    enabled: true\n",
			want: Location{Kind: KindFilesystem, Dir: "/srv/registry"},
		},
		{
			name: "filesystem default root",
			yml:  "version: 0.1\nstorage:\n  filesystem: {}\n",
			want: Location{Kind: KindFilesystem, Dir: DefaultFilesystemRoot},
		},
		{
			name: "filesystem bare driver name",
			yml:  "version: 0.1\nstorage: filesystem\n",
			want: Location{Kind: KindFilesystem, Dir: DefaultFilesystemRoot},
		},
		{
			name: "filesystem root from environment",
			yml:  "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv/registry\n",
			env:  map[string]string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/mnt/other"},
			want: Location{Kind: KindFilesystem, Dir: "/mnt/other"},
		},
		{
			name: "s3",
			yml:  s3Config,
			want: Location{Kind: KindS3, ReadOnlyMaintenance: true, S3: S3Options{
				Bucket: "registry-bucket", RootDirectory: "registry/root", Region: "eu-west-1",
				Endpoint: "http://127.0.0.1:9000", ForcePathStyle: true,
				AccessKey: "AKIAEXAMPLE", SecretKey: "secret-example",
			}},
		},
		{
			name: "s3 bucket and path style from environment",
			yml:  s3Config,
			env: map[string]string{
				"REGISTRY_STORAGE_S3_BUCKET":         "from-env",
				"REGISTRY_STORAGE_S3_FORCEPATHSTYLE": "false",
			},
			want: Location{Kind: KindS3, ReadOnlyMaintenance: true, S3: S3Options{
				Bucket: "from-env", RootDirectory: "registry/root", Region: "eu-west-1",
				Endpoint: "http://127.0.0.1:9000", ForcePathStyle: false,
				AccessKey: "AKIAEXAMPLE", SecretKey: "secret-example",
			}},
		},
		{
			name: "s3aws, endpoint without scheme, string booleans",
			yml:  "version: 0.1\nstorage:\n  s3aws:\n    bucket: b\n    region: us-east-1\n    regionendpoint: minio:9000\n    secure: \"false\"\n    forcepathstyle: \"true\"\n",
			want: Location{Kind: KindS3, S3: S3Options{Bucket: "b", Region: "us-east-1", Endpoint: "http://minio:9000", ForcePathStyle: true}},
		},
		{
			name: "s3 secure endpoint without scheme",
			yml:  "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    regionendpoint: s3.example.com\n",
			want: Location{Kind: KindS3, S3: S3Options{Bucket: "b", Endpoint: "https://s3.example.com"}},
		},
		{
			name:    "s3 without bucket",
			yml:     "version: 0.1\nstorage:\n  s3:\n    region: us-east-1\n",
			wantErr: "storage.s3 has no bucket",
		},
		{
			name:    "s3 bad boolean",
			yml:     "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    forcepathstyle: maybe\n",
			wantErr: `forcepathstyle: "maybe" is not a boolean`,
		},
		{
			name:    "unknown driver",
			yml:     "version: 0.1\nstorage:\n  azure:\n    accountname: acct\n    container: registry\n",
			wantErr: `storage driver "azure" is not supported`,
		},
		{
			name:    "no storage",
			yml:     "version: 0.1\nhttp:\n  addr: :5000\n",
			wantErr: "no storage configuration provided",
		},
		{
			name:    "not yaml",
			yml:     "version: 0.1\nstorage: [\n",
			wantErr: "parse registry config",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearRegistryEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			path := writeConfig(t, tc.yml)
			got, err := LocationFromConfig(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LocationFromConfig = %+v, %v; want error containing %q", got, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the config file %s", err, path)
				}
				return
			}
			if err != nil {
				t.Fatalf("LocationFromConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("LocationFromConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLocationFromConfigMissingFile(t *testing.T) {
	_, err := LocationFromConfig(filepath.Join(t.TempDir(), "nope.yml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yml") {
		t.Fatalf("err = %v, want one naming the missing file", err)
	}
}

func TestOpenFilesystemLocation(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(context.Background(), Location{Kind: KindFilesystem, Dir: dir}); err == nil {
		t.Fatal("Open of a folder without a registry succeeded")
	}
	if err := os.MkdirAll(filepath.Join(dir, V2), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Location{Kind: KindFilesystem, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*FS); !ok || s.String() != dir {
		t.Errorf("Open = %T %s, want *FS %s", s, s, dir)
	}
	if _, err := Open(context.Background(), Location{Kind: "gcs"}); err == nil || !strings.Contains(err.Error(), `"gcs"`) {
		t.Errorf("Open of kind gcs: %v", err)
	}
}

func TestPlaceSameAndRecorded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	fsPlace := func(d string) Place { return Place{Kind: KindFilesystem, Dir: d} }
	s3 := Place{Kind: KindS3, Bucket: "b", Root: "r", Endpoint: "http://minio:9000", Region: "us-east-1"}
	other := s3
	other.Endpoint = "https://s3.amazonaws.com"
	for _, tc := range []struct {
		a, b Place
		same bool
	}{
		{fsPlace(dir), fsPlace(dir), true},
		{fsPlace(dir), fsPlace(link), true},
		{fsPlace(dir), fsPlace(t.TempDir()), false},
		{fsPlace(dir), fsPlace(filepath.Join(dir, "missing")), false},
		{s3, func() Place { p := s3; p.Endpoint += "/"; p.Region = "eu-1"; p.PathStyle = true; return p }(), true},
		{s3, other, false},
		{s3, func() Place { p := s3; p.Root = ""; return p }(), false},
		{s3, func() Place { p := s3; p.Bucket = "c"; return p }(), false},
		{s3, fsPlace(dir), false},
	} {
		if got := tc.a.Same(tc.b); got != tc.same {
			t.Errorf("%v.Same(%v) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
	// A relative folder is recorded absolute, from the working directory.
	p, err := Location{Kind: KindFilesystem, Dir: "reg"}.Place()
	wd, _ := os.Getwd()
	if err != nil || p.Dir != filepath.Join(wd, "reg") || p.Check() != nil {
		t.Errorf("Place of ./reg = %+v, %v", p, err)
	}
	if got := s3.Location(); got.S3.Endpoint != s3.Endpoint || got.S3.Region != s3.Region || got.String() != "s3://b/r" {
		t.Errorf("Location of %v = %+v", s3, got)
	}
}
