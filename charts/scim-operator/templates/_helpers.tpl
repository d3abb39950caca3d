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

{{/* True when the trial SQLite file inside the Pod is the database. */}}
{{- define "scim-operator.sqlite" -}}
{{- if .Values.database.sqlite.enabled }}true{{ end }}
{{- end }}

{{/* The SQLite file's directory, a volume: the root filesystem is read-only. */}}
{{- define "scim-operator.sqliteDir" -}}
/var/lib/scim-operator
{{- end }}

{{/*
GOMEMLIMIT: goMemLimitPercent of resources.limits.memory, rounded down to whole
MiB (the Go runtime reads suffixes B, KiB, MiB, GiB, TiB, not Kubernetes
quantities). Empty without a memory limit or with goMemLimitPercent 0.
*/}}
{{- define "scim-operator.goMemLimit" -}}
{{- $limit := dig "limits" "memory" "" (.Values.resources | default dict) | toString }}
{{- $percent := .Values.goMemLimitPercent | default 0 | float64 }}
{{- if and $limit (gt $percent 0.0) }}
{{- $quantity := `^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$` }}
{{- if not (regexMatch $quantity $limit) }}
{{- fail (printf "resources.limits.memory %q: the chart derives GOMEMLIMIT from it and reads only plain quantities such as 2Gi, 2048Mi or 2G" $limit) }}
{{- end }}
{{- $units := dict "" 1.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 }}
{{- $bytes := mulf (regexReplaceAll $quantity $limit "${1}" | float64) (get $units (regexReplaceAll $quantity $limit "${2}")) }}
{{- printf "%dMiB" (divf (mulf $bytes $percent) 104857600.0 | floor | int64) }}
{{- end }}
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
{{- $db := .Values.database }}
{{- if and $db.sqlite.enabled (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "database.sqlite.enabled with replicaCount %d: SQLite is a file inside one Pod, so every replica would write its own and a new leader would start from an empty one. Either set replicaCount: 1 (trying out), or use PostgreSQL or MySQL for more replicas: set database.existingSecret (a Secret holding the URL) or database.url, and leave database.sqlite.enabled false" (int .Values.replicaCount)) }}
{{- end }}
{{- if and $db.sqlite.persistence.enabled (not $db.sqlite.enabled) }}
{{- fail "database.sqlite.persistence.enabled needs database.sqlite.enabled: true (and replicaCount: 1); without it the database is PostgreSQL or MySQL and the volume would go unused" }}
{{- end }}
{{- if and $db.sqlite.enabled (or $db.url $db.existingSecret) }}
{{- fail "set database.sqlite.enabled or a database URL (database.url, database.existingSecret), not both" }}
{{- end }}
{{- if and $db.url $db.existingSecret }}
{{- fail "set database.url or database.existingSecret, not both" }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (gt (int .Values.replicaCount) 1) (regexMatch "^[0-9]+$" (toString $pdb.minAvailable)) (ge (int $pdb.minAvailable) (int .Values.replicaCount)) }}
{{- fail (printf "podDisruptionBudget.minAvailable %d with replicaCount %d would block every node drain: set it below replicaCount" (int $pdb.minAvailable) (int .Values.replicaCount)) }}
{{- end }}
{{- $percent := .Values.goMemLimitPercent | default 0 | toString }}
{{- if or (not (regexMatch `^[0-9]+(\.[0-9]+)?$` $percent)) (gt (float64 $percent) 100.0) }}
{{- fail (printf "goMemLimitPercent must be a number from 0 to 100 (85 is the default), not %s" $percent) }}
{{- end }}
{{- if .Values.networkPolicy.enabled }}
{{- $egress := .Values.networkPolicy.egress }}
{{- $rules := dict "apiServer" $egress.apiServer }}
{{- if not $db.sqlite.enabled }}
{{- $_ := set $rules "database" $egress.database }}
{{- end }}
{{- range $name, $rule := $rules }}
{{- if not $rule.ports }}
{{- fail (printf "networkPolicy.egress.%s.ports is empty: list the ports the operator connects to" $name) }}
{{- end }}
{{- if not $rule.cidrs }}
{{- fail (printf "networkPolicy.egress.%s.cidrs is empty: list the CIDRs the operator may connect to (see values.yaml for how to find them), or 0.0.0.0/0 and ::/0 to allow any address" $name) }}
{{- end }}
{{- if not (kindIs "slice" $rule.cidrs) }}
{{- fail (printf "networkPolicy.egress.%s.cidrs must be a list of CIDRs, such as [10.20.0.0/16]" $name) }}
{{- end }}
{{- range $rule.cidrs }}
{{- if not (regexMatch "^[0-9A-Fa-f:.]+/[0-9]{1,3}$" (toString .)) }}
{{- fail (printf "networkPolicy.egress.%s.cidrs: %q is not a CIDR; write a single address as 10.20.0.5/32" $name (toString .)) }}
{{- end }}
{{- end }}
{{- end }}
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
