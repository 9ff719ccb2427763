// Command image builds the canary-controller's OCI image from Go, without
// a Docker daemon (make image):
//
//	go run ./hack/image [--out .local/image] [--push REGISTRY/REPOSITORY:TAG]
//
// The image is a multi-architecture index (linux/amd64, linux/arm64) of
// images holding one file, the static controller binary at
// /canary-controller, run as the non-root user 65532 with no shell and no
// other file: the trusted roots are built into the binary
// (golang.org/x/crypto/x509roots/fallback). It is reproducible: the same
// commit gives the same digest (no timestamps, -trimpath, no build ID, no
// VCS stamping; the revision is a label). It is written as an OCI layout
// to --out and, with --push, pushed to a registry (credentials from the
// Docker config, as docker login writes them).
//
// The Dockerfile builds the same binary with the same flags for those who
// use Docker; a test keeps the two in step (TestDockerfileBuildsTheSameBinary).
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/canary-io/canary/hack/releasebuild"
)

// Platforms are the image's platforms.
var Platforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Source is the image's org.opencontainers.image.source label.
const Source = "https://github.com/canary-io/canary"

// User is the non-root user the image runs as (distroless' nonroot).
const User = "65532:65532"

// Entrypoint is the binary's path in the image.
const Entrypoint = "/canary-controller"

func main() {
	out := flag.String("out", ".local/image", "directory of the OCI layout written")
	push := flag.String("push", "", "also push the index to this reference (REGISTRY/REPOSITORY:TAG)")
	flag.Parse()
	if err := run(context.Background(), *out, *push); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, push string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	revision, err := gitRevision(root)
	if err != nil {
		return err
	}
	idx, err := Build(ctx, root, revision, Platforms)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx); err != nil {
		return err
	}
	fmt.Printf("wrote %s (OCI layout): index %s, revision %s\n", out, digest, revision)
	if push != "" {
		ref, err := name.ParseReference(push)
		if err != nil {
			return err
		}
		if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		fmt.Printf("pushed %s@%s\n", ref.Context(), digest)
	}
	return nil
}

// Build builds the image index of the controller at revision for the
// platforms, from the checkout at root.
func Build(ctx context.Context, root, revision string, platforms []v1.Platform) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		bin, err := goBuild(ctx, root, p)
		if err != nil {
			return nil, err
		}
		img, err := Image(bin, p, revision)
		if err != nil {
			return nil, err
		}
		platform := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platform}})
	}
	return idx, nil
}

// goBuild builds the static controller binary for p.
func goBuild(ctx context.Context, root string, p v1.Platform) ([]byte, error) {
	dir, err := os.MkdirTemp("", "canary-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "canary-controller")
	cmd := releasebuild.Command(ctx, root, p.OS, p.Architecture, bin, "./cmd/canary-controller")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build for %s/%s: %v\n%s", p.OS, p.Architecture, err, out)
	}
	return os.ReadFile(bin)
}

// Image is the image of one platform: one layer holding the binary at
// Entrypoint, every time and owner fixed, so that equal binaries give
// equal digests.
func Image(bin []byte, p v1.Platform, revision string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Name: strings.TrimPrefix(Entrypoint, "/"), Mode: 0o755, Size: int64(len(bin)),
		Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Uid: 0, Gid: 0, Format: tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestSpeed), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cfg.Config.User = User
	cfg.Config.Entrypoint = []string{Entrypoint}
	cfg.Config.ExposedPorts = map[string]struct{}{"9443/tcp": {}, "8080/tcp": {}, "8081/tcp": {}}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.source":   Source,
		"org.opencontainers.image.revision": revision,
		"org.opencontainers.image.title":    "canary-controller",
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	return mutate.ConfigFile(img, cfg)
}

// repoRoot is the checkout's root (where go.mod is).
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not in the module")
	}
	return filepath.Dir(mod), nil
}

// gitRevision is the commit checked out, with "-dirty" when the tree has
// changes (the label then says the image is not that commit's).
func gitRevision(root string) (string, error) {
	cmd := exec.Command("git", "rev-parse", "HEAD")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git rev-parse HEAD: %w", err)
	}
	rev := strings.TrimSpace(string(out))
	status := exec.Command("git", "status", "--porcelain", "--untracked-files=no")
	status.Dir = root
	if changed, err := status.Output(); err == nil && len(bytes.TrimSpace(changed)) > 0 {
		rev += "-dirty"
	}
	return rev, nil
}
