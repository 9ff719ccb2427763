package manifests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/canary-io/canary/e2e/cluster"
)

// Access is one API permission: a verb on a resource (with its
// subresource, if any) of an API group.
type Access struct {
	Group, Resource, Subresource, Verb string
	// Namespace is where the access is needed: empty for every namespace
	// (a ClusterRole), else only there (a Role).
	Namespace string
}

func (a Access) String() string {
	r := a.Resource
	if a.Subresource != "" {
		r += "/" + a.Subresource
	}
	if a.Group != "" {
		r += "." + a.Group
	}
	if a.Namespace != "" {
		r += " in " + a.Namespace
	}
	return a.Verb + " " + r
}

// Namespace is where the controller runs, and ServiceAccount its identity.
const (
	Namespace      = "canary-system"
	ServiceAccount = "system:serviceaccount:canary-system:canary-controller"
)

// Needs is every API access canary-controller makes (stepper/gather.go,
// act.go, reconciler.go; controller-runtime's cache, event recorder and
// leader election). The manifests' RBAC grants exactly these.
var Needs = func() []Access {
	var as []Access
	add := func(group, resource, sub, ns string, verbs ...string) {
		for _, v := range verbs {
			as = append(as, Access{Group: group, Resource: resource, Subresource: sub, Verb: v, Namespace: ns})
		}
	}
	add("apps", "deployments", "", "", "get", "list", "watch", "create", "update", "delete")
	add("apps", "deployments", "status", "", "update")
	add("apps", "deployments", "finalizers", "", "update")
	add("apps", "replicasets", "", "", "list", "watch")
	add("", "pods", "", "", "list", "watch")
	add("", "services", "", "", "get", "list", "watch", "create", "patch", "delete")
	add("networking.istio.io", "virtualservices", "", "", "get", "list", "watch", "create", "update", "patch", "delete")
	add("networking.istio.io", "destinationrules", "", "", "get", "list", "watch", "create", "update", "delete")
	add("gateway.networking.k8s.io", "httproutes", "", "", "get", "list", "watch", "create", "update", "patch", "delete")
	add("events.k8s.io", "events", "", "", "create", "patch")
	add("coordination.k8s.io", "leases", "", Namespace, "get", "create", "update")
	add("", "events", "", Namespace, "create", "patch")
	return as
}()

// Dir is this directory in the checkout.
func Dir() (string, error) {
	root, err := cluster.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "manifests"), nil
}

// Render is the output of kubectl kustomize on this directory (with the
// checkout's pinned kubectl).
func Render() ([]byte, error) { return RenderOverlay("") }

// RenderOverlay is the output of kubectl kustomize on an overlay of this
// directory (e.g. "overlays/namespaced"; "" for the directory itself).
func RenderOverlay(overlay string) ([]byte, error) {
	root, err := Dir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, overlay)
	// Read here too, so that go test's cache knows the result depends on
	// them (it does not see what kubectl reads).
	yamls, err := filepath.Glob(filepath.Join(root, "*", "*.yaml"))
	if err != nil {
		return nil, err
	}
	for _, pattern := range []string{"*.yaml", "overlays/*/*.yaml"} {
		more, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			return nil, err
		}
		yamls = append(yamls, more...)
	}
	for _, f := range yamls {
		if _, err := os.ReadFile(f); err != nil {
			return nil, err
		}
	}
	kubectl := filepath.Join(filepath.Dir(root), ".local", "bin", "kubectl")
	if k := os.Getenv("CANARY_TOOLS_DIR"); k != "" {
		kubectl = filepath.Join(k, "bin", "kubectl")
	}
	var stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	return out, nil
}

// Object is one rendered object: its kind and name, and its YAML.
type Object struct {
	APIVersion, Kind, Namespace, Name string
	YAML                              []byte
}

// Split cuts a multi-document YAML stream into objects.
func Split(stream []byte) ([]Object, error) {
	var objs []Object
	for _, doc := range strings.Split("\n"+string(stream), "\n---") {
		doc = strings.TrimPrefix(doc, "\n")
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return nil, fmt.Errorf("decode %q: %w", doc, err)
		}
		if meta.Kind == "" {
			continue // only comments
		}
		objs = append(objs, Object{
			APIVersion: meta.APIVersion, Kind: meta.Kind, Namespace: meta.Metadata.Namespace, Name: meta.Metadata.Name,
			YAML: []byte(doc),
		})
	}
	return objs, nil
}

// IsCertManager reports whether the object is of a cert-manager kind.
func (o Object) IsCertManager() bool { return strings.HasPrefix(o.APIVersion, "cert-manager.io/") }
