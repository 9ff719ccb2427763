package webhook

import (
	"encoding/json"
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
	data, err := json.Marshal(t)
	if err != nil {
		// A PodTemplateSpec always encodes; this would be a bug in k8s.io/api.
		panic("encode pod template: " + err.Error())
	}
	h := fnv.New32a()
	_, _ = h.Write(data)
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}
