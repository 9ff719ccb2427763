package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/canary-io/canary/contract"
	"github.com/canary-io/canary/stepper"
	"github.com/canary-io/canary/stepper/plan"
)

// replicaSample is what a user sees at one moment of an analysis under
// an autoscaler.
type replicaSample struct {
	weight              string
	stable, stableReady int32 // the user's Deployment
	canary, canaryReady int32 // <name>-canary
	selected            int   // ready pods the HPA's selector (the /scale status) matches
	at                  time.Duration
}

func (s replicaSample) key() string {
	return fmt.Sprintf("%s %d %d %d %d %d", s.weight, s.stable, s.stableReady, s.canary, s.canaryReady, s.selected)
}

// sampleReplicas records every change of the replicas of stable and
// canary, and of the pods the HPA counts, every 50ms until stopped.
func sampleReplicas(t *testing.T, cs kubernetes.Interface, ns string) func() []replicaSample {
	ctx, cancel := context.WithCancel(t.Context())
	var mu sync.Mutex
	var seen []replicaSample
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		for ; ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
			var s replicaSample
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, "reviews", metav1.GetOptions{})
			if err != nil {
				continue // the sampler stopped, or a blip: the next sample tells
			}
			s.at = time.Since(start).Round(10 * time.Millisecond)
			s.weight, s.stable, s.stableReady = d.Annotations[contract.KeyWeight], *d.Spec.Replicas, d.Status.ReadyReplicas
			if c, err := cs.AppsV1().Deployments(ns).Get(ctx, stepper.CanaryName("reviews"), metav1.GetOptions{}); err == nil {
				s.canary, s.canaryReady = *c.Spec.Replicas, c.Status.ReadyReplicas
			}
			scale, err := cs.AppsV1().Deployments(ns).GetScale(ctx, "reviews", metav1.GetOptions{})
			if err != nil {
				continue
			}
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: scale.Status.Selector})
			if err != nil {
				continue
			}
			for _, p := range pods.Items {
				for _, c := range p.Status.Conditions {
					if c.Type == "Ready" && c.Status == "True" && p.DeletionTimestamp == nil {
						s.selected++
					}
				}
			}
			mu.Lock()
			if len(seen) == 0 || seen[len(seen)-1].key() != s.key() {
				seen = append(seen, s)
			}
			mu.Unlock()
		}
	}()
	return func() []replicaSample {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// TestAutoscalerInterplay: an HPA targets the user's Deployment and
// scales it during an analysis (the test writes /scale as the HPA
// controller does). The webhooks let /scale through, the stable
// Deployment keeps every replica the HPA asks for (never scaled down as
// the canary grows), the canary follows at ceil(replicas × weight / 100),
// the HPA's selector counts the canary's ready pods (they carry the
// template's labels), and the promotion keeps the HPA's count.
func TestAutoscalerInterplay(t *testing.T) {
	t.Parallel()
	ns, cs, _ := setup(t, `canary.io/interval: "4s"`)
	prom.Set(ns, map[string]float64{"canary/success": 100, "stable/success": 100, "canary/p99": 100, "stable/p99": 100})
	_, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(t.Context(), &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "reviews"},
			MinReplicas:    ptr.To[int32](2),
			MaxReplicas:    10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](60)},
			}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// scaleTo writes /scale as the HPA controller does: read the scale,
	// write it back with the new count, and on a conflict (the stepper
	// wrote the Deployment's annotations in between) read again and
	// retry, as the HPA controller's next sync would.
	scaleTo := func(n int32) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			scale, err := cs.AppsV1().Deployments(ns).GetScale(t.Context(), "reviews", metav1.GetOptions{})
			if err != nil {
				return err
			}
			scale.Spec.Replicas = n
			_, err = cs.AppsV1().Deployments(ns).UpdateScale(t.Context(), "reviews", scale, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatalf("the HPA's /scale write to %d replicas was refused: %v", n, err)
		}
	}
	samples := sampleReplicas(t, cs, ns)
	kubectl(t, manifest(ns, "v2", `canary.io/interval: "4s"`), "apply", "-f", "-")

	// Load grows during step 1: the HPA scales to 6.
	waitFor(t, cs, ns, 60*time.Second, "weight 20", func(d *appsv1.Deployment) bool { return d.Annotations[contract.KeyWeight] == "20" })
	scaleTo(6)
	waitFor(t, cs, ns, 30*time.Second, "the canary at ceil(6 × 20%) = 2", func(d *appsv1.Deployment) bool {
		c, err := cs.AppsV1().Deployments(ns).Get(t.Context(), stepper.CanaryName("reviews"), metav1.GetOptions{})
		return err == nil && *c.Spec.Replicas == plan.CanaryReplicas(6, 20) && c.Status.ReadyReplicas == 2
	})
	// The HPA's selector counts stable's and the canary's ready pods.
	scale, err := cs.AppsV1().Deployments(ns).GetScale(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sel, err := labels.Parse(scale.Status.Selector)
	if err != nil {
		t.Fatal(err)
	}
	canaryPods, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: stepper.LabelCanary + "=true"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range canaryPods.Items {
		if !sel.Matches(labels.Set(p.Labels)) {
			t.Errorf("canary pod %s is not counted by the HPA's selector %q: the docs say it is", p.Name, scale.Status.Selector)
		}
	}
	if len(canaryPods.Items) == 0 {
		t.Error("no canary pods while the canary takes 20%")
	}

	// Load falls at step 3: the HPA scales to 4.
	waitFor(t, cs, ns, 60*time.Second, "weight 60", func(d *appsv1.Deployment) bool { return d.Annotations[contract.KeyWeight] == "60" })
	scaleTo(4)
	d := waitFor(t, cs, ns, 90*time.Second, "v2 promoted and rolled out", func(d *appsv1.Deployment) bool {
		return d.Annotations[contract.KeyPhase] == "Succeeded" && d.Status.UpdatedReplicas == 4 && d.Status.Replicas == 4
	})
	got := samples()
	if *d.Spec.Replicas != 4 {
		t.Errorf("after the promotion the Deployment has %d replicas, want the HPA's 4", *d.Spec.Replicas)
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%8s  %6s  %-14s  %-14s  %s\n", "time", "weight", "stable (ready)", "canary (ready)", "pods the HPA counts")
	var stableSeen []int32
	for _, s := range got {
		fmt.Fprintf(&table, "%8v  %6s  %6d (%d)%5s  %6d (%d)%5s  %d\n", s.at, s.weight, s.stable, s.stableReady, "", s.canary, s.canaryReady, "", s.selected)
		if n := len(stableSeen); n == 0 || stableSeen[n-1] != s.stable {
			stableSeen = append(stableSeen, s.stable)
		}
		// The canary never has more replicas than its weight needs of
		// the most replicas the HPA asked for.
		if s.canary > plan.CanaryReplicas(6, 60) {
			t.Errorf("at %v the canary has %d replicas, more than ceil(6 × 60%%)", s.at, s.canary)
		}
	}
	// Stable keeps what the HPA asks for: only the /scale writes move it,
	// never the canary's growth.
	if !slices.Equal(stableSeen, []int32{3, 6, 4}) {
		t.Errorf("stable's replicas went %v, want 3 (the manifest), 6 and 4 (the HPA's writes) only", stableSeen)
	}
	t.Logf("replicas during the analysis (steps 20,40,60; the HPA scales to 6 at 20%%, to 4 at 60%%):\n%s", table.String())
	fmt.Printf("BENCH autoscaler interplay, replicas at each change:\n%s", table.String())
	wantSeen := map[string]bool{"20 6 2": false, "40 6 3": false, "60 4 3": false}
	for _, s := range got {
		k := fmt.Sprintf("%s %d %d", s.weight, s.stable, s.canary)
		if _, ok := wantSeen[k]; ok {
			wantSeen[k] = true
		}
	}
	for k, ok := range wantSeen {
		if !ok {
			t.Errorf("never saw weight, stable and canary replicas %s", k)
		}
	}
}
