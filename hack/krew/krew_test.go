package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/canary-io/canary/e2e/cluster"
)

// TestKrewInstall builds the archive for this machine twice (the same
// bytes), then installs the plugin with the real Krew from the manifest
// and the archive, offline, and runs it as kubectl canary.
func TestKrewInstall(t *testing.T) {
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tools := filepath.Join(root, ".local", "bin")
	if d := os.Getenv("CANARY_TOOLS_DIR"); d != "" {
		tools = filepath.Join(d, "bin")
	}
	krew := filepath.Join(tools, "krew")
	if _, err := os.Stat(krew); err != nil {
		t.Fatalf("krew is not built (make tools): %v", err)
	}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	out1, out2 := t.TempDir(), t.TempDir()
	archives, err := Build(root, out1, "v0.0.0-test", "https://example.invalid/VERSION/", []string{platform})
	if err != nil {
		t.Fatal(err)
	}
	again, err := Build(root, out2, "v0.0.0-test", "https://example.invalid/VERSION/", []string{platform})
	if err != nil {
		t.Fatal(err)
	}
	if archives[0].SHA256 != again[0].SHA256 {
		t.Errorf("two builds of the same tree differ: %s, %s", archives[0].SHA256, again[0].SHA256)
	}
	manifest, err := os.ReadFile(filepath.Join(out1, "canary.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Metadata struct{ Name string }
		Spec     struct {
			Version   string
			Platforms []struct {
				URI, SHA256 string
				Bin         string
			}
		}
	}
	if err := yaml.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.Metadata.Name != "canary" || m.Spec.Version != "v0.0.0-test" || len(m.Spec.Platforms) != 1 ||
		m.Spec.Platforms[0].URI != "https://example.invalid/v0.0.0-test/"+archives[0].File || m.Spec.Platforms[0].SHA256 != archives[0].SHA256 {
		t.Errorf("manifest:\n%s", manifest)
	}

	krewRoot := t.TempDir()
	install := exec.CommandContext(t.Context(), krew, "install",
		"--manifest="+filepath.Join(out1, "canary.yaml"), "--archive="+filepath.Join(out1, archives[0].File))
	install.Env = append(os.Environ(), "KREW_ROOT="+krewRoot, "KREW_NO_UPGRADE_CHECK=1")
	if o, err := install.CombinedOutput(); err != nil {
		t.Fatalf("krew install: %v\n%s", err, o)
	} else {
		t.Logf("krew install:\n%s", o)
	}
	kubectl := exec.CommandContext(t.Context(), filepath.Join(tools, "kubectl"), "canary", "help")
	kubectl.Env = append(os.Environ(), "PATH="+filepath.Join(krewRoot, "bin"))
	o, err := kubectl.CombinedOutput()
	if err != nil || !bytes.Contains(o, []byte("kubectl canary list")) {
		t.Errorf("kubectl canary help after krew install: %v\n%s", err, o)
	}
	if _, err := os.Stat(filepath.Join(krewRoot, "receipts", "canary.yaml")); err != nil {
		t.Errorf("krew kept no receipt of the install: %v", err)
	}
}
