package stepper

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// SlimDeployments is the manager cache's transform of Deployments: a
// Deployment the system has nothing to do with keeps only what the
// stepper reads of it (its metadata, replicas, selector and pod template
// labels, to tell which Service selects it); the rest of its spec (the
// pod spec: containers, volumes, environment) and its status are
// dropped, so the cache of a cluster of many Deployments holds little
// more than their metadata. Every Deployment with a canary.io/
// annotation (opted in, or its analysis' status still there) and every
// canary Deployment is kept whole. No managed fields are kept.
//
// A slim Deployment is never written: the stepper writes only the
// Deployments it keeps whole (and the apiserver would refuse one without
// containers).
func SlimDeployments(obj any) (any, error) {
	obj, err := cache.TransformStripManagedFields()(obj)
	d, ok := obj.(*appsv1.Deployment)
	if err != nil || !ok || keptWhole(d) {
		return obj, err
	}
	slim := &appsv1.Deployment{TypeMeta: d.TypeMeta, ObjectMeta: d.ObjectMeta}
	slim.Spec.Replicas = d.Spec.Replicas
	slim.Spec.Selector = d.Spec.Selector
	slim.Spec.Template.ObjectMeta = d.Spec.Template.ObjectMeta
	return slim, nil
}

// keptWhole reports whether the cache keeps d whole: it has a canary.io/
// annotation, or is (or runs) a canary.
func keptWhole(d *appsv1.Deployment) bool {
	for k := range d.Annotations {
		if strings.HasPrefix(k, "canary.io/") {
			return true
		}
	}
	return d.Labels[LabelCanary] == "true" || d.Spec.Template.Labels[LabelCanary] == "true"
}
