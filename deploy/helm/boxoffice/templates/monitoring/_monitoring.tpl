{{/*
The scrape settings a ServiceMonitor endpoint and a PodMonitor endpoint share; pass the
monitor's values. The `component` relabeling comes first, the values' relabelings after it (so
they may rewrite it); metricRelabelings are the values' alone.
*/}}
{{- define "boxoffice.monitoring.endpoint" -}}
interval: {{ .interval }}
{{- with .scrapeTimeout }}
scrapeTimeout: {{ . }}
{{- end }}
relabelings:
  - action: replace
    sourceLabels: [__meta_kubernetes_pod_label_app_kubernetes_io_component]
    targetLabel: component
  {{- with .relabelings }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .metricRelabelings }}
metricRelabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
