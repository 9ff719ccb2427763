// Package releasebuild is how the release builds canary-controller: the
// go build flags and environment of the image's binary (hack/image, the
// Dockerfile). The tests build the controller they run the same way
// (e2e/controller, charts), so that they run what ships, and so that the
// image's build for this machine's platform finds their compiled packages
// in the Go cache instead of compiling every dependency again.
package releasebuild

import (
	"context"
	"os"
	"os/exec"
)

// Flags are the go build flags of the controller's binary.
var Flags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// Command is `go build` of package pkg (e.g. ./cmd/canary-controller)
// into out, run in the module's root dir, for goos/goarch ("" for this
// machine's), with extra flags (build tags) before the package: a static
// binary (CGO_ENABLED=0), GOFLAGS cleared so that the flags are all
// Flags.
func Command(ctx context.Context, root, goos, goarch, out, pkg string, extra ...string) *exec.Cmd {
	args := append(append(append([]string{"build"}, Flags...), extra...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if goos != "" {
		cmd.Env = append(cmd.Env, "GOOS="+goos)
	}
	if goarch != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+goarch)
	}
	return cmd
}
