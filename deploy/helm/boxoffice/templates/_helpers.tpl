{{/* Names, labels and the pod pieces every component shares. */}}

{{- define "boxoffice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "boxoffice.fullname" -}}
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

{{/* "<fullname>-<component>", kept within the 63 characters a label value allows. */}}
{{- define "boxoffice.componentName" -}}
{{- printf "%s-%s" (include "boxoffice.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "boxoffice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "boxoffice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "boxoffice.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of every object; pass dict "root" $ "component" "<name>". */}}
{{- define "boxoffice.labels" -}}
helm.sh/chart: {{ include "boxoffice.chart" .root }}
{{ include "boxoffice.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: boxoffice
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "boxoffice.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "boxoffice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "boxoffice.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "boxoffice.scheduler.serviceAccountName" -}}
{{- include "boxoffice.componentName" (dict "root" . "component" "scheduler") }}
{{- end }}

{{/* The Secret holding what the chart creates (connection URLs given inline, SMTP password, API key). */}}
{{- define "boxoffice.secretName" -}}
{{- printf "%s-secrets" (include "boxoffice.fullname" .) }}
{{- end }}

{{/* The Secret the chart reads DATABASE_URL / REDIS_URL from when none is named or given inline. */}}
{{- define "boxoffice.defaultConnectionsSecret" -}}
{{- printf "%s-connections" (include "boxoffice.fullname" .) }}
{{- end }}

{{- define "boxoffice.redisServerHost" -}}
{{- include "boxoffice.componentName" (dict "root" . "component" "redis") }}
{{- end }}

{{- define "boxoffice.postgresqlHost" -}}
{{- include "boxoffice.componentName" (dict "root" . "component" "postgresql") }}
{{- end }}

{{/*
DATABASE_URL and REDIS_URL as env entries. Pass dict "root" $ "hook" bool: the migration
hook runs before the chart's own Secret exists, so an inline URL comes from the hook's Secret.
*/}}
{{- define "boxoffice.connectionEnv" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
{{- if $v.externalDatabase.existingSecret }}
      name: {{ $v.externalDatabase.existingSecret }}
      key: {{ $v.externalDatabase.existingSecretKey }}
{{- else if and $v.externalDatabase.url .hook }}
      name: {{ include "boxoffice.componentName" (dict "root" $root "component" "migrations") }}
      key: DATABASE_URL
{{- else if or $v.externalDatabase.url $v.postgresql.enabled }}
      name: {{ include "boxoffice.secretName" $root }}
      key: DATABASE_URL
{{- else }}
      name: {{ include "boxoffice.defaultConnectionsSecret" $root }}
      key: DATABASE_URL
{{- end }}
{{- if and $v.redis.enabled (not $v.externalRedis.existingSecret) (not $v.externalRedis.url) }}
- name: REDIS_URL
  value: {{ printf "redis://%s:%d/0" (include "boxoffice.redisServerHost" $root) (int $v.redis.port) | quote }}
{{- else }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
{{- if $v.externalRedis.existingSecret }}
      name: {{ $v.externalRedis.existingSecret }}
      key: {{ $v.externalRedis.existingSecretKey }}
{{- else if and $v.externalRedis.url .hook }}
      name: {{ include "boxoffice.componentName" (dict "root" $root "component" "migrations") }}
      key: REDIS_URL
{{- else if $v.externalRedis.url }}
      name: {{ include "boxoffice.secretName" $root }}
      key: REDIS_URL
{{- else }}
      name: {{ include "boxoffice.defaultConnectionsSecret" $root }}
      key: REDIS_URL
{{- end }}
{{- end }}
{{- end }}

{{/* Every setting a service process reads: the ConfigMap, the connections, the secrets. */}}
{{- define "boxoffice.env" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{ include "boxoffice.connectionEnv" (dict "root" $root "hook" false) }}
{{- if or $v.smtp.password $v.smtp.existingSecret }}
- name: BOXOFFICE_SMTP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "boxoffice.secretName" $root) $v.smtp.existingSecret }}
      key: {{ ternary $v.smtp.existingSecretKey "SMTP_PASSWORD" (ne $v.smtp.existingSecret "") }}
{{- end }}
{{- if or $v.apiKey.bootstrapKey $v.apiKey.existingSecret }}
- name: BOXOFFICE_BOOTSTRAP_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ default (include "boxoffice.secretName" $root) $v.apiKey.existingSecret }}
      key: {{ ternary $v.apiKey.existingSecretKey "BOOTSTRAP_API_KEY" (ne $v.apiKey.existingSecret "") }}
{{- end }}
- name: BOXOFFICE_SERVICE_NAME
  value: {{ .component | quote }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- with .values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Roll the pods when their configuration changes. */}}
{{- define "boxoffice.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/secrets/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secrets/secret.yaml") . | sha256sum }}
{{- end }}

{{- define "boxoffice.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end }}

{{/* Scheduling: pass the component's values. */}}
{{- define "boxoffice.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by the app's pods; pass dict "root" $ "values" <component values>. */}}
{{- define "boxoffice.podSpecCommon" -}}
{{- $root := .root }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .values.terminationGracePeriodSeconds }}
{{ include "boxoffice.scheduling" .values }}
{{- end }}

{{/* The pod's annotations and labels; pass dict "root" $ "component" name "values" values. */}}
{{- define "boxoffice.podMetadata" -}}
metadata:
  labels:
    {{- include "boxoffice.labels" . | nindent 4 }}
    {{- with .values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- include "boxoffice.checksums" .root | nindent 4 }}
    {{- with .root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with .values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The PodDisruptionBudget of a component; pass dict "root" $ "component" name "values" values. */}}
{{- define "boxoffice.pdb" -}}
{{- if and .values.enabled .values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "boxoffice.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "boxoffice.labels" . | nindent 4 }}
spec:
  {{- if .values.podDisruptionBudget.minAvailable }}
  minAvailable: {{ .values.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .values.podDisruptionBudget.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "boxoffice.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* A CPU HorizontalPodAutoscaler; pass dict "root" $ "component" name "values" values. */}}
{{- define "boxoffice.hpa" -}}
{{- $keda := and (hasKey .values "keda") .values.keda.enabled }}
{{- if and .values.enabled .values.autoscaling.enabled (not $keda) }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "boxoffice.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "boxoffice.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "boxoffice.componentName" . }}
  minReplicas: {{ .values.autoscaling.minReplicas }}
  maxReplicas: {{ .values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}

{{/* A Deployment's replicas, left out when an autoscaler owns the count. */}}
{{- define "boxoffice.replicas" -}}
{{- $keda := and (hasKey .values "keda") .values.keda.enabled }}
{{- if not (or $keda .values.autoscaling.enabled) }}
replicas: {{ .values.replicas }}
{{- end }}
{{- end }}

{{/* Volumes every app pod has: a writable /tmp on a read-only root filesystem. */}}
{{- define "boxoffice.tmpVolume" -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/* The in-chart PostgreSQL password: given, else the one already stored, else a new one. */}}
{{- define "boxoffice.postgresql.password" -}}
{{- if .Values.postgresql.auth.password }}
{{- .Values.postgresql.auth.password }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "boxoffice.secretName" .) }}
{{- if and $existing (hasKey $existing.data "POSTGRES_PASSWORD") }}
{{- index $existing.data "POSTGRES_PASSWORD" | b64dec }}
{{- else }}
{{- /* Stable within one render (the Secret and the checksum annotation must agree). */}}
{{- $cache := .Values.postgresql.auth }}
{{- if not (hasKey $cache "_generated") }}
{{- $_ := set $cache "_generated" (randAlphaNum 32) }}
{{- end }}
{{- index $cache "_generated" }}
{{- end }}
{{- end }}
{{- end }}
