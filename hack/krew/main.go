// Command krew builds the kubectl plugin's release archives and its Krew
// manifest (make krew):
//
//	go run ./hack/krew [--out .local/krew] [--version v0.1.0] [--platforms linux/amd64,...]
//
// Each archive, kubectl-canary_<os>_<arch>.tar.gz, holds the static
// kubectl-canary binary (built with the controller image's flags:
// reproducible) and LICENSE; canary.yaml is the Krew manifest naming them
// under --uri-base with their SHA-256. Upload the archives to the release
// and submit canary.yaml to krew-index; before that, a user installs it
// offline with
//
//	kubectl krew install --manifest=.local/krew/canary.yaml --archive=.local/krew/kubectl-canary_linux_amd64.tar.gz
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
)

// buildFlags are those of hack/image: no paths, VCS stamp or build ID,
// so the same commit gives the same archive.
var buildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// Platforms are the platforms kubectl users run on.
var Platforms = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64"}

// Archive is one platform's archive.
type Archive struct {
	OS, Arch, File, SHA256, Bin string
}

// Build builds the archives for platforms into out and writes the
// manifest there; root is the checkout.
func Build(root, out, version, uriBase string, platforms []string) ([]Archive, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		return nil, err
	}
	var archives []Archive
	for _, p := range platforms {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok {
			return nil, fmt.Errorf("platform %q: want os/arch", p)
		}
		bin := "kubectl-canary"
		if goos == "windows" {
			bin += ".exe"
		}
		tmp, err := os.MkdirTemp("", "krew-")
		if err != nil {
			return nil, err
		}
		args := append([]string{"build", "-o", filepath.Join(tmp, bin)}, buildFlags...)
		cmd := exec.Command("go", append(args, "./cmd/kubectl-canary")...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
		if o, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("build kubectl-canary for %s: %v\n%s", p, err, o)
		}
		binary, err := os.ReadFile(filepath.Join(tmp, bin))
		os.RemoveAll(tmp)
		if err != nil {
			return nil, err
		}
		data, err := tarGz([]file{{bin, binary, 0o755}, {"LICENSE", license, 0o644}})
		if err != nil {
			return nil, err
		}
		a := Archive{OS: goos, Arch: goarch, Bin: bin, File: fmt.Sprintf("kubectl-canary_%s_%s.tar.gz", goos, goarch)}
		sum := sha256.Sum256(data)
		a.SHA256 = hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(out, a.File), data, 0o644); err != nil {
			return nil, err
		}
		archives = append(archives, a)
	}
	var manifest bytes.Buffer
	err = manifestTemplate.Execute(&manifest, map[string]any{
		"Version": version, "URIBase": strings.ReplaceAll(uriBase, "VERSION", version), "Archives": archives,
	})
	if err != nil {
		return nil, err
	}
	return archives, os.WriteFile(filepath.Join(out, "canary.yaml"), manifest.Bytes(), 0o644)
}

type file struct {
	name string
	data []byte
	mode int64
}

// tarGz archives files with no time, owner or host detail.
func tarGz(files []file) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var manifestTemplate = template.Must(template.New("canary.yaml").Parse(`apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: canary
spec:
  version: {{ .Version }}
  homepage: https://github.com/canary-io/canary
  shortDescription: Follow, promote and abort canary.io canary releases
  description: |
    Reads and steers the canary analyses of Deployments annotated with
    canary.io/enabled: list and get them (live with --watch, -o json|yaml),
    their history, promote, abort, retry, pause or resume one, and hand a
    Deployment back once the controller is removed (release).
  caveats: |
    Shell completion (kubectl 1.26+): save the completion script as an
    executable named kubectl_complete-canary on your PATH:

      kubectl canary completion > "${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-canary"
      chmod +x "${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-canary"
  platforms:
{{- range .Archives }}
  - selector:
      matchLabels:
        os: {{ .OS }}
        arch: {{ .Arch }}
    uri: {{ $.URIBase }}{{ .File }}
    sha256: {{ .SHA256 }}
    files:
    - from: {{ .Bin }}
      to: .
    - from: LICENSE
      to: .
    bin: {{ .Bin }}
{{- end }}
`))

func main() {
	out := flag.String("out", ".local/krew", "directory of the archives and canary.yaml")
	version := flag.String("version", "v0.1.0", "the plugin's version (a release tag)")
	uriBase := flag.String("uri-base", "https://github.com/canary-io/canary/releases/download/VERSION/", "where the archives are downloaded from (VERSION is replaced)")
	platforms := flag.String("platforms", strings.Join(Platforms, ","), "comma-separated os/arch")
	flag.Parse()
	root, err := os.Getwd()
	if err == nil {
		_, err = Build(root, *out, *version, *uriBase, strings.Split(*platforms, ","))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "krew:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s\n", filepath.Join(*out, "canary.yaml"))
}
