{{/* "true" when PgBouncer stands between the app and PostgreSQL. */}}
{{- define "boxoffice.pgbouncer.enabled" -}}
{{- if .Values.pgbouncer.enabled }}
{{- $db := fromJson (include "boxoffice.database" (dict "root" . "hook" false)) }}
{{- if or (ne $db.mode "parts") (not $db.password) }}
{{- fail "pgbouncer.enabled needs the database by parts with a password (externalDatabase.host with externalDatabase.existingSecret or password, or the in-chart postgresql): PgBouncer must know the server and the credentials" }}
{{- end }}
{{- if not (has .Values.pgbouncer.poolMode (list "transaction" "session")) }}
{{- fail "pgbouncer.poolMode must be transaction or session" }}
{{- end }}
{{- print "true" }}
{{- end }}
{{- end }}

{{/* Replicas a component may reach: KEDA's or the HPA's maximum, else its replicas. */}}
{{- define "boxoffice.maxReplicas" -}}
{{- if and (hasKey . "keda") .keda.enabled }}{{ .keda.maxReplicaCount }}
{{- else if and (hasKey . "autoscaling") .autoscaling.enabled }}{{ .autoscaling.maxReplicas }}
{{- else }}{{ .replicas }}{{ end }}
{{- end }}

{{/*
The connection budget, checked at render time. Each process holds up to: the API, per uvicorn
worker, an asyncio pool of config.dbPoolSize plus a SQLAlchemy pool of 2 x dbPoolSize (pool and
overflow); the relay and the reaper 2 x dbPoolSize; a notifier channel 2 x max(dbPoolSize,
concurrency) (one connection per sending thread). The sum over components of their most
replicas x that must fit the database's limit, or PgBouncer's client limit when it pools them.
*/}}
{{- define "boxoffice.connectionBudget" -}}
{{- $v := .Values }}
{{- $pool := int $v.config.dbPoolSize }}
{{- $parts := list }}
{{- $total := 0 }}
{{- $components := list
    (list "booking" $v.booking (mul 3 $pool (int $v.booking.uvicornWorkers)))
    (list "relay" $v.relay (mul 2 $pool))
    (list "notifier.email" $v.notifier.email (mul 2 (max $pool (int $v.notifier.email.concurrency))))
    (list "notifier.sms" $v.notifier.sms (mul 2 (max $pool (int $v.notifier.sms.concurrency))))
    (list "reaper" $v.reaper (mul 2 $pool)) }}
{{- range $components }}
{{- $name := index . 0 }}{{ $c := index . 1 }}{{ $each := index . 2 }}
{{- if $c.enabled }}
{{- $n := int (include "boxoffice.maxReplicas" $c) }}
{{- $total = add $total (mul $n $each) }}
{{- $parts = append $parts (printf "%s %dx%d" $name $n $each) }}
{{- end }}
{{- end }}
{{- $inChart := and $v.postgresql.enabled (not $v.externalDatabase.host) (not $v.externalDatabase.url) (not $v.externalDatabase.existingSecret) }}
{{- $limit := int (ternary $v.postgresql.maxConnections $v.externalDatabase.maxConnections $inChart) }}
{{- $limitName := ternary "postgresql.maxConnections" "externalDatabase.maxConnections" $inChart }}
{{- $migrations := ternary 1 0 $v.migrations.enabled }}
{{- $fix := "lower the replicas or autoscaling maxima (keda.maxReplicaCount, autoscaling.maxReplicas), config.dbPoolSize, booking.uvicornWorkers or the notifier channels' concurrency" }}
{{- if eq (include "boxoffice.pgbouncer.enabled" .) "true" }}
{{- $pg := $v.pgbouncer }}
{{- $clients := mul (int $pg.replicas) (int $pg.maxClientConnections) }}
{{- if gt $total $clients }}
{{- fail (printf "connection budget: the app may open %d connections (%s) but PgBouncer accepts %d (pgbouncer.replicas %d x pgbouncer.maxClientConnections %d): raise pgbouncer.maxClientConnections or pgbouncer.replicas, or %s" $total (join " + " $parts) $clients (int $pg.replicas) (int $pg.maxClientConnections) $fix) }}
{{- end }}
{{- $server := add (mul (int $pg.replicas) (int $pg.maxDbConnections)) $migrations }}
{{- if and (gt $limit 0) (gt $server $limit) }}
{{- fail (printf "connection budget: PgBouncer may open %d server connections (pgbouncer.replicas %d x pgbouncer.maxDbConnections %d, + %d for the migration Job) but %s is %d: lower pgbouncer.maxDbConnections or pgbouncer.replicas, or raise %s" $server (int $pg.replicas) (int $pg.maxDbConnections) $migrations $limitName $limit $limitName) }}
{{- end }}
{{- else if and (gt $limit 0) (gt (add $total $migrations) $limit) }}
{{- fail (printf "connection budget: the app may open %d PostgreSQL connections (%s, + %d for the migration Job) but %s is %d: enable pgbouncer, or %s, or raise %s" (add $total $migrations) (join " + " $parts) $migrations $limitName $limit $fix $limitName) }}
{{- end }}
{{- $total }}
{{- end }}
