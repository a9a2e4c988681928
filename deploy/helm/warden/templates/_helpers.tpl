{{/* Warden's chart helpers. */}}

{{- define "warden.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Labels every object of the release carries (the admission objects excepted: they are exactly what
`warden inject --print-policies` prints). Call with (dict "ctx" $ "component" "inject"). */}}
{{- define "warden.labels" -}}
helm.sh/chart: {{ include "warden.chart" .ctx }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: warden
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{ include "warden.selectorLabels" . }}
{{- end -}}

{{- define "warden.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Warden's image reference: by digest when one is given. */}}
{{- define "warden.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" $img.digest) -}}
{{- fail (printf "image.digest %q: want sha256:<64 lowercase hex>" $img.digest) -}}
{{- end -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else if $img.tag -}}
{{- printf "%s:%s" $img.repository $img.tag -}}
{{- else -}}
{{- fail "image.digest is required (sha256:…; or image.tag where nothing needs a pinned image)" -}}
{{- end -}}
{{- end -}}

{{/* The injector's image must be pinned: the admission policies admit digest-pinned sidecars only. */}}
{{- define "warden.pinnedImage" -}}
{{- if not .Values.image.digest -}}
{{- fail "image.digest is required with injector.enabled or admission.enabled: the admission policies admit only sidecars pinned by digest" -}}
{{- end -}}
{{- include "warden.image" . -}}
{{- end -}}

{{/* The issuerRef of the chart's certificates. */}}
{{- define "warden.issuerRef" -}}
{{- with .Values.tls.certManager.issuerRef }}
{{- toYaml . }}
{{- else }}
name: warden-selfsigned
kind: Issuer
{{- end }}
{{- end -}}

{{/* A cert-manager Certificate: (dict "ctx" $ "name" N "secretName" S "dnsNames" L "component" C). */}}
{{- define "warden.certificate" -}}
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "warden.labels" (dict "ctx" .ctx "name" .name "component" .component) | nindent 4 }}
spec:
  secretName: {{ .secretName }}
  duration: {{ .ctx.Values.tls.certManager.duration }}
  renewBefore: {{ .ctx.Values.tls.certManager.renewBefore }}
  dnsNames:
    {{- toYaml .dnsNames | nindent 4 }}
  privateKey:
    algorithm: ECDSA
    size: 256
    rotationPolicy: Always
  issuerRef:
    {{- include "warden.issuerRef" .ctx | nindent 4 }}
{{- end -}}

{{/* The pod and container security context every Warden container but warden-iptables runs with. */}}
{{- define "warden.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "warden.containerSecurityContext" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities: {drop: [ALL]}
{{- end -}}

{{/* The injector's configuration (the file `warden inject --config` reads), from the values. */}}
{{- define "warden.injectorConfig" -}}
{{- $s := .Values.sidecar -}}
{{- /* The policy's upstream.region defaults to the sidecar's region: `warden inject` checks every mode's sidecar
configuration before serving, in its own environment, where no AWS_REGION names one. */ -}}
{{- $policy := deepCopy $s.policy -}}
{{- $upstream := default (dict) $policy.upstream -}}
{{- if not $upstream.region -}}
{{- $_ := set $upstream "region" $s.region -}}
{{- $_ := set $policy "upstream" $upstream -}}
{{- end -}}
{{- $cfg := dict
  "image" (include "warden.pinnedImage" .)
  "image_pull_policy" .Values.image.pullPolicy
  "namespace" .Release.Namespace
  "audience" $s.audience
  "token_expiration_seconds" $s.tokenExpirationSeconds
  "role_arn" (required "sidecar.roleArn is required (the IAM role the sidecar assumes)" $s.roleArn)
  "region" (required "sidecar.region is required (the sidecar's AWS_REGION)" $s.region)
  "resources" $s.resources
  "spool_size_limit" $s.spoolSizeLimit
  "admission" (dict
    "previous_images" .Values.admission.previousImages
    "break_glass_groups" .Values.admission.breakGlassGroups
    "platform_groups" .Values.admission.platformGroups)
  "policy" $policy
-}}
# Written by the warden Helm chart from its values; `warden inject` reads it.
{{ toYaml $cfg }}
{{- end -}}

{{/* The shared proxy's Warden configuration: sharedProxy.config with the listeners (and, for the forward proxy,
the CA files) the chart's Deployment and Service expect. */}}
{{- define "warden.sharedProxyConfig" -}}
{{- $v := .Values.sharedProxy -}}
{{- $cfg := deepCopy $v.config -}}
{{- $listen := deepCopy (default (dict) $cfg.listen) -}}
{{- $_ := set $listen "endpoint" (printf "0.0.0.0:%d" (int $v.endpointPort)) -}}
{{- $_ := set $listen "admin" (printf "0.0.0.0:%d" (int $v.adminPort)) -}}
{{- $_ := set $listen "tls" (dict "cert_file" "/etc/warden/tls/tls.crt" "key_file" "/etc/warden/tls/tls.key") -}}
{{- if $v.forwardProxy.enabled -}}
{{- $_ := set $listen "proxy" (printf "0.0.0.0:%d" (int $v.forwardProxy.port)) -}}
{{- $ca := deepCopy (default (dict) $cfg.ca) -}}
{{- $_ := set $ca "cert_out" "/var/lib/warden/ca/ca.crt" -}}
{{- $_ := set $ca "bundle_out" "/var/lib/warden/ca/bundle.crt" -}}
{{- $_ := set $cfg "ca" $ca -}}
{{- else -}}
{{- $_ := unset $listen "proxy" -}}
{{- end -}}
{{- $_ := set $cfg "listen" $listen -}}
# Written by the warden Helm chart from sharedProxy.config; `warden serve --config` reads it.
{{ toYaml $cfg }}
{{- end -}}
