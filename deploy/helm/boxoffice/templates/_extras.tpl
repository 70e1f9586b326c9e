{{/*
Extension points, the Airflow and Bitnami charts' way: each list is the global value followed by
the component's, rendered through `tpl` so entries may use {{ .Release.Name }} and the like.
Pass dict "root" $ "values" <component values>; a list helper renders nothing when both are empty.
*/}}

{{- define "boxoffice.extraList" -}}
{{- $global := ternary list (default list (index .root.Values .key)) (default false .componentOnly) }}
{{- $items := concat $global (default list (index .values .key)) }}
{{- with $items }}
{{- tpl (toYaml .) $.root }}
{{- end }}
{{- end }}

{{/* Env entries after the chart's own: the global extraEnv, the component's env and extraEnv. */}}
{{- define "boxoffice.extraEnv" -}}
{{- $items := concat (default list .root.Values.extraEnv) (default list .values.env) (default list .values.extraEnv) }}
{{- with $items }}
{{- tpl (toYaml .) $.root }}
{{- end }}
{{- end }}

{{/* The container's envFrom: the chart's ConfigMap (when given), then the extra sources. */}}
{{- define "boxoffice.envFrom" -}}
{{- $extra := include "boxoffice.extraList" (dict "root" .root "values" .values "key" "extraEnvFrom" "componentOnly" .componentOnly) }}
{{- if or .configMap $extra }}
envFrom:
  {{- with .configMap }}
  - configMapRef:
      name: {{ . }}
  {{- end }}
  {{- with $extra }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* volumeMounts of the main container: /tmp, any the component adds, then the extra ones. */}}
{{- define "boxoffice.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- with .mounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with include "boxoffice.extraList" (dict "root" .root "values" .values "key" "extraVolumeMounts" "componentOnly" .componentOnly) }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* The pod's volumes: /tmp, any the component adds, then the extra ones. */}}
{{- define "boxoffice.volumes" -}}
volumes:
  {{- include "boxoffice.tmpVolume" .root | nindent 2 }}
  {{- with .volumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with include "boxoffice.extraList" (dict "root" .root "values" .values "key" "extraVolumes" "componentOnly" .componentOnly) }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
Init containers: waiting for the schema (components that use the database), then the extra ones.
Pass "database" true for a component that touches PostgreSQL.
*/}}
{{- define "boxoffice.initContainers" -}}
{{- $wait := and .database (include "boxoffice.waitForMigrations.enabled" .root) }}
{{- $extra := include "boxoffice.extraList" (dict "root" .root "values" .values "key" "extraInitContainers" "componentOnly" .componentOnly) }}
{{- if or $wait $extra }}
initContainers:
  {{- if $wait }}
  {{- include "boxoffice.waitForMigrationsContainer" . | nindent 2 }}
  {{- end }}
  {{- with $extra }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Sidecars after the main container. The migration Job takes only its own (a global sidecar would keep the Job from completing). */}}
{{- define "boxoffice.extraContainers" -}}
{{- include "boxoffice.extraList" (dict "root" .root "values" .values "key" "extraContainers" "componentOnly" .componentOnly) }}
{{- end }}

{{/* metadata.annotations of an object: commonAnnotations plus the object's own (a dict). */}}
{{- define "boxoffice.annotations" -}}
{{- $all := merge (deepCopy (default dict .annotations)) (default dict .root.Values.commonAnnotations) }}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "boxoffice.waitForMigrations.enabled" -}}
{{- $m := .Values.migrations }}
{{- if and $m.enabled $m.waitForMigrations.enabled }}true{{ end }}
{{- end }}

{{/*
wait-for-migrations: `python -m boxoffice_db.migrate --wait` returns once the database's schema
is at this image's head revision, so a new pod never runs against an old schema (with or without
Helm hooks: Argo CD and Flux apply the migration Job alongside the Deployments). It connects as
the component does (same connection, extra env and mounts: a CA file, say).
*/}}
{{- define "boxoffice.waitForMigrationsContainer" -}}
{{- $root := .root }}
{{- $w := $root.Values.migrations.waitForMigrations }}
- name: wait-for-migrations
  image: {{ include "boxoffice.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["python", "-m", "boxoffice_db.migrate", "--wait", "--timeout", {{ $w.timeoutSeconds | toString | quote }}]
  {{- include "boxoffice.envFrom" (dict "root" $root "values" .values) | nindent 2 }}
  env:
    {{- include "boxoffice.connectionEnv" (dict "root" $root "hook" false) | nindent 4 }}
    - name: BOXOFFICE_SERVICE_NAME
      value: {{ printf "%s-wait-for-migrations" .component | quote }}
    {{- with include "boxoffice.extraEnv" . }}
    {{- . | nindent 4 }}
    {{- end }}
  resources:
    {{- toYaml $w.resources | nindent 4 }}
  securityContext:
    {{- include "boxoffice.containerSecurityContext" $root | nindent 4 }}
  {{- include "boxoffice.volumeMounts" (dict "root" $root "values" .values) | nindent 2 }}
{{- end }}
