{{/*
A Celery worker Deployment (notifier channels, reaper). Pass dict "root" $ "component" name
"values" values "command" list "queue" name.
*/}}
{{- define "boxoffice.workerDeployment" -}}
{{- $root := .root }}
{{- $c := .values }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "boxoffice.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "boxoffice.labels" . | nindent 4 }}
    boxoffice.io/queue: {{ .queue }}
  {{- include "boxoffice.annotations" (dict "root" .root) | nindent 2 }}
spec:
  {{- include "boxoffice.replicas" . | nindent 2 }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 0, maxSurge: 1}
  selector:
    matchLabels:
      {{- include "boxoffice.selectorLabels" . | nindent 6 }}
  template:
    {{- include "boxoffice.podMetadata" . | nindent 4 }}
    spec:
      serviceAccountName: {{ include "boxoffice.serviceAccountName" . }}
      automountServiceAccountToken: false
      {{- include "boxoffice.podSpecCommon" . | nindent 6 }}
      {{- include "boxoffice.initContainers" (dict "root" $root "values" $c "component" .component "database" true) | nindent 6 }}
      containers:
        - name: worker
          image: {{ include "boxoffice.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          # Exec form: the worker is the container's main process and gets SIGTERM itself,
          # which Celery turns into a warm shutdown (finish running tasks, then exit).
          command: {{ toJson .command }}
          ports:
            - name: metrics
              containerPort: {{ $root.Values.metricsPort }}
              protocol: TCP
          {{- include "boxoffice.envFrom" (dict "root" $root "values" $c "configMap" (include "boxoffice.fullname" $root)) | nindent 10 }}
          env:
            {{- include "boxoffice.env" (dict "root" $root "component" .component "values" $c "extra" (list
                (dict "name" (default "BOXOFFICE_WORKER_CONCURRENCY" .concurrencyEnv) "value" (toString $c.concurrency))
                (dict "name" "BOXOFFICE_WORKER_LIVENESS_FILE" "value" "/tmp/boxoffice/worker-heartbeat")
              )) | nindent 12 }}
          # Fails when the worker's event loop (the one consuming the queue) stopped touching
          # its heartbeat file; a process that merely exists does not pass.
          livenessProbe:
            exec:
              command: ["python", "-m", "boxoffice_messaging.heartbeat", "--max-age", {{ $c.livenessProbe.maxAgeSeconds | toString | quote }}]
            initialDelaySeconds: {{ $c.livenessProbe.initialDelaySeconds }}
            periodSeconds: {{ $c.livenessProbe.periodSeconds }}
            timeoutSeconds: {{ $c.livenessProbe.timeoutSeconds }}
            failureThreshold: {{ $c.livenessProbe.failureThreshold }}
          readinessProbe:
            exec:
              command: ["python", "-m", "boxoffice_messaging.heartbeat", "--max-age", {{ $c.livenessProbe.maxAgeSeconds | toString | quote }}]
            {{- toYaml $c.readinessProbe | nindent 12 }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- include "boxoffice.containerSecurityContext" $root | nindent 12 }}
          {{- include "boxoffice.volumeMounts" (dict "root" $root "values" $c) | nindent 10 }}
        {{- include "boxoffice.extraContainers" (dict "root" $root "values" $c) | nindent 8 }}
      {{- include "boxoffice.volumes" (dict "root" $root "values" $c) | nindent 6 }}
{{- end }}

{{/* A KEDA ScaledObject on queued + running tasks of one queue; same dict as the Deployment. */}}
{{- define "boxoffice.scaledObject" -}}
{{- $root := .root }}
{{- $c := .values }}
{{- if and $c.enabled $c.keda.enabled }}
{{- if $c.autoscaling.enabled }}
{{- fail (printf "%s: enable either keda or autoscaling (HPA), not both" .component) }}
{{- end }}
{{- $ns := $root.Release.Namespace }}
{{- /*
Queued: the queue's length, exported once per release by the scheduler leader. Running: tasks
started minus those that ended (succeeded, failed, retried, rejected after starting, ignored);
rejections of messages that never started carry name="None" and are left out.
*/}}
{{- $q := printf "job=\"boxoffice\",namespace=%q,queue_name=%q" $ns .queue }}
{{- $ended := list }}
{{- range $outcome := list "succeeded" "failed" "retried" "ignored" }}
{{- $ended = append $ended (printf "(sum(celery_task_%s_total{%s}) or vector(0))" $outcome $q) }}
{{- end }}
{{- $ended = append $ended (printf "(sum(celery_task_rejected_total{%s,name!=\"None\"}) or vector(0))" $q) }}
{{- $running := printf "clamp_min((sum(celery_task_started_total{%s}) or vector(0)) - %s, 0)" $q (join " - " $ended) }}
{{- $default := printf "(sum(celery_queue_length{%s}) or vector(0)) + %s" $q $running }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ include "boxoffice.componentName" . }}
  namespace: {{ $ns }}
  labels:
    {{- include "boxoffice.labels" . | nindent 4 }}
  {{- include "boxoffice.annotations" (dict "root" .root) | nindent 2 }}
spec:
  scaleTargetRef:
    name: {{ include "boxoffice.componentName" . }}
  minReplicaCount: {{ $c.keda.minReplicaCount }}
  maxReplicaCount: {{ $c.keda.maxReplicaCount }}
  pollingInterval: {{ $c.keda.pollingInterval }}
  cooldownPeriod: {{ $c.keda.cooldownPeriod }}
  triggers:
    # Queued (waiting in Redis) + running (started, not finished) tasks of the queue; each
    # replica carries `threshold` of them, like the Airflow chart's queued + running query.
    - type: prometheus
      metadata:
        serverAddress: {{ $root.Values.keda.prometheusServerAddress | quote }}
        query: {{ default $default $c.keda.query | quote }}
        threshold: {{ default $c.concurrency $c.keda.targetTasksPerReplica | toString | quote }}
{{- end }}
{{- end }}
