{{/*
Names. The fullname is the release name, or "<release>-scim-operator" when the
release name does not already say scim-operator; objects are named after it
the way config/default names them ("<fullname>-scim", "<fullname>-controllers",
...).
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

{{/*
Labels every Pod of the release carries, the SCIM server's and the
controllers': the metrics Service and the common NetworkPolicy select them.
*/}}
{{- define "scim-operator.instanceLabels" -}}
app.kubernetes.io/name: {{ include "scim-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels that select the Pods of one Deployment: (list $ "scim") or
(list $ "controllers"). Never change them on upgrade. The SCIM Service, the
Ingress behind it and the SCIM port's NetworkPolicy select "scim", which with
database.sqlite.enabled is the one Pod running everything.
*/}}
{{- define "scim-operator.selectorLabels" -}}
{{- include "scim-operator.instanceLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "scim-operator.scimServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-scim" (include "scim-operator.fullname" .)) .Values.serviceAccount.scimName }}
{{- else }}
{{- required "serviceAccount.scimName is required when serviceAccount.create is false" .Values.serviceAccount.scimName }}
{{- end }}
{{- end }}

{{- define "scim-operator.controllersServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controllers" (include "scim-operator.fullname" .)) .Values.serviceAccount.controllersName }}
{{- else }}
{{- required "serviceAccount.controllersName is required when serviceAccount.create is false" .Values.serviceAccount.controllersName }}
{{- end }}
{{- end }}

{{/*
The Deployments, as YAML under "parts" (read with fromYaml): name (the
Deployment is <fullname>-<name>, its Pods labelled component <name>), run
(--component), replicas and serviceAccount. SQLite is a file in one Pod that
both parts open, so then one Pod runs both, as the controllers' ServiceAccount.
*/}}
{{- define "scim-operator.parts" -}}
{{- $controllersSA := include "scim-operator.controllersServiceAccountName" . }}
parts:
{{- if include "scim-operator.sqlite" . }}
- name: scim
  run: all
  replicas: {{ int .Values.replicaCount }}
  serviceAccount: {{ $controllersSA }}
{{- else }}
- name: scim
  run: scim
  replicas: {{ int .Values.replicaCount }}
  serviceAccount: {{ include "scim-operator.scimServiceAccountName" . }}
- name: controllers
  run: controllers
  replicas: {{ int .Values.controllers.replicaCount }}
  serviceAccount: {{ $controllersSA }}
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
{{- if hasKey .Values.serviceAccount "name" }}
{{- fail "serviceAccount.name was replaced by serviceAccount.scimName and serviceAccount.controllersName: the SCIM server and the controllers run as separate ServiceAccounts" }}
{{- end }}
{{- if lt (int .Values.replicaCount) 1 }}
{{- fail "replicaCount must be 1 or more: the SCIM server's Pods serve the endpoint" }}
{{- end }}
{{- $db := .Values.database }}
{{- if not $db.sqlite.enabled }}
{{- if lt (int .Values.controllers.replicaCount) 1 }}
{{- fail "controllers.replicaCount must be 1 or more: without the controllers no token is issued and nothing reaches the helpdesk database" }}
{{- end }}
{{- if and (gt (int .Values.controllers.replicaCount) 1) (not .Values.leaderElection) }}
{{- fail "leaderElection must be true when controllers.replicaCount is above 1: two replicas would both run the controllers" }}
{{- end }}
{{- end }}
{{- if not (kindIs "slice" (.Values.tenantNamespaces | default list)) }}
{{- fail "tenantNamespaces must be a list of namespaces, such as [helpdesk]" }}
{{- end }}
{{- $tenants := .Values.tenantNamespaces | default list }}
{{- range $tenants }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" (toString .)) }}
{{- fail (printf "tenantNamespaces: %q is not a namespace name (lower-case letters, digits and '-', at most 63)" (toString .)) }}
{{- end }}
{{- end }}
{{- if ne (len $tenants) (len (uniq $tenants)) }}
{{- fail (printf "tenantNamespaces lists a namespace twice: %v" $tenants) }}
{{- end }}
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
