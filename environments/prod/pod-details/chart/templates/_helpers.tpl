{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "pod-details.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: fullnameOverride, else the release name when it already contains the chart name,
else <release>-<chart>. Truncated to 63 characters (the DNS label limit).
*/}}
{{- define "pod-details.fullname" -}}
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

{{/* chart label value: <chart>-<version>. */}}
{{- define "pod-details.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of the release (a Deployment's selector is immutable). The component label keeps
the helm test pod out of the Service and the NetworkPolicy.
*/}}
{{- define "pod-details.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pod-details.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{/* Common labels: the selector labels plus the chart, the deployed image tag and the manager. */}}
{{- define "pod-details.labels" -}}
helm.sh/chart: {{ include "pod-details.chart" . }}
{{ include "pod-details.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: {{ include "pod-details.name" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "pod-details.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pod-details.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest when a digest is pinned, else repository:tag. The tag is required. */}}
{{- define "pod-details.image" -}}
{{- $tag := required "image.tag is required: set it from the environment's release.yaml" .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The hostnames, required as soon as something routes to the service from outside the cluster. */}}
{{- define "pod-details.hostnames" -}}
{{- if not .Values.hostnames }}
{{- fail "hostnames must list at least one host when httpRoute.enabled or ingress.enabled is true" }}
{{- end }}
{{- toYaml .Values.hostnames }}
{{- end }}
