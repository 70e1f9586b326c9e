{{/* NetworkPolicy rules the components share. */}}

{{- define "boxoffice.np.dnsEgress" -}}
# DNS, wherever the cluster serves it (kube-dns, NodeLocal DNSCache).
- ports:
    {{- range .Values.networkPolicy.dnsPorts }}
    - {port: {{ . }}, protocol: UDP}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end }}

{{/* The app's way to the database: PgBouncer when it pools, else PostgreSQL itself. */}}
{{- define "boxoffice.np.postgresqlEgress" -}}
{{- if eq (include "boxoffice.pgbouncer.enabled" .) "true" }}
- to:
    - podSelector:
        matchLabels:
          {{- include "boxoffice.selectorLabels" (dict "root" . "component" "pgbouncer") | nindent 10 }}
  ports:
    - {port: {{ .Values.pgbouncer.port }}, protocol: TCP}
{{- else }}
{{- include "boxoffice.np.databaseServerEgress" . }}
{{- end }}
{{- end }}

{{/* PostgreSQL itself (PgBouncer and the migration Job connect to it directly). */}}
{{- define "boxoffice.np.databaseServerEgress" -}}
{{- $v := .Values }}
{{- if and $v.postgresql.enabled (not $v.externalDatabase.host) (not $v.externalDatabase.url) (not $v.externalDatabase.existingSecret) }}
- to:
    - podSelector:
        matchLabels:
          {{- include "boxoffice.selectorLabels" (dict "root" . "component" "postgresql") | nindent 10 }}
  ports:
    - {port: {{ $v.postgresql.port }}, protocol: TCP}
{{- else }}
- ports:
    - {port: {{ $v.externalDatabase.port }}, protocol: TCP}
  {{- with $v.externalDatabase.networkPolicyPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "boxoffice.np.redisEgress" -}}
{{- $v := .Values }}
{{- if and $v.redis.enabled (not $v.externalRedis.host) (not $v.externalRedis.url) (not $v.externalRedis.existingSecret) }}
- to:
    - podSelector:
        matchLabels:
          {{- include "boxoffice.selectorLabels" (dict "root" . "component" "redis") | nindent 10 }}
  ports:
    - {port: {{ $v.redis.port }}, protocol: TCP}
{{- else }}
- ports:
    {{- range $v.externalRedis.ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- with $v.externalRedis.networkPolicyPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "boxoffice.np.metricsIngress" -}}
- ports:
    - {port: metrics, protocol: TCP}
  {{- with .Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
The allow policy of one component. Pass dict "root" $ "component" name "ingress" rules-yaml
"egress" rules-yaml (strings, rendered by the caller).
*/}}
{{- define "boxoffice.np.policy" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "boxoffice.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "boxoffice.labels" . | nindent 4 }}
  {{- include "boxoffice.annotations" (dict "root" .root) | nindent 2 }}
spec:
  podSelector:
    matchLabels:
      {{- include "boxoffice.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  {{- if .ingress }}
  ingress:
    {{- .ingress | nindent 4 }}
  {{- end }}
  {{- $egress := .egress }}
  {{- if has .component (list "booking" "relay" "notifier-email" "notifier-sms" "reaper" "scheduler") }}
  {{- with include "boxoffice.np.tracingEgress" .root }}{{ $egress = print $egress "\n" . }}{{ end }}
  {{- end }}
  {{- if $egress }}
  egress:
    {{- $egress | nindent 4 }}
  {{- end }}
{{- end }}

{{- /* The OpenTelemetry collector, when tracing.otlpEndpoint is set: its URL's port (or the scheme's). */}}
{{- define "boxoffice.np.tracingEgress" -}}
{{- with .Values.tracing.otlpEndpoint }}
{{- $url := urlParse . }}
{{- $port := regexFind "[0-9]+$" (regexFind ":[0-9]+$" $url.host) }}
{{- if not $port }}{{ $port = ternary "443" "80" (eq $url.scheme "https") }}{{ end }}
# The OpenTelemetry collector (tracing.otlpEndpoint).
- ports:
    - {port: {{ $port }}, protocol: TCP}
  {{- with $.Values.tracing.networkPolicyPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "boxoffice.np.smtpEgress" -}}
# The SMTP server.
- ports:
    - {port: {{ .Values.smtp.port }}, protocol: TCP}
  {{- with .Values.smtp.networkPolicyPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "boxoffice.np.smsGatewayEgress" -}}
# The SMS gateway.
- ports:
    {{- range .Values.sms.ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- with .Values.sms.networkPolicyPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "boxoffice.np.paymentProviderEgress" -}}
{{- if include "boxoffice.razorpay.enabled" . }}
# The payment provider (Razorpay's API).
- ports:
    {{- range .Values.payments.razorpay.ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- with .Values.payments.razorpay.networkPolicyPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
