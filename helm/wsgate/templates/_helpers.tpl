{{/* Names and labels. */}}
{{- define "wsgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "wsgate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "wsgate.labels" -}}
{{ include "wsgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "wsgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The listeners of the pod: the values' own, or in sidecar mode the one on sidecar.listenPort. */}}
{{- define "wsgate.listeners" -}}
{{- if eq .Values.mode "sidecar" -}}
{{- dict "http" (dict "port" .Values.sidecar.listenPort "tls" false "proxyProtocol" "off") | toYaml -}}
{{- else -}}
{{- .Values.listeners | toYaml -}}
{{- end -}}
{{- end -}}

{{/*
The wsgate configuration: the values' config with what the pod needs set on top: the admin
server on 0.0.0.0:8410 (probes, Prometheus), the listeners on 0.0.0.0 with the certificate files of
the mounted Secret, and reload.watch (a ConfigMap update is put in force without a restart).
*/}}
{{- define "wsgate.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $listeners := dict -}}
{{- range $name, $listener := include "wsgate.listeners" . | fromYaml -}}
{{- $entry := dict "address" "0.0.0.0" "port" $listener.port -}}
{{- if $listener.tls -}}
{{- $_ := required (printf "listeners.%s has tls: true: set tls.secretName (a kubernetes.io/tls Secret)" $name) $.Values.tls.secretName -}}
{{- $_ := set $entry "tls" (dict "cert" "/etc/wsgate/tls/tls.crt" "key" "/etc/wsgate/tls/tls.key") -}}
{{- end -}}
{{- $proxy := toString (default "off" $listener.proxyProtocol) -}}
{{- if ne $proxy "off" -}}{{- $_ := set $entry "proxyProtocol" $proxy -}}{{- end -}}
{{- $_ := set $listeners $name $entry -}}
{{- end -}}
{{- $_ := set $config "listeners" $listeners -}}
{{- $admin := deepCopy (default dict $config.admin) -}}
{{- $_ := set $admin "enabled" true -}}
{{- $_ := set $admin "address" "0.0.0.0" -}}
{{- $_ := set $admin "port" 8410 -}}
{{- $_ := set $config "admin" $admin -}}
{{- $reload := deepCopy (default dict $config.reload) -}}
{{- $_ := set $reload "watch" true -}}
{{- $_ := set $config "reload" $reload -}}
{{- if eq .Values.mode "sidecar" -}}
{{- $pools := deepCopy (default dict $config.pools) -}}
{{- $_ := set $pools "app" (merge (dict "backends" (list (printf "http://127.0.0.1:%v" .Values.sidecar.appPort))) (omit (default dict $pools.app) "backends")) -}}
{{- $_ := set $config "pools" $pools -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
The settings a reload cannot change (docs/configuration.md#reloading): a change of them rolls
the pods through this checksum; every other change is reloaded in place.
*/}}
{{- define "wsgate.restartChecksum" -}}
{{- $config := include "wsgate.config" . | fromYaml -}}
{{- dict "admin" $config.admin "log" (default dict $config.log).format "workers" $config.workers "listenerSharing" $config.listenerSharing "store" (default dict $config.admission).store | toJson | sha256sum -}}
{{- end -}}

{{/* Seconds of a duration such as 25s, 2m or 1500ms (the forms the chart accepts for drainTimeout). */}}
{{- define "wsgate.seconds" -}}
{{- $text := toString . -}}
{{- if regexMatch "^[0-9]+ms$" $text -}}{{ div (trimSuffix "ms" $text | atoi) 1000 }}
{{- else if regexMatch "^[0-9]+s$" $text -}}{{ trimSuffix "s" $text | atoi }}
{{- else if regexMatch "^[0-9]+m$" $text -}}{{ mul (trimSuffix "m" $text | atoi) 60 }}
{{- else -}}{{ fail (printf "config.shutdown.drainTimeout %q: the chart reads ms, s or m" $text) }}
{{- end -}}
{{- end -}}

{{/* The gateway's container, for the Deployment and for the sidecar patch. */}}
{{- define "wsgate.container" -}}
name: wsgate
image: {{ include "wsgate.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["--config", "/etc/wsgate/config/config.yaml"]
ports:
{{- range $name, $listener := include "wsgate.listeners" . | fromYaml }}
  - { name: {{ $name | trunc 15 }}, containerPort: {{ $listener.port }}, protocol: TCP }
{{- end }}
  - { name: admin, containerPort: 8410, protocol: TCP }
livenessProbe:
  httpGet: { path: /healthz, port: admin }
  periodSeconds: 10
readinessProbe:
  httpGet: { path: /readyz, port: admin }
  periodSeconds: 2
  failureThreshold: 1
lifecycle:
  preStop:
    exec: { command: ["sleep", "{{ .Values.preStopSeconds }}"] }
{{- with .Values.env }}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  runAsNonRoot: true
  runAsUser: 1000
  runAsGroup: 1000
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities: { drop: [ALL] }
volumeMounts:
  - { name: wsgate-config, mountPath: /etc/wsgate/config, readOnly: true }
{{- if .Values.tls.secretName }}
  - { name: wsgate-tls, mountPath: /etc/wsgate/tls, readOnly: true }
{{- end }}
{{- range .Values.secretMounts }}
  - { name: {{ printf "secret-%s" .name | trunc 63 }}, mountPath: /etc/wsgate/secrets/{{ .name }}, readOnly: true }
{{- end }}
{{- end -}}

{{/* The volumes the container mounts (a directory mount, so that ConfigMap and Secret updates reach it). */}}
{{- define "wsgate.volumes" -}}
- name: wsgate-config
  configMap: { name: {{ include "wsgate.fullname" . }} }
{{- if .Values.tls.secretName }}
- name: wsgate-tls
  secret: { secretName: {{ .Values.tls.secretName }} }
{{- end }}
{{- range .Values.secretMounts }}
- name: {{ printf "secret-%s" .name | trunc 63 }}
  secret: { secretName: {{ .secretName }} }
{{- end }}
{{- end -}}
