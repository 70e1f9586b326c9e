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
