{{- define "engage.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "engage.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "engage.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "engage.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "engage.kafkaPasswordSecret" -}}
{{- .Values.kafka.saslPasswordSecret.name | default (printf "%s-kafka" (include "engage.fullname" .)) -}}
{{- end -}}

{{- define "engage.signingKeySecret" -}}
{{- .Values.modelSigningKey.secretName | default (printf "%s-model-signing" (include "engage.fullname" .)) -}}
{{- end -}}

{{/* Kafka connection and security: the same for the workers and the webhook sink. */}}
{{- define "engage.kafkaEnv" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: ENGAGE_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}
- name: ENGAGE_KAFKA_SASL_MECHANISM
  value: {{ required "kafka.saslMechanism is required with SASL" .Values.kafka.saslMechanism | quote }}
- name: ENGAGE_KAFKA_SASL_USERNAME
  value: {{ required "kafka.saslUsername is required with SASL" .Values.kafka.saslUsername | quote }}
- name: ENGAGE_KAFKA_SASL_PASSWORD_FILE
  value: /etc/engage/kafka-password/{{ .Values.kafka.saslPasswordSecret.key }}
{{- end }}
{{- if .Values.kafka.tls.secretName }}
- name: ENGAGE_KAFKA_SSL_CAFILE
  value: /etc/engage/kafka-tls/{{ .Values.kafka.tls.caKey }}
{{- if .Values.kafka.tls.certKey }}
- name: ENGAGE_KAFKA_SSL_CERTFILE
  value: /etc/engage/kafka-tls/{{ .Values.kafka.tls.certKey }}
- name: ENGAGE_KAFKA_SSL_KEYFILE
  value: /etc/engage/kafka-tls/{{ required "kafka.tls.keyKey is required with certKey" .Values.kafka.tls.keyKey }}
{{- end }}
- name: ENGAGE_KAFKA_SSL_CHECK_HOSTNAME
  value: {{ .Values.kafka.tls.checkHostname | quote }}
{{- end }}
- name: ENGAGE_TOPIC_PREFIX
  value: {{ .Values.topics.prefix | quote }}
{{- end -}}

{{- define "engage.kafkaVolumeMounts" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}
- name: kafka-password
  mountPath: /etc/engage/kafka-password
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.secretName }}
- name: kafka-tls
  mountPath: /etc/engage/kafka-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "engage.kafkaVolumes" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}
- name: kafka-password
  secret:
    secretName: {{ include "engage.kafkaPasswordSecret" . }}
    defaultMode: 0400
{{- end }}
{{- if .Values.kafka.tls.secretName }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.secretName }}
    defaultMode: 0400
{{- end }}
{{- end -}}
