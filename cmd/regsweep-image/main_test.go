package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"

	"github.com/regsweep/regsweep/storage/storagetest"
)

// TestImage builds regsweep's image as the command does (one go build),
// pushes it to distribution's registry on loopback and writes it as a
// tarball, pulls it back, and checks what it is: an OCI image of one layer
// holding the static binary and /tmp, nothing else, run as a non-root user
// with regsweep as entrypoint and the labels of the commit built; then it runs
// the binary taken out of the pulled layer.
func TestImage(t *testing.T) {
	logrus.SetOutput(io.Discard) // the registry logs every request
	ctx := context.Background()
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	bin, err := build(ctx, p, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("binary built with CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
	}
	rev := settings["vcs.revision"]
	t.Logf("built %s: vcs.revision %q, modified %q", bin, rev, settings["vcs.modified"])

	reg := storagetest.ServeHTTP(t, t.TempDir())
	ref := reg.Host + "/tools/regsweep:test"
	tarPath := filepath.Join(t.TempDir(), "image.tar")
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"--binary", bin, "--push", ref, "--tarball", tarPath, "--tag", ref}, &stdout, &stderr); err != nil {
		t.Fatalf("regsweep-image: %v\n%s", err, stderr.String())
	}
	t.Logf("regsweep-image said:\n%s", stdout.String())

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want %s", desc.MediaType, types.OCIManifestSchema1)
	}
	if want := "pushed " + r.Context().String() + "@" + desc.Digest.String(); !strings.Contains(stdout.String(), want) {
		t.Errorf("output does not say %q:\n%s", want, stdout.String())
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("manifest: config %s, layers %+v; want an OCI config and one OCI gzip layer", m.Config.MediaType, m.Layers)
	}

	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root, numeric for runAsNonRoot)", c.User)
	}
	if !cmp.Equal(c.Entrypoint, []string{"/usr/local/bin/regsweep"}) {
		t.Errorf("entrypoint %q", c.Entrypoint)
	}
	if cf.OS != p.OS || cf.Architecture != p.Architecture {
		t.Errorf("platform %s/%s, want %s/%s", cf.OS, cf.Architecture, p.OS, p.Architecture)
	}
	// The module version: "devel" from a tree without VCS stamping (a git
	// worktree, -buildvcs=false), a pseudo-version (v0.0.0-TIME-COMMIT) from
	// a clone, a tag's version from a tagged commit.
	version := bi.Main.Version
	if version == "" || version == "(devel)" {
		version = "devel"
	}
	binVersion := version
	if settings["vcs.modified"] == "true" {
		version += "+modified"
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.source":   "https://github.com/regsweep/regsweep",
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": rev,
	}
	if rev == "" {
		delete(wantLabels, "org.opencontainers.image.revision")
	}
	for k, v := range wantLabels {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if _, ok := c.Labels["org.opencontainers.image.revision"]; !ok && rev != "" {
		t.Errorf("no revision label")
	}

	// The layer: exactly /tmp and the binary with its folders, owned by root,
	// the binary byte for byte the one built.
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var listing []string
	var body []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		listing = append(listing, h.FileInfo().Mode().String()+" "+h.Name)
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want root", h.Name, h.Uid, h.Gid)
		}
		if h.Name == "usr/local/bin/regsweep" {
			if body, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantListing := []string{
		"dtrwxrwxrwx tmp/",
		"drwxr-xr-x usr/",
		"drwxr-xr-x usr/local/",
		"drwxr-xr-x usr/local/bin/",
		"-rwxr-xr-x usr/local/bin/regsweep",
	}
	if d := cmp.Diff(wantListing, listing); d != "" {
		t.Errorf("layer listing (-want +got):\n%s", d)
	}
	built, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, built) {
		t.Fatalf("the layer's binary (%d bytes) is not the one built (%d bytes)", len(body), len(built))
	}

	// The entrypoint, taken out of the pulled layer, runs `version` and names
	// the commit the labels name.
	if runtime.GOOS != p.OS {
		t.Skipf("cannot run a %s binary here", p.OS)
	}
	exe := filepath.Join(t.TempDir(), "regsweep")
	if err := os.WriteFile(exe, body, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, exe, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", exe, err, out)
	}
	want := "regsweep " + binVersion + " (commit unknown)\n"
	if rev != "" {
		want = "regsweep " + binVersion + " (commit " + rev + ", " + settings["vcs.time"]
	}
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("regsweep version said %q, want it to start with %q", out, want)
	}

	// A second build of the image from the same binary gives the same
	// digest, and the tarball holds the same config and layer (docker load's
	// format keeps no manifest: its image ID is the config's digest).
	again, err := newImage(bin, p, meta{})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := again.Digest(); err != nil || d != desc.Digest {
		t.Errorf("the image built again: digest %s (%v), want the pushed %s", d, err, desc.Digest)
	}
	fromTar, err := tarball.ImageFromPath(tarPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := fromTar.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if tm.Config.Digest != m.Config.Digest || len(tm.Layers) != 1 || tm.Layers[0].Digest != m.Layers[0].Digest {
		t.Errorf("tarball: config %s, layers %+v; want the pushed config %s and layer %s", tm.Config.Digest, tm.Layers, m.Config.Digest, m.Layers[0].Digest)
	}
	if want := "image ID " + m.Config.Digest.String(); !strings.Contains(stdout.String(), want) {
		t.Errorf("output does not say %q:\n%s", want, stdout.String())
	}
}

// TestImageRefuses: bad command lines are usage errors, and a binary that is
// not regsweep (this test binary) is refused before any image is made.
func TestImageRefuses(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--push"},
		{"--push", "Not A Reference"},
		{"--tarball", "x.tar", "--platform", "linux/amd64,linux/arm64"},
		{"--tarball", "x.tar", "--platform", "windows/amd64"},
		{"--push", "localhost:5000/r:t", "--binary", "b", "--platform", "linux/amd64", "--platform", "linux/arm64"},
		{"--push", "localhost:5000/r:t", "extra"},
	} {
		err := run(context.Background(), args, io.Discard, io.Discard)
		if !errors.Is(err, errUsage) {
			t.Errorf("regsweep-image %q: %v, want a usage error", args, err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x.tar")
	err = run(context.Background(), []string{"--binary", self, "--tarball", out}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not regsweep") {
		t.Errorf("a test binary as --binary: %v, want it refused as not regsweep", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s written anyway (%v)", out, err)
	}
}
