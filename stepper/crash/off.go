//go:build !faultinject

package crash

import "sigs.k8s.io/controller-runtime/pkg/client"

// Client returns c; built with the faultinject tag, every write it makes
// successfully is followed by a crash point.
func Client(c client.Client) client.Client { return c }

// Enabled reports whether crash points are built in.
const Enabled = false
