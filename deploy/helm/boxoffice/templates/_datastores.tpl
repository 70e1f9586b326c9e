{{/* The app components that talk to the in-chart datastores. */}}
{{- define "boxoffice.datastoreClients" -}}
- podSelector:
    matchExpressions:
      - key: app.kubernetes.io/instance
        operator: In
        values: [{{ .root.Release.Name | quote }}]
      - key: app.kubernetes.io/component
        operator: In
        values: {{ toJson .components }}
{{- end }}

{{/*
How the app reaches PostgreSQL, as a dict: "mode" is "parts" (host, port, user, database, and
the password's Secret and key), "url" (a URL's Secret and key) or "default" (the
<fullname>-connections Secret). Pass dict "root" $ "hook" bool: a Helm hook runs before the
chart's own Secret exists, so what was given inline then comes from the hook's Secret.
*/}}
{{- define "boxoffice.database" -}}
{{- $v := .root.Values }}
{{- $db := $v.externalDatabase }}
{{- $own := ternary (include "boxoffice.componentName" (dict "root" .root "component" "migrations")) (include "boxoffice.secretName" .root) (default false .hook) }}
{{- $out := dict "mode" "default" }}
{{- if $db.host }}
{{- $secret := dict }}
{{- if $db.existingSecret }}
{{- $secret = dict "name" $db.existingSecret "key" $db.existingSecretPasswordKey }}
{{- else if $db.password }}
{{- $secret = dict "name" $own "key" "DATABASE_PASSWORD" }}
{{- end }}
{{- $out = dict "mode" "parts" "host" $db.host "port" (int $db.port) "user" $db.user "database" $db.database "password" $secret }}
{{- else if $db.existingSecret }}
{{- $out = dict "mode" "url" "name" $db.existingSecret "key" $db.existingSecretKey }}
{{- else if $db.url }}
{{- $out = dict "mode" "url" "name" $own "key" "DATABASE_URL" }}
{{- else if $v.postgresql.enabled }}
{{- $auth := $v.postgresql.auth }}
{{- $secret := dict "name" (include "boxoffice.secretName" .root) "key" "POSTGRES_PASSWORD" }}
{{- if $auth.existingSecret }}
{{- $secret = dict "name" $auth.existingSecret "key" $auth.existingSecretPasswordKey }}
{{- end }}
{{- $out = dict "mode" "parts" "host" (include "boxoffice.postgresqlHost" .root) "port" (int $v.postgresql.port) "user" $auth.username "database" $auth.database "password" $secret }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* "true" when the database is given by parts (PgBouncer can then stand in front of it). */}}
{{- define "boxoffice.database.byParts" -}}
{{- if eq (fromJson (include "boxoffice.database" (dict "root" . "hook" false))).mode "parts" }}true{{ end }}
{{- end }}

{{/*
The database env entries of an app container. Behind PgBouncer the host and port are
PgBouncer's and server-side prepared statements are off (transaction pooling). Pass dict "root" $
"hook" bool "direct" bool (direct: the migration Job, which talks to PostgreSQL itself).
*/}}
{{- define "boxoffice.databaseEnv" -}}
{{- $db := fromJson (include "boxoffice.database" .) }}
{{- if eq $db.mode "parts" }}
{{- $pooled := and (eq (include "boxoffice.pgbouncer.enabled" .root) "true") (not .direct) }}
- name: BOXOFFICE_DATABASE_HOST
  value: {{ ternary (include "boxoffice.componentName" (dict "root" .root "component" "pgbouncer")) $db.host $pooled | quote }}
- name: BOXOFFICE_DATABASE_PORT
  value: {{ ternary .root.Values.pgbouncer.port $db.port $pooled | toString | quote }}
- name: BOXOFFICE_DATABASE_USER
  value: {{ $db.user | quote }}
- name: BOXOFFICE_DATABASE_NAME
  value: {{ $db.database | quote }}
{{- with $db.password }}
- name: BOXOFFICE_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- if $pooled }}
- name: BOXOFFICE_DATABASE_PREPARED_STATEMENTS
  value: "false"
{{- end }}
{{- else }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
{{- if eq $db.mode "url" }}
      name: {{ $db.name }}
      key: {{ $db.key }}
{{- else }}
      name: {{ include "boxoffice.defaultConnectionsSecret" .root }}
      key: DATABASE_URL
{{- end }}
{{- end }}
{{- end }}

{{/* The Redis env entries of an app container; pass dict "root" $ "hook" bool. */}}
{{- define "boxoffice.redisEnv" -}}
{{- $v := .root.Values }}
{{- $r := $v.externalRedis }}
{{- $own := ternary (include "boxoffice.componentName" (dict "root" .root "component" "migrations")) (include "boxoffice.secretName" .root) (default false .hook) }}
{{- if $r.host }}
- name: BOXOFFICE_REDIS_HOST
  value: {{ $r.host | quote }}
- name: BOXOFFICE_REDIS_PORT
  value: {{ $r.port | toString | quote }}
- name: BOXOFFICE_REDIS_DB
  value: {{ $r.database | toString | quote }}
- name: BOXOFFICE_REDIS_TLS
  value: {{ $r.tls | toString | quote }}
{{- with $r.user }}
- name: BOXOFFICE_REDIS_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if or $r.existingSecret $r.password }}
- name: BOXOFFICE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default $own $r.existingSecret }}
      key: {{ ternary $r.existingSecretPasswordKey "REDIS_PASSWORD" (ne $r.existingSecret "") }}
{{- end }}
{{- else if and $v.redis.enabled (not $r.existingSecret) (not $r.url) }}
- name: REDIS_URL
  value: {{ printf "redis://%s:%d/0" (include "boxoffice.redisServerHost" .root) (int $v.redis.port) | quote }}
{{- else }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
{{- if $r.existingSecret }}
      name: {{ $r.existingSecret }}
      key: {{ $r.existingSecretKey }}
{{- else if $r.url }}
      name: {{ $own }}
      key: REDIS_URL
{{- else }}
      name: {{ include "boxoffice.defaultConnectionsSecret" .root }}
      key: REDIS_URL
{{- end }}
{{- end }}
{{- end }}

{{/* Both connections; pass dict "root" $ "hook" bool ("direct" bool for the migration Job). */}}
{{- define "boxoffice.connectionEnv" -}}
{{ include "boxoffice.databaseEnv" . }}
{{ include "boxoffice.redisEnv" . }}
{{- end }}

{{/* The in-chart PostgreSQL's password: given, or in an existing Secret. Never generated: a
generated one would change on every `helm template` (GitOps renders) and lock the app out. */}}
{{- define "boxoffice.postgresql.checkPassword" -}}
{{- $auth := .Values.postgresql.auth }}
{{- if and .Values.postgresql.enabled (not .Values.externalDatabase.host) (not .Values.externalDatabase.url) (not .Values.externalDatabase.existingSecret) (not $auth.password) (not $auth.existingSecret) }}
{{- fail "postgresql.enabled needs a password that stays the same across renders: set postgresql.auth.password, or postgresql.auth.existingSecret (with postgresql.auth.existingSecretPasswordKey)" }}
{{- end }}
{{- end }}
