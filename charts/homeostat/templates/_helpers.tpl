{{/* The image of one of homeostat's binaries: <registry>/<name>, by digest when one is given, else by tag. */}}
{{- define "homeostat.image" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $digest := index . 2 -}}
{{- if $digest -}}
{{ $root.Values.image.registry }}/{{ $name }}@{{ $digest }}
{{- else -}}
{{ $root.Values.image.registry }}/{{ $name }}:{{ $root.Values.image.tag | default $root.Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The labels of one of homeostat's parts. */}}
{{- define "homeostat.labels" -}}
app.kubernetes.io/name: {{ . }}
app.kubernetes.io/part-of: homeostat
{{- end -}}

{{/* The pod-level settings both Deployments share: Pod Security `restricted`, pull secrets. */}}
{{- define "homeostat.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile: {type: RuntimeDefault}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The container-level settings both Deployments share. */}}
{{- define "homeostat.containerSecurity" -}}
securityContext:
  runAsNonRoot: true
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: ["ALL"]}
{{- end -}}

{{/* A map as comma-separated name=value pairs, by name (the detector's HOMEOSTAT_LABELS and HOMEOSTAT_METRICS_HEADERS). */}}
{{- define "homeostat.matchers" -}}
{{- $pairs := list -}}
{{- range $name, $value := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $name $value) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
