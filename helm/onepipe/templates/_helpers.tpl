{{/* Names, labels and the pod template every onepipe workload shares. */}}

{{- define "onepipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "onepipe.fullname" -}}
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

{{/* "<fullname>-<suffix>", at most `max` characters (63 by default; CronJobs: 52). */}}
{{- define "onepipe.componentName" -}}
{{- $max := .max | default 63 }}
{{- printf "%s-%s" (include "onepipe.fullname" .root) .suffix | trunc (int $max) | trimSuffix "-" }}
{{- end }}

{{- define "onepipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "onepipe.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "onepipe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "onepipe.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: onepipe
{{- end }}

{{- define "onepipe.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "onepipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "onepipe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "onepipe.registryUrl" -}}
{{- if .Values.registryUrl }}
{{- .Values.registryUrl }}
{{- else if .Values.registry.enabled }}
{{- printf "http://%s:%d" (include "onepipe.componentName" (dict "root" . "suffix" "registry")) (int .Values.registry.service.grpcPort) }}
{{- else }}
{{- fail "registryUrl is required when registry.enabled is false" }}
{{- end }}
{{- end }}

{{/* The Secret holding AWS_* for the object store, or nothing (pod identity). */}}
{{- define "onepipe.s3SecretName" -}}
{{- if .Values.objectStore.s3.existingSecret }}
{{- .Values.objectStore.s3.existingSecret }}
{{- else if .Values.objectStore.s3.accessKeyId }}
{{- include "onepipe.componentName" (dict "root" . "suffix" "s3") }}
{{- end }}
{{- end }}

{{/* A Kubernetes name from a dataset or warehouse name: lower case, [a-z0-9-]. */}}
{{- define "onepipe.dnsName" -}}
{{- regexReplaceAll "[^a-z0-9-]+" (lower .) "-" | trimAll "-" }}
{{- end }}

{{/*
The pod template of every workload. Takes a dict:
  root        the chart context
  v           the component's values (resources, env lists, scheduling)
  component   app.kubernetes.io/component
  extraLabels more pod labels (part of the workload's selector)
  configMap   the component's own ConfigMap (besides the shared one)
  args        container args (the binary is the entrypoint's argument 0: command)
  command     the binary
  ports       list of {name, port} besides the admin port
  adminPort   the admin port (/healthz, /readyz, /metrics)
  env         extra EnvVar entries (list)
  resources   overrides v.resources when set
  restartPolicy  for Jobs
  spill       an emptyDir at /spill with this size limit, when set
*/}}
{{- define "onepipe.podTemplate" -}}
{{- $root := .root }}
{{- $v := .v -}}
metadata:
  labels:
    {{- include "onepipe.selectorLabels" (dict "root" $root "component" .component) | nindent 4 }}
    app.kubernetes.io/part-of: onepipe
    {{- with .extraLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- if $root.Values.metrics.podAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ .adminPort | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "onepipe.serviceAccountName" $root }}
  automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- if .restartPolicy }}
  restartPolicy: {{ .restartPolicy }}
  {{- end }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds | default 30 }}
  {{- with ($v.nodeSelector | default $root.Values.nodeSelector) }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with ($v.tolerations | default $root.Values.tolerations) }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with ($v.affinity | default $root.Values.affinity) }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .command }}
      image: {{ include "onepipe.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command: [{{ .command | quote }}]
      {{- with .args }}
      args:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      envFrom:
        - configMapRef:
            name: {{ include "onepipe.componentName" (dict "root" $root "suffix" "common") }}
        - configMapRef:
            name: {{ .configMap }}
        {{- with (include "onepipe.s3SecretName" $root) }}
        - secretRef:
            name: {{ . }}
        {{- end }}
      {{- $env := concat (.env | default list) ($v.extraEnv | default list) }}
      {{- with $env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        {{- range .ports }}
        - name: {{ .name }}
          containerPort: {{ .port }}
          protocol: TCP
        {{- end }}
        - name: admin
          containerPort: {{ .adminPort }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: admin
        {{- toYaml $root.Values.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: admin
        {{- toYaml $root.Values.probes.readiness | nindent 8 }}
      resources:
        {{- toYaml (.resources | default $v.resources) | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if .spill }}
        - name: spill
          mountPath: /spill
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $root.Values.tmpSizeLimit }}
    {{- if .spill }}
    - name: spill
      emptyDir:
        sizeLimit: {{ .spill }}
    {{- end }}
{{- end }}

{{/* EnvVar ONEPIPE_DATABASE (or `name`) from a warehouse's Secret. Takes dict root, w, name. */}}
{{- define "onepipe.warehouseDatabaseEnv" -}}
{{- $db := .w.database | default dict -}}
- name: {{ .name | default "ONEPIPE_DATABASE" }}
  valueFrom:
    secretKeyRef:
      name: {{ $db.existingSecret | default (include "onepipe.componentName" (dict "root" .root "suffix" (printf "warehouse-%s" .w.name))) }}
      key: {{ $db.existingSecretKey | default "ONEPIPE_DATABASE" }}
{{- end }}
