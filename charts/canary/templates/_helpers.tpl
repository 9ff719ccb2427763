{{/* The labels of every object; the first two are the kustomize manifests'. */}}
{{- define "canary.labels" -}}
app.kubernetes.io/name: canary-controller
app.kubernetes.io/part-of: canary.io
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The pods' selector: the same as the kustomize manifests', so that a
switch from those to the chart keeps the Deployment. */}}
{{- define "canary.selector" -}}
app.kubernetes.io/name: canary-controller
{{- end }}

{{/* The user name of the controller's writes (--controller-identity). */}}
{{- define "canary.identity" -}}
system:serviceaccount:{{ .Release.Namespace }}:canary-controller
{{- end }}

{{- define "canary.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* The namespaces a namespaced controller serves. */}}
{{- define "canary.namespaces" -}}
{{- if not .Values.namespaced.namespaces -}}
{{- fail "namespaced.enabled=true needs namespaced.namespaces: the namespaces this controller serves" -}}
{{- end -}}
{{- join "," .Values.namespaced.namespaces -}}
{{- end }}

{{/* The webhooks' namespaceSelector in namespaced mode. */}}
{{- define "canary.namespaceSelector" -}}
{{- if .Values.namespaced.enabled -}}
namespaceSelector:
  matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: In
    values: {{ toJson .Values.namespaced.namespaces }}
{{- end -}}
{{- end }}

{{/* The webhooks' clientConfig. */}}
{{- define "canary.clientConfig" -}}
clientConfig:
  service:
    name: canary-webhook
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
{{- with .caBundle }}
  caBundle: {{ . }}
{{- end }}
{{- end }}

{{/* The Deployment webhooks' match conditions: opted-in Deployments, but
for the controller's own status writes (webhook/config.go,
controllerStatusWrite). */}}
{{- define "canary.optedIn" -}}
matchConditions:
- name: opted-in
  expression: >-
    (has(object.metadata.annotations) && 'canary.io/enabled' in object.metadata.annotations
    && object.metadata.annotations['canary.io/enabled'] != 'false') ||
    (oldObject != null && has(oldObject.metadata.annotations) && 'canary.io/enabled' in oldObject.metadata.annotations
    && oldObject.metadata.annotations['canary.io/enabled'] != 'false')
- name: not-a-controller-status-write
  expression: >-
    !(oldObject != null && request.userInfo.username ==
    "{{ include "canary.identity" . }}" && object.spec.template ==
    oldObject.spec.template && !(has(oldObject.spec.paused) && oldObject.spec.paused &&
    !(has(object.spec.paused) && object.spec.paused)) && has(object.metadata.annotations) &&
    has(oldObject.metadata.annotations) && size(object.metadata.annotations) <= 128 &&
    size(oldObject.metadata.annotations) <= 128 && object.metadata.annotations.all(k, k in
    ["canary.io/phase", "canary.io/weight", "canary.io/step", "canary.io/revision",
    "canary.io/stable-revision", "canary.io/failed-checks", "canary.io/message",
    "canary.io/last-transition", "canary.io/rejected-revision", "canary.io/analysis-settings",
    "canary.io/acted", "canary.io/steps-passed", "canary.io/step-started", "canary.io/waiting-since",
    "canary.io/pre-rollout-failed", "canary.io/analysis-started", "canary.io/rolled-out",
    "canary.io/evented-transition", "canary.io/transition-reason", "canary.io/rejection",
    "canary.io/failing", "canary.io/failing-since"] || (k in oldObject.metadata.annotations &&
    oldObject.metadata.annotations[k] == object.metadata.annotations[k])) &&
    oldObject.metadata.annotations.all(k, k in ["canary.io/phase", "canary.io/weight", "canary.io/step",
    "canary.io/revision", "canary.io/stable-revision", "canary.io/failed-checks", "canary.io/message",
    "canary.io/last-transition", "canary.io/rejected-revision", "canary.io/analysis-settings",
    "canary.io/acted", "canary.io/steps-passed", "canary.io/step-started", "canary.io/waiting-since",
    "canary.io/pre-rollout-failed", "canary.io/analysis-started", "canary.io/rolled-out",
    "canary.io/evented-transition", "canary.io/transition-reason", "canary.io/rejection",
    "canary.io/failing", "canary.io/failing-since"] || k in object.metadata.annotations))
{{- end }}

{{/* The controller's RBAC rules: a ClusterRole's, or each served
namespace's Role's (manifests/base/rbac.yaml explains every verb). */}}
{{- define "canary.rules" -}}
rules:
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments/status"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["networking.istio.io"]
  resources: ["destinationrules"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* The self-managed serving certificate (certManager.enabled=false):
tls.crt, tls.key and ca.crt, the same across upgrades (the Secret in the
cluster is kept while it names this Service), else made anew. */}}
{{- define "canary.selfManagedTLS" -}}
{{- $name := "canary-webhook-tls" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- if and $existing $existing.data (index $existing.data "ca.crt") -}}
{{- toJson (dict "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key") "ca" (index $existing.data "ca.crt")) -}}
{{- else -}}
{{- $svc := printf "canary-webhook.%s.svc" .Release.Namespace -}}
{{- $ca := genCA "canary.io webhook CA" 3650 -}}
{{- $cert := genSignedCert $svc nil (list $svc (printf "%s.cluster.local" $svc)) 3650 $ca -}}
{{- toJson (dict "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) "ca" ($ca.Cert | b64enc)) -}}
{{- end -}}
{{- end }}
