{{/* NetworkPolicy rules the components share. */}}

{{- define "boxoffice.np.dnsEgress" -}}
# DNS, wherever the cluster serves it (kube-dns, NodeLocal DNSCache).
- ports:
    {{- range .Values.networkPolicy.dnsPorts }}
    - {port: {{ . }}, protocol: UDP}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end }}

{{- define "boxoffice.np.postgresqlEgress" -}}
{{- $v := .Values }}
{{- if and $v.postgresql.enabled (not $v.externalDatabase.url) (not $v.externalDatabase.existingSecret) }}
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
{{- if and $v.redis.enabled (not $v.externalRedis.url) (not $v.externalRedis.existingSecret) }}
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
spec:
  podSelector:
    matchLabels:
      {{- include "boxoffice.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  {{- if .ingress }}
  ingress:
    {{- .ingress | nindent 4 }}
  {{- end }}
  {{- if .egress }}
  egress:
    {{- .egress | nindent 4 }}
  {{- end }}
{{- end }}
