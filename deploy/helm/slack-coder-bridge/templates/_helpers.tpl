{{/* Names and labels shared by every object of the release. */}}
{{- define "bridge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bridge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "bridge.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: bridge
{{- end -}}

{{- define "bridge.postgresql.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: postgresql
{{- end -}}

{{- define "bridge.secretName" -}}
{{- .Values.secret.existingSecret | default (include "bridge.fullname" .) -}}
{{- end -}}

{{- define "bridge.postgresql.name" -}}
{{- printf "%s-postgresql" (include "bridge.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bridge.postgresql.secretName" -}}
{{- .Values.postgresql.existingSecret | default (include "bridge.postgresql.name" .) -}}
{{- end -}}

{{- define "bridge.image" -}}
{{- if contains "@" .Values.image.repository -}}
{{- .Values.image.repository -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
What the chart refuses before anything reaches the cluster, each with the way out. The secret's keys
are the bridge's own variable names, so a misspelt one fails here instead of being ignored.
*/}}
{{- define "bridge.validate" -}}
{{- $db := .Values.database.type -}}
{{- if not (has $db (list "postgresql" "external" "sqlite")) -}}
{{- fail (printf "database.type must be postgresql, external or sqlite, not %q" $db) -}}
{{- end -}}
{{- if and (eq $db "sqlite") (gt (int .Values.replicaCount) 1) -}}
{{- fail "replicaCount above 1 needs PostgreSQL: SQLite has one writer. Set database.type to postgresql or external, or replicaCount to 1" -}}
{{- end -}}
{{- if not .Values.config.CODER_URL -}}
{{- fail "config.CODER_URL is required: the URL of your Coder deployment, e.g. https://coder.example.com" -}}
{{- end -}}
{{- if not .Values.secret.existingSecret -}}
{{- $known := list "SLACK_BOT_TOKEN" "SLACK_SIGNING_SECRET" "SLACK_APP_TOKEN" "SLACK_CLIENT_SECRET" "CODER_SESSION_TOKEN" "BRIDGE_ENCRYPTION_KEY" "DATABASE_URL" -}}
{{- range $key, $_ := .Values.secret.values -}}
{{- if not (has $key $known) -}}
{{- fail (printf "secret.values.%s is not a secret setting of the bridge (known: %s); non-secret settings go in config" $key (join ", " $known)) -}}
{{- end -}}
{{- end -}}
{{- if not (or .Values.secret.values.SLACK_BOT_TOKEN .Values.secret.values.SLACK_CLIENT_SECRET) -}}
{{- fail "secret.values.SLACK_BOT_TOKEN is required (one workspace), or SLACK_CLIENT_SECRET with config.SLACK_CLIENT_ID (installs through OAuth), or name your own Secret in secret.existingSecret" -}}
{{- end -}}
{{- if not .Values.secret.values.CODER_SESSION_TOKEN -}}
{{- fail "secret.values.CODER_SESSION_TOKEN is required, or name your own Secret in secret.existingSecret" -}}
{{- end -}}
{{- if not (or .Values.secret.values.SLACK_SIGNING_SECRET .Values.secret.values.SLACK_APP_TOKEN) -}}
{{- fail "secret.values needs SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)" -}}
{{- end -}}
{{- if and (eq $db "external") (not .Values.secret.values.DATABASE_URL) -}}
{{- fail "database.type external needs secret.values.DATABASE_URL (postgresql://user:password@host:5432/db)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
