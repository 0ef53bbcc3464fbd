// Command regsweep-image builds the container image of regsweep without a
// Docker daemon: a static regsweep binary (CGO_ENABLED=0) in a layer on an
// empty base ("FROM scratch"), run as a non-root user, with regsweep as the
// entrypoint and the OCI labels of the commit it was built from. It pushes
// the image to a registry or writes it as a tarball for `docker load`.
//
// Usage:
//
//	go run ./cmd/regsweep-image --push REGISTRY/REPO:TAG [--platform linux/amd64 ...] [--insecure]
//	go run ./cmd/regsweep-image --tarball FILE [--tag REGISTRY/REPO:TAG] [--platform OS/ARCH]
//	                            [--binary FILE] [--version V] [--source URL]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// errUsage marks a command line error: exit status 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
		os.Exit(0)
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "regsweep-image: %v\n", err)
		os.Exit(2)
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "regsweep-image: interrupted")
		os.Exit(130)
	default:
		fmt.Fprintf(os.Stderr, "regsweep-image: %v\n", err)
		os.Exit(1)
	}
}

// platforms is a repeatable --platform flag.
type platforms []v1.Platform

func (p *platforms) String() string {
	s := make([]string, len(*p))
	for i, pl := range *p {
		s[i] = pl.OS + "/" + pl.Architecture
	}
	return strings.Join(s, ",")
}

func (p *platforms) Set(v string) error {
	for _, one := range strings.Split(v, ",") {
		pl, err := v1.ParsePlatform(one)
		if err != nil {
			return err
		}
		if pl.OS != "linux" || pl.Architecture == "" || pl.Variant != "" || pl.OSVersion != "" {
			return fmt.Errorf("platform %q: want linux/ARCH (GOARCH names: amd64, arm64, ...)", one)
		}
		*p = append(*p, v1.Platform{OS: pl.OS, Architecture: pl.Architecture})
	}
	return nil
}

// options is a validated command line.
type options struct {
	push, tarball, tag string
	insecure           bool
	binary             string
	platforms          platforms
	meta               meta
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("regsweep-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.push, "push", "", "push the image to `REF` (registry/repository:tag), with the credentials of the Docker config (docker login)")
	fs.StringVar(&o.tarball, "tarball", "", "write the image to `FILE`, a tarball for docker load / podman load")
	fs.StringVar(&o.tag, "tag", "regsweep:latest", "the `REF` a --tarball names its image (docker load tags it so)")
	fs.BoolVar(&o.insecure, "insecure", false, "--push over plain HTTP (loopback registries are reached so anyway)")
	fs.StringVar(&o.binary, "binary", "", "put this prebuilt static linux `FILE` in the image instead of building ./cmd/regsweep (one --platform: the binary's)")
	fs.Var(&o.platforms, "platform", "`linux/ARCH` to build for (repeatable or comma-separated; several make an image index; default linux/"+runtime.GOARCH+")")
	fs.StringVar(&o.meta.Version, "version", "", "the org.opencontainers.image.version label (default: the binary's module version, devel from a checkout)")
	fs.StringVar(&o.meta.Source, "source", "", "the org.opencontainers.image.source label (default: https:// and the module path)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: regsweep-image --push REF | --tarball FILE [flags]\n\nBuilds regsweep's container image from scratch (no Docker daemon).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	case o.push == "" && o.tarball == "":
		return o, fmt.Errorf("%w: give --push REF or --tarball FILE", errUsage)
	}
	if len(o.platforms) == 0 {
		o.platforms = platforms{{OS: "linux", Architecture: runtime.GOARCH}}
	}
	if o.tarball != "" && len(o.platforms) > 1 {
		return o, fmt.Errorf("%w: --tarball holds one image: give one --platform", errUsage)
	}
	if o.binary != "" && len(o.platforms) > 1 {
		return o, fmt.Errorf("%w: --binary is built for one platform: give one --platform", errUsage)
	}
	if _, err := name.ParseReference(o.tag); err != nil {
		return o, fmt.Errorf("%w: --tag: %v", errUsage, err)
	}
	if o.push != "" {
		if _, err := name.ParseReference(o.push); err != nil {
			return o, fmt.Errorf("%w: --push: %v", errUsage, err)
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	var images []v1.Image
	for _, p := range o.platforms {
		bin := o.binary
		if bin == "" {
			dir, err := os.MkdirTemp("", "regsweep-image-*")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			fmt.Fprintf(stderr, "building regsweep for %s/%s\n", p.OS, p.Architecture)
			if bin, err = build(ctx, p, dir); err != nil {
				return err
			}
		}
		img, err := newImage(bin, p, o.meta)
		if err != nil {
			return err
		}
		images = append(images, img)
	}

	if o.tarball != "" {
		ref, _ := name.ParseReference(o.tag)
		if err := tarball.WriteToFile(o.tarball, ref, images[0]); err != nil {
			return fmt.Errorf("write %s: %w", o.tarball, err)
		}
		id, err := images[0].ConfigName()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (%s, image ID %s)\n", o.tarball, ref, id)
	}
	if o.push != "" {
		var nopts []name.Option
		if o.insecure {
			nopts = append(nopts, name.Insecure)
		}
		ref, err := name.ParseReference(o.push, nopts...)
		if err != nil {
			return fmt.Errorf("%w: --push: %v", errUsage, err)
		}
		ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
		var d v1.Hash
		if len(images) == 1 {
			if err := remote.Write(ref, images[0], ropts...); err != nil {
				return fmt.Errorf("push %s: %w", ref, err)
			}
			if d, err = images[0].Digest(); err != nil {
				return err
			}
		} else {
			idx := index(images, o.platforms)
			if err := remote.WriteIndex(ref, idx, ropts...); err != nil {
				return fmt.Errorf("push %s: %w", ref, err)
			}
			if d, err = idx.Digest(); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "pushed %s@%s\n", ref.Context(), d)
	}
	return nil
}

// index is the OCI image index of one image per platform.
func index(images []v1.Image, ps platforms) v1.ImageIndex {
	adds := make([]mutate.IndexAddendum, len(images))
	for i, img := range images {
		p := ps[i]
		adds[i] = mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}}
	}
	return mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
}
