package main

import (
	"context"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// buildFlags are go build's flags for the image's binary: no absolute paths
// of the build machine in it (-trimpath), the commit stamped even where
// GOFLAGS says -buildvcs=false (regsweep version and the image's labels name
// it), no symbol table or DWARF (-s -w: a third of the size; panics still have
// their stack traces).
var buildFlags = []string{"-trimpath", "-buildvcs=auto", "-ldflags=-s -w"}

// build compiles ./cmd/regsweep of the module the go command finds from the
// working folder, static (CGO_ENABLED=0), for platform p, into dir, and
// returns the binary's path.
func build(ctx context.Context, p v1.Platform, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "regsweep")
	args := append([]string{"build"}, buildFlags...)
	args = append(args, "-o", out, "./cmd/regsweep")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/regsweep in %s: %w", root, err)
	}
	return out, nil
}

// moduleRoot is the folder of the go.mod the go command uses here; it must be
// regsweep's.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Path}} {{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m: %w (run regsweep-image inside regsweep's module)", err)
	}
	path, dir, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if path != modulePath {
		return "", fmt.Errorf("the module here is %q, not %s: run regsweep-image inside regsweep's module", path, modulePath)
	}
	return dir, nil
}

// modulePath is regsweep's module.
const modulePath = "github.com/regsweep/regsweep"

// meta is what the image says of the binary it holds.
type meta struct {
	Version  string // module version, "devel" for a checkout
	Revision string // VCS commit, "" when the build recorded none
	Time     string // the commit's time (RFC 3339), "" when unknown
	Modified bool   // built from an edited tree
	Source   string // where the source lives
}

// inspect checks that the binary at path is regsweep built for p as a static
// executable, and fills what m leaves empty from its build information.
func inspect(path string, p v1.Platform, m meta) (meta, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	if bi.Path != modulePath+"/cmd/regsweep" {
		return m, fmt.Errorf("%s is %q, not regsweep (%s/cmd/regsweep)", path, bi.Path, modulePath)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOOS"] != p.OS || settings["GOARCH"] != p.Architecture {
		return m, fmt.Errorf("%s is built for %s/%s, not %s/%s", path, settings["GOOS"], settings["GOARCH"], p.OS, p.Architecture)
	}
	if settings["CGO_ENABLED"] != "0" {
		return m, fmt.Errorf("%s is built with cgo: an image from scratch has no C library (build it with CGO_ENABLED=0)", path)
	}
	if err := static(path); err != nil {
		return m, err
	}
	if m.Version == "" {
		m.Version = bi.Main.Version
		if m.Version == "" || m.Version == "(devel)" {
			m.Version = "devel"
		}
	}
	m.Revision = settings["vcs.revision"]
	m.Time = settings["vcs.time"]
	m.Modified = settings["vcs.modified"] == "true"
	if m.Source == "" {
		m.Source = "https://" + modulePath
	}
	return m, nil
}

// static refuses an ELF executable that asks for a dynamic loader.
func static(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (it asks for a program interpreter): an image from scratch has none", path)
		}
	}
	return nil
}
