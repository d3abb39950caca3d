{{/*
Names. The fullname is the release name, or "<release>-scim-operator" when the
release name does not already say scim-operator; objects are named after it
the way config/default names them ("<fullname>-controller-manager", ...).
*/}}
{{- define "scim-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "scim-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "scim-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "scim-operator.labels" -}}
helm.sh/chart: {{ include "scim-operator.chart" . }}
app.kubernetes.io/name: {{ include "scim-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the manager Pods; never change them on upgrade. */}}
{{- define "scim-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scim-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end }}

{{- define "scim-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controller-manager" (include "scim-operator.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "scim-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The SCIM base URL for --public-url. */}}
{{- define "scim-operator.publicURL" -}}
{{- if .Values.publicURL }}
{{- .Values.publicURL }}
{{- else if .Values.ingress.enabled }}
{{- printf "https://%s/%s" .Values.ingress.host (trimPrefix "/" .Values.ingress.path) }}
{{- else }}
{{- fail "set publicURL (such as https://helpdesk.example.com/scim/v2): with the Ingress disabled the chart cannot work out the URL the identity provider uses" }}
{{- end }}
{{- end }}

{{/* The Secret and key HELPDESK_DATABASE_URL is read from. */}}
{{- define "scim-operator.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-helpdesk-db" (include "scim-operator.fullname" .) }}
{{- end }}
{{- end }}

{{- define "scim-operator.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- default "url" .Values.database.existingSecretKey }}
{{- else }}
{{- "url" }}
{{- end }}
{{- end }}

{{/* True when a database other than the SQLite fallback is configured. */}}
{{- define "scim-operator.databaseConfigured" -}}
{{- if or .Values.database.url .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/* The SCIM Service port: 443 when the Pods serve TLS, otherwise 80. */}}
{{- define "scim-operator.scimServicePortName" -}}
{{- if .Values.scim.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/* Checks of values that would otherwise deploy something broken. */}}
{{- define "scim-operator.validate" -}}
{{- if not (has .Values.deletionPolicy (list "retain" "delete")) }}
{{- fail (printf "deletionPolicy must be retain or delete, not %q" .Values.deletionPolicy) }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection) }}
{{- fail "leaderElection must be true when replicaCount is above 1: two replicas would both run the controllers" }}
{{- end }}
{{- if and .Values.database.sqlite.persistence.enabled (gt (int .Values.replicaCount) 1) }}
{{- fail "database.sqlite.persistence needs replicaCount: 1 (SQLite has a single writer and the volume is ReadWriteOnce); use PostgreSQL or MySQL for more replicas" }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "set database.url or database.existingSecret, not both" }}
{{- end }}
{{- if and .Values.scim.tls.enabled (not .Values.scim.tls.secretName) }}
{{- fail "scim.tls.secretName is required when scim.tls.enabled is true" }}
{{- end }}
{{- if not (kindIs "slice" (.Values.scim.trustedProxies | default list)) }}
{{- fail "scim.trustedProxies must be a list of CIDRs, such as [10.244.0.0/16]" }}
{{- end }}
{{- range (.Values.scim.trustedProxies | default list) }}
{{- if and . (not (regexMatch "^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$" (toString .))) }}
{{- fail (printf "scim.trustedProxies: %q is not a CIDR such as 10.244.0.0/16" (toString .)) }}
{{- end }}
{{- end }}
{{- end }}
