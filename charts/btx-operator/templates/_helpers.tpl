{{/* The chart name, overridable. */}}
{{- define "btx-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name: the release name when it already says btx-operator. */}}
{{- define "btx-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "btx-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object (also used by the generated CRD template). */}}
{{- define "btx-operator.labels" -}}
helm.sh/chart: {{ include "btx-operator.chart" . }}
{{ include "btx-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: btx-operator
{{- end }}

{{/* Labels that select the operator's pods. */}}
{{- define "btx-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "btx-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "btx-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "btx-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "btx-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Namespaces where the trainer ServiceAccount and Role go, as a JSON list. */}}
{{- /*
  Where the trainer ServiceAccount goes: trainer.namespaces, else the watched namespaces, never the
  release namespace by default (the operator runs there; its stage pods should not live beside it).
*/}}
{{- define "btx-operator.trainerNamespaces" -}}
{{- if .Values.trainer.namespaces }}
{{- .Values.trainer.namespaces | uniq | toJson }}
{{- else }}
{{- without (.Values.watchNamespaces | uniq) .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/* What the operator does to BTXRuns and their children: the same rules cluster-wide or per namespace. */}}
{{- define "btx-operator.rules" -}}
- apiGroups: ["btx.ai"]
  resources: ["btxruns"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["btx.ai"]
  resources: ["btxruns/status"]
  verbs: ["get", "update", "patch"]
# Owner references with blockOwnerDeletion need this where OwnerReferencesPermissionEnforcement is on.
- apiGroups: ["btx.ai"]
  resources: ["btxruns/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["create", "delete", "get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create", "delete", "get", "list", "watch", "patch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
