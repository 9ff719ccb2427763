package integration

import (
	"strings"
	"testing"

	"github.com/canary-io/canary/e2e/cluster"
)

// TestWrongIdentityRefusedAtStart: a controller whose --controller-identity
// is not who the apiserver says it is exits at start-up with a clear
// error, instead of taking its own writes for a user's and looping.
func TestWrongIdentityRefusedAtStart(t *testing.T) {
	p, err := ctrlProc.Replica("wrong-identity.log", "--leader-elect=false")
	if err != nil {
		t.Fatal(err)
	}
	err = p.Start("--controller-identity=system:serviceaccount:canary-system:canary-controller")
	if err == nil {
		p.Stop()
		t.Fatal("the controller started with a wrong identity")
	}
	// The log is JSON: the quotes in the message are escaped.
	log := strings.ReplaceAll(p.Log(), `\"`, `"`)
	for _, want := range []string{
		`the controller runs as "` + cluster.ControllerUser + `" but --controller-identity is "system:serviceaccount:canary-system:canary-controller"`,
		"set --controller-identity=" + cluster.ControllerUser,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("its log does not say %q:\n%s", want, log)
		}
	}
}
