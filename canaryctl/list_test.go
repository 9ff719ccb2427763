package canaryctl

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/canary-io/canary/contract"
)

func TestRenderList(t *testing.T) {
	deployments := []appsv1.Deployment{
		*progressing("shop", "web"),
		*deployment("shop", "plain", contract.KeyEnabled, ""), // not opted in
		*deployment("auth", "api"),                            // opted in, never analysed
		*progressing("auth", "login", contract.KeyPhase, "Succeeded", contract.KeyWeight, "0", contract.KeyStep, "3/3",
			contract.KeyLastTransition, now.Add(-3*time.Hour).Format(time.RFC3339)),
	}
	for _, tc := range []struct {
		name string
		all  bool
		in   []appsv1.Deployment
		want string
	}{
		{
			name: "one namespace",
			in:   deployments[:2],
			want: "" +
				"NAME  PHASE        WEIGHT  STEP  REVISION  STABLE  AGE\n" +
				"web   Progressing  20      1/3   7f9c4d    5b6a21  90s\n",
		},
		{
			name: "all namespaces, sorted, opted-in only",
			all:  true,
			in:   deployments,
			want: "" +
				"NAMESPACE  NAME   PHASE        WEIGHT  STEP  REVISION  STABLE  AGE\n" +
				"auth       api    -            -       -     -         -       -\n" +
				"auth       login  Succeeded    0       3/3   7f9c4d    5b6a21  3h\n" +
				"shop       web    Progressing  20      1/3   7f9c4d    5b6a21  90s\n",
		},
		{
			name: "none opted in",
			in:   deployments[1:2],
			want: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RenderList(tc.in, tc.all, now); got != tc.want {
				t.Errorf("RenderList =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
