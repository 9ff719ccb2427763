package main

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/canary-io/canary/hack/releasebuild"
)

// TestImage builds the image twice (the same digest: reproducible), pushes
// it to an in-process registry and pulls it back, checks the index's
// platforms and each image's config, and runs the binary taken out of
// this machine's platform's layer.
func TestImage(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	const revision = "0123456789abcdef0123456789abcdef01234567"
	start := time.Now()
	idx, err := Build(t.Context(), root, revision, Platforms)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("BENCH image: index of %d platforms built in %v\n", len(Platforms), time.Since(start).Round(100*time.Millisecond))
	again, err := Build(t.Context(), root, revision, Platforms)
	if err != nil {
		t.Fatal(err)
	}
	d1, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := again.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Errorf("two builds of the same commit: digests %s and %s", d1, d2)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(u.Host+"/canary-io/canary-controller:test", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(ref, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := pulled.Digest(); d != d1 {
		t.Errorf("pulled index %s, pushed %s", d, d1)
	}
	manifest, err := pulled.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, m := range manifest.Manifests {
		platforms = append(platforms, m.Platform.String())
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Errorf("platforms %v, want %v", platforms, want)
	}
	for _, m := range manifest.Manifests {
		img, err := pulled.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cfg.Config
		if c.User != User || !slices.Equal(c.Entrypoint, []string{Entrypoint}) || len(c.Cmd) != 0 {
			t.Errorf("%s: user %q entrypoint %v cmd %v", m.Platform, c.User, c.Entrypoint, c.Cmd)
		}
		if c.Labels["org.opencontainers.image.source"] != Source || c.Labels["org.opencontainers.image.revision"] != revision {
			t.Errorf("%s: labels %v", m.Platform, c.Labels)
		}
		if cfg.Architecture != m.Platform.Architecture || cfg.OS != "linux" {
			t.Errorf("%s: config says %s/%s", m.Platform, cfg.OS, cfg.Architecture)
		}
		files := layerFiles(t, img)
		if !slices.Equal(slices.Sorted(mapsKeys(files)), []string{"canary-controller"}) {
			t.Errorf("%s: files %v, want the binary alone (no shell)", m.Platform, slices.Sorted(mapsKeys(files)))
		}
		if m.Platform.Architecture != runtime.GOARCH {
			continue
		}
		bin := filepath.Join(t.TempDir(), "canary-controller")
		if err := os.WriteFile(bin, files["canary-controller"], 0o755); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		out, _ := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
		cancel()
		if !strings.Contains(string(out), "-prometheus-url") || !strings.Contains(string(out), "-allow-hook-destinations") {
			t.Errorf("%s: the binary's --help:\n%s", m.Platform, out)
		}
	}
}

// layerFiles reads the regular files of an image's layers.
func layerFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = data
		}
		_ = rc.Close()
	}
	return files
}

func mapsKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestDockerfileBuildsTheSameBinary: the Dockerfile's go build has the
// flags this program uses, so both build the same binary.
func TestDockerfileBuildsTheSameBinary(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	m := regexp.MustCompile(`go build (.*?) -o /out/canary-controller \./cmd/canary-controller`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no go build of ./cmd/canary-controller in the Dockerfile:\n%s", data)
	}
	var got []string
	for _, f := range regexp.MustCompile(`-ldflags="[^"]*"|\S+`).FindAllString(m[1], -1) {
		got = append(got, strings.ReplaceAll(f, `"`, ""))
	}
	if !slices.Equal(got, releasebuild.Flags) {
		t.Errorf("the Dockerfile builds with %q, this program with %q", got, releasebuild.Flags)
	}
	if !strings.Contains(text, "CGO_ENABLED=0") || !strings.Contains(text, "USER 65532:65532") || !strings.Contains(text, `ENTRYPOINT ["/canary-controller"]`) {
		t.Errorf("the Dockerfile's static build, user or entrypoint differ from the image's")
	}
}
