{{/* Names and labels shared by every template. */}}
{{- define "ci-medic.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ci-medic.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ci-medic.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ci-medic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ci-medic
{{- end -}}

{{- define "ci-medic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ci-medic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ci-medic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ci-medic.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ci-medic.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The environment every container gets: where the bus is, the policy file, secrets by reference. */}}
{{- define "ci-medic.env" -}}
- name: NATS_URL
  value: {{ .Values.nats.url | quote }}
- name: MEDIC_STREAM_REPLICAS
  value: {{ .Values.nats.streamReplicas | quote }}
- name: MEDIC_HTTP_HOST
  value: "0.0.0.0"
- name: MEDIC_HTTP_PORT
  value: "8080"
- name: MEDIC_CONFIG
  value: /etc/ci-medic/medic.toml
{{- with .Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- range $name, $key := .Values.secrets.keys }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.secrets.name }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end -}}

{{- define "ci-medic.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ci-medic.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "ci-medic.dashboardApiUrl" -}}
{{- if .Values.dashboard.apiUrl -}}
{{- .Values.dashboard.apiUrl -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "https://%s" .Values.ingress.host -}}
{{- else -}}
{{- printf "http://%s-projector" (include "ci-medic.fullname" .) -}}
{{- end -}}
{{- end -}}
