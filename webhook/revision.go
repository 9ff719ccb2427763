package webhook

import (
	"hash/fnv"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
)

// TemplateHash is the short hash that names a pod template revision in
// canary.io/revision and canary.io/stable-revision: FNV-32a over the
// template's JSON, encoded the way Kubernetes encodes pod-template-hash
// (letters and digits without vowels, so it never spells a word).
//
// Example: a template whose JSON hashes to 1234567890 is "5c7d9d8c5b"-like:
// strconv of the number, then rand.SafeEncodeString.
func TemplateHash(t *corev1.PodTemplateSpec) string {
	return hashOf(templateJSON(t))
}

// templateJSON is a template's canonical JSON: equal for equal templates
// (quantities and times encode canonically), so comparing it is an exact
// and cheap test of a template change.
func templateJSON(t *corev1.PodTemplateSpec) []byte {
	data, err := jsonAPI.Marshal(t)
	if err != nil {
		// A PodTemplateSpec always encodes; this would be a bug in k8s.io/api.
		panic("encode pod template: " + err.Error())
	}
	return data
}

func hashOf(templateJSON []byte) string {
	h := fnv.New32a()
	_, _ = h.Write(templateJSON)
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}
