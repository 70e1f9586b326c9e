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

{{/* The ServiceAccount of a component; pass dict "root" $ "component" name "values" values. */}}
{{- define "boxoffice.serviceAccountName" -}}
{{- $sa := default dict .values.serviceAccount }}
{{- if .root.Values.serviceAccount.create }}
{{- default (include "boxoffice.componentName" .) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
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

{{/* Every setting a service process reads: the ConfigMap, the connections, the secrets. */}}
{{- define "boxoffice.env" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{ include "boxoffice.connectionEnv" (dict "root" $root "hook" false) }}
{{- /* Only the pods that send email hold the SMTP password. */}}
{{- if and (eq .component "notifier-email") (or $v.smtp.password $v.smtp.existingSecret) }}
- name: BOXOFFICE_SMTP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "boxoffice.secretName" $root) $v.smtp.existingSecret }}
      key: {{ ternary $v.smtp.existingSecretKey "SMTP_PASSWORD" (ne $v.smtp.existingSecret "") }}
{{- end }}
{{- /* Only the API creates the bootstrap key; no other pod holds it. */}}
{{- if and (eq .component "booking-api") (or $v.apiKey.bootstrapKey $v.apiKey.existingSecret) }}
- name: BOXOFFICE_BOOTSTRAP_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ default (include "boxoffice.secretName" $root) $v.apiKey.existingSecret }}
      key: {{ ternary $v.apiKey.existingSecretKey "BOOTSTRAP_API_KEY" (ne $v.apiKey.existingSecret "") }}
{{- end }}
{{- /* Only the pods that send SMS get the gateway's token. */}}
{{- if and (eq .component "notifier-sms") (or $v.sms.token $v.sms.existingSecret) }}
- name: BOXOFFICE_SMS_GATEWAY_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ default (include "boxoffice.secretName" $root) $v.sms.existingSecret }}
      key: {{ ternary $v.sms.existingSecretKey "SMS_GATEWAY_TOKEN" (ne $v.sms.existingSecret "") }}
{{- end }}
{{- with include "boxoffice.testWebhookEnv" $root }}
{{ . }}
{{- end }}
{{- /* Only the API and the reaper talk to the payment provider; only the API takes its webhooks. */}}
{{- if and (include "boxoffice.razorpay.enabled" $root) (has .component (list "booking-api" "reaper")) }}
{{- $rzp := $v.payments.razorpay }}
- name: BOXOFFICE_RAZORPAY_KEY_ID
  value: {{ $rzp.keyId | quote }}
- name: BOXOFFICE_RAZORPAY_KEY_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ default (include "boxoffice.secretName" $root) $rzp.existingSecret }}
      key: {{ ternary $rzp.existingSecretKeySecretKey "RAZORPAY_KEY_SECRET" (ne $rzp.existingSecret "") }}
{{- if and (eq .component "booking-api") (or $rzp.webhookSecret $rzp.existingSecret) }}
- name: BOXOFFICE_RAZORPAY_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ default (include "boxoffice.secretName" $root) $rzp.existingSecret }}
      key: {{ ternary $rzp.existingSecretWebhookSecretKey "RAZORPAY_WEBHOOK_SECRET" (ne $rzp.existingSecret "") }}
{{- end }}
{{- end }}
- name: BOXOFFICE_SERVICE_NAME
  value: {{ .component | quote }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- with include "boxoffice.extraEnv" . }}
{{ . }}
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
    {{- with .root.Values.commonAnnotations }}{{ toYaml . | nindent 4 }}{{ end }}
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
  {{- include "boxoffice.annotations" (dict "root" .root) | nindent 2 }}
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
  {{- include "boxoffice.annotations" (dict "root" .root) | nindent 2 }}
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

{{/*
"true" when Razorpay is configured (a key id and its secret), "" when it is off. Half a
configuration fails the render: the provider would otherwise be off without a word.
*/}}
{{- define "boxoffice.razorpay.enabled" -}}
{{- $rzp := .Values.payments.razorpay }}
{{- $secret := or $rzp.keySecret $rzp.existingSecret }}
{{- if and $rzp.keyId (not $secret) }}
{{- fail "payments.razorpay.keyId is set but its secret is not: set payments.razorpay.existingSecret (or keySecret)" }}
{{- end }}
{{- if and $secret (not $rzp.keyId) }}
{{- fail "payments.razorpay: a key secret is given but no keyId" }}
{{- end }}
{{- if $rzp.keyId }}true{{ end }}
{{- end }}

{{/* The test provider's webhook secret: every process that builds Settings checks it (the public
default is refused in production), so every such pod gets it. Pass $. */}}
{{- define "boxoffice.testWebhookEnv" -}}
{{- $p := .Values.payments }}
{{- if and $p.testProviderEnabled (or $p.testWebhookSecret $p.testWebhookExistingSecret) }}
- name: BOXOFFICE_TEST_WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ default (include "boxoffice.secretName" .) $p.testWebhookExistingSecret }}
      key: {{ ternary $p.testWebhookExistingSecretKey "TEST_WEBHOOK_SECRET" (ne $p.testWebhookExistingSecret "") }}
{{- else if and $p.testProviderEnabled (eq .Values.config.environment "production") }}
{{- fail "payments.testProviderEnabled in production needs payments.testWebhookSecret or payments.testWebhookExistingSecret: anyone could sign a test payment with the public default" }}
{{- end }}
{{- end }}
