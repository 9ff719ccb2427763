package contract

import (
	"hash/fnv"
	"strconv"

	jsoniter "github.com/json-iterator/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
)

// TemplateHash is the short hash that names a pod template revision in
// canary.io/revision and canary.io/stable-revision: FNV-32a over the
// template's JSON, encoded the way Kubernetes encodes pod-template-hash
// (letters and digits without vowels, so it never spells a word). The
// webhook and the stepper both name revisions with it.
//
// Example: a template whose JSON hashes to 1234567890 is "5c7d9d8c5b"-like:
// strconv of the number, then rand.SafeEncodeString.
func TemplateHash(t *corev1.PodTemplateSpec) string {
	return HashOfTemplateJSON(TemplateJSON(t))
}

// templateJSONAPI encodes templates; its output is the revision's
// identity, so it never changes.
var templateJSONAPI = jsoniter.ConfigCompatibleWithStandardLibrary

// TemplateJSON is a template's canonical JSON: equal for equal templates
// (quantities and times encode canonically), so comparing it is an exact
// and cheap test of a template change.
func TemplateJSON(t *corev1.PodTemplateSpec) []byte {
	data, err := templateJSONAPI.Marshal(t)
	if err != nil {
		// A PodTemplateSpec always encodes; this would be a bug in k8s.io/api.
		panic("encode pod template: " + err.Error())
	}
	return data
}

// HashOfTemplateJSON is TemplateHash of a template already encoded by
// TemplateJSON.
func HashOfTemplateJSON(templateJSON []byte) string {
	h := fnv.New32a()
	_, _ = h.Write(templateJSON)
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// OptedIn reports whether a Deployment is opted in (canary.io/enabled is
// "true").
func OptedIn(d *appsv1.Deployment) bool {
	return d != nil && d.Annotations[KeyEnabled] == "true"
}

// KeyPinned, on a user's Service, names the stable ReplicaSet's
// pod-template-hash the stepper pinned the Service's selector to during an
// analysis. The webhook is called only for Services that carry it.
const KeyPinned = Prefix + "pinned"

// KeyPinnedBy, on a pinned Service, names the Deployment whose analysis
// pinned it, as "<name>/<uid>": the stepper unpins a Service whose owner
// is gone (deleted, or re-created under the same name) or no longer opted
// in, so that nothing is left pinned. The webhook keeps it like the pin.
const KeyPinnedBy = Prefix + "pinned-by"
