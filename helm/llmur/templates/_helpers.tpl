{{/* Chart name, overridable. */}}
{{- define "llmur.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full resource-name prefix: release-chart, or fullnameOverride. */}}
{{- define "llmur.fullname" -}}
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

{{/* Labels on every resource. */}}
{{- define "llmur.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "llmur.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: pass (dict "root" $ "component" "web"). */}}
{{- define "llmur.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmur.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "llmur.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The Secret holding application-secret, master-key, database-url and redis-url. */}}
{{- define "llmur.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "llmur.fullname" .) }}
{{- end }}

{{/* Environment shared by every llmur container: pass (dict "root" $ "secretName" NAME). */}}
{{- define "llmur.env" -}}
- name: LLMUR_CONFIGURATION
  value: /etc/llmur/config.yaml
- name: LLMUR_LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
- name: LLMUR_APPLICATION_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: application-secret
- name: LLMUR_MASTER_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: master-key
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: database-url
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: redis-url
{{- if .root.Values.migrations.enabled }}
# The migration hook Job has migrated before any pod of this release starts.
- name: DATABASE_AUTO_MIGRATE
  value: "false"
{{- end }}
{{- with .root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes every llmur pod mounts: pass (dict "root" $ "configMap" NAME). */}}
{{- define "llmur.volumes" -}}
- name: config
  configMap:
    name: {{ .configMap }}
- name: tmp
  emptyDir: {}
- name: var
  emptyDir: {}
{{- end }}

{{- define "llmur.volumeMounts" -}}
- name: config
  mountPath: /etc/llmur
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: var
  mountPath: /app/var
{{- end }}

{{/* Pod-level settings shared by every llmur pod. */}}
{{- define "llmur.podSpecCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.serviceAccountName }}
serviceAccountName: {{ .Values.serviceAccountName }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod annotations: roll pods when the config or the chart's Secret changes. */}}
{{- define "llmur.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The config file: application_secret and master_keys always come from the environment. */}}
{{- define "llmur.configFile" -}}
application_secret: ${LLMUR_APPLICATION_SECRET}
{{- with .Values.config }}
{{ toYaml . }}
{{- end }}
{{- end }}
