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
{{- with (include "warden.sidecarBundle" . | fromYaml) }}
{{- range $k := list "apps" "deny" "guards" "mode" }}
{{- if get $policy $k }}
{{- fail (printf "sidecar.policy.%s: with sidecar.bundle.enabled the policy comes from signed bundles; remove it (publish it with `warden policy sign` and `warden policy publish`)" $k) }}
{{- end }}
{{- $_ := unset $policy $k }}
{{- end }}
{{- $_ := set $cfg "bundle" . }}
{{- end }}
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
{{- if $v.central.enabled -}}
{{- include "warden.centralConfig" (dict "v" $v "cfg" $cfg "listen" $listen) -}}
{{- end -}}
{{- with (include "warden.sharedProxyBundle" . | fromYaml) -}}
{{- if hasKey $cfg "bundle" -}}
{{- fail "sharedProxy.config.bundle: with sharedProxy.bundle.enabled the chart writes it from sharedProxy.bundle" -}}
{{- end -}}
{{- range $k := list "apps" "deny" "guards" "mode" -}}
{{- if get $cfg $k -}}
{{- fail (printf "sharedProxy.config.%s: with sharedProxy.bundle.enabled the policy comes from signed bundles; remove it (publish it with `warden policy sign` and `warden policy publish`)" $k) -}}
{{- end -}}
{{- $_ := unset $cfg $k -}}
{{- end -}}
{{- $_ := set $cfg "bundle" . -}}
{{- end -}}
{{- $_ := set $cfg "listen" $listen -}}
# Written by the warden Helm chart from sharedProxy.config; `warden serve --config` reads it.
{{ toYaml $cfg }}
{{- end -}}

{{/* Central mode's part of the shared proxy's configuration, written into .cfg and .listen: PROXY protocol v2
from the NLB's subnets only, and the ec2 identity source across VPCs and accounts (docs/identity.md, "A central
Warden for many VPCs and accounts"). What the chart writes may not also come from sharedProxy.config. */}}
{{- define "warden.centralConfig" -}}
{{- $c := .v.central -}}
{{- $cfg := .cfg -}}
{{- if hasKey .listen "proxy_protocol" -}}
{{- fail "sharedProxy.config.listen.proxy_protocol: with sharedProxy.central.enabled the chart writes it from sharedProxy.central.proxyProtocol.trusted" -}}
{{- end -}}
{{- if not $c.proxyProtocol.trusted -}}
{{- fail "sharedProxy.central.proxyProtocol.trusted is required with sharedProxy.central.enabled: the NLB's subnets, the only peers Warden takes a PROXY header from" -}}
{{- end -}}
{{- $_ := set .listen "proxy_protocol" (dict "trusted" $c.proxyProtocol.trusted) -}}
{{- $id := deepCopy (default (dict) $cfg.identity) -}}
{{- if hasKey $id "trusted_cidrs" -}}
{{- fail "sharedProxy.config.identity.trusted_cidrs: with sharedProxy.central.enabled the chart writes it from sharedProxy.central.identity.trustedCIDRs" -}}
{{- end -}}
{{- if hasKey $id "ec2" -}}
{{- fail "sharedProxy.config.identity.ec2: with sharedProxy.central.enabled the chart writes it from sharedProxy.central.identity.ec2" -}}
{{- end -}}
{{- if not $c.identity.trustedCIDRs -}}
{{- fail "sharedProxy.central.identity.trustedCIDRs is required with sharedProxy.central.enabled: the spoke networks, as the PROXY header names them" -}}
{{- end -}}
{{- $sources := default (list) $id.sources -}}
{{- if not (has "ec2" $sources) -}}
{{- $sources = append $sources "ec2" -}}
{{- end -}}
{{- $_ := set $id "sources" $sources -}}
{{- $_ := set $id "trusted_cidrs" $c.identity.trustedCIDRs -}}
{{- $e := $c.identity.ec2 -}}
{{- $ec2 := dict -}}
{{- with $e.endpointServices -}}
{{- $_ := set $ec2 "endpoint_services" . -}}
{{- end -}}
{{- if $e.ecsTasks -}}
{{- $_ := set $ec2 "ecs_tasks" true -}}
{{- end -}}
{{- $accounts := list -}}
{{- range $i, $a := $e.accounts -}}
{{- if and $a.roleArn (not $a.externalId) -}}
{{- fail (printf "sharedProxy.central.identity.ec2.accounts[%d].externalId is required with a roleArn: the spoke role's trust policy asks for it" $i) -}}
{{- end -}}
{{- if and $a.externalId (not $a.roleArn) -}}
{{- fail (printf "sharedProxy.central.identity.ec2.accounts[%d].externalId without a roleArn: Warden's own account is read with its own credentials" $i) -}}
{{- end -}}
{{- if and $a.roleArn (ne (index (splitList ":" $a.roleArn) 4) $a.account) -}}
{{- fail (printf "sharedProxy.central.identity.ec2.accounts[%d].roleArn %s is not a role of account %s" $i $a.roleArn $a.account) -}}
{{- end -}}
{{- $acc := dict "account" $a.account -}}
{{- with $a.roleArn -}}{{- $_ := set $acc "role_arn" . -}}{{- end -}}
{{- with $a.externalId -}}{{- $_ := set $acc "external_id" . -}}{{- end -}}
{{- with $a.cidrs -}}{{- $_ := set $acc "cidrs" . -}}{{- end -}}
{{- with $a.ecsClusters -}}{{- $_ := set $acc "ecs_clusters" . -}}{{- end -}}
{{- $accounts = append $accounts $acc -}}
{{- end -}}
{{- with $accounts -}}
{{- $_ := set $ec2 "accounts" . -}}
{{- end -}}
{{- $_ := set $id "ec2" $ec2 -}}
{{- $_ := set $cfg "identity" $id -}}
{{- end -}}

{{/* The injector configuration's bundle section (YAML; empty without sidecar.bundle.enabled): the trust roots every
sidecar gets. url defaults to the chart's bundle service, trusted_keys to bundle.trustedKeys, and the CA comes
inline (caPEM) or, at install, from a Secret or ConfigMap of the release's namespace (caFrom). */}}
{{- define "warden.sidecarBundle" -}}
{{- if .Values.sidecar.bundle.enabled -}}
{{- include "warden.bundleTrust" (dict "ctx" . "b" .Values.sidecar.bundle "what" "sidecar.bundle" "who" "sidecars") -}}
{{- end -}}
{{- end -}}

{{/* A bundle section's trust roots from the values .b (sidecar.bundle or sharedProxy.bundle, named .what in errors;
.who are the Wardens that pin the CA): url (default: the chart's bundle service), ca (PEM, from caPEM or caFrom),
trusted_keys (default: bundle.trustedKeys), fleet, wait, retry, s3 — in the injector configuration's field names. */}}
{{- define "warden.bundleTrust" -}}
{{- $ := .ctx -}}
{{- $b := .b -}}
{{- $what := .what -}}
{{- $own := printf "https://warden-bundles.%s.svc:%d" $.Release.Namespace (int $.Values.bundle.port) -}}
{{- $url := $b.url -}}
{{- if not $url -}}
{{- if not $.Values.bundle.enabled -}}
{{- fail (printf "%s.url is required (the bundle service's https:// URL or an s3://BUCKET/PREFIX), or set bundle.enabled for the chart's own service" $what) -}}
{{- end -}}
{{- $url = $own -}}
{{- end -}}
{{- $ca := $b.caPEM -}}
{{- with $b.caFrom -}}
{{- if $ca -}}
{{- fail (printf "%s: give caPEM or caFrom, not both" $what) -}}
{{- end -}}
{{- $key := required (printf "%s.caFrom.key is required (e.g. ca.crt)" $what) .key -}}
{{- if and .secret (not .configMap) -}}
{{- $obj := lookup "v1" "Secret" $.Release.Namespace .secret -}}
{{- $ca = get (default (dict) $obj.data) $key | b64dec -}}
{{- if not $ca -}}
{{- fail (printf "%s.caFrom: Secret %s/%s has no key %q (it must exist before install; helm template and --dry-run=client cannot read the cluster: give caPEM there)" $what $.Release.Namespace .secret $key) -}}
{{- end -}}
{{- else if and .configMap (not .secret) -}}
{{- $obj := lookup "v1" "ConfigMap" $.Release.Namespace .configMap -}}
{{- $ca = get (default (dict) $obj.data) $key -}}
{{- if not $ca -}}
{{- fail (printf "%s.caFrom: ConfigMap %s/%s has no key %q (it must exist before install; helm template and --dry-run=client cannot read the cluster: give caPEM there)" $what $.Release.Namespace .configMap $key) -}}
{{- end -}}
{{- else -}}
{{- fail (printf "%s.caFrom: name one secret or one configMap (and its key)" $what) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $url $own) (not $ca) -}}
{{- fail (printf "%s: caPEM or caFrom is required with the chart's bundle service (its certificate comes from your issuer, which the system roots do not know)" $what) -}}
{{- end -}}
{{- if and (eq $url $own) $.Values.tls.certManager.enabled (not $.Values.tls.certManager.issuerRef) -}}
{{- fail (printf "%s with the chart's bundle service needs a CA that outlives the service's certificate (%s pin it): set tls.certManager.issuerRef to your CA issuer and give its CA in %s.caPEM or caFrom" $what .who $what) -}}
{{- end -}}
{{- $keys := list -}}
{{- range (default $.Values.bundle.trustedKeys $b.trustedKeys) -}}
{{- $keys = append $keys (dict "id" .id "public_key" .publicKey) -}}
{{- end -}}
{{- if not $keys -}}
{{- fail (printf "%s.trustedKeys (or bundle.trustedKeys): at least one {id, publicKey} is required (the keys bundles may be signed with)" $what) -}}
{{- end -}}
{{- $out := dict "url" $url "trusted_keys" $keys -}}
{{- with $ca }}{{ $_ := set $out "ca" . }}{{ end -}}
{{- with $b.fleet }}{{ $_ := set $out "fleet" . }}{{ end -}}
{{- with $b.wait }}{{ $_ := set $out "wait" . }}{{ end -}}
{{- with $b.retry }}{{ $_ := set $out "retry" . }}{{ end -}}
{{- with $b.s3 }}{{ $_ := set $out "s3" (dict "region" (default "" .region) "endpoint" (default "" .endpoint) "path_style" (default false .pathStyle)) }}{{ end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The shared proxy's bundle section (Warden's configuration; empty without sharedProxy.bundle.enabled): the trust
roots as for sidecars (warden.bundleTrust), the release's namespace as its place in bundles' scopes, and the cache
of the last good bundle in the spool volume (kept across container restarts). */}}
{{- define "warden.sharedProxyBundle" -}}
{{- $b := .Values.sharedProxy.bundle -}}
{{- if $b.enabled -}}
{{- $t := include "warden.bundleTrust" (dict "ctx" . "b" $b "what" "sharedProxy.bundle" "who" "shared proxies") | fromYaml -}}
{{- $out := dict "url" $t.url "trusted_keys" $t.trusted_keys "namespace" (default .Release.Namespace $b.namespace) "cache_dir" "/var/lib/warden/bundle" -}}
{{- with $t.ca }}{{ $_ := set $out "ca_pem" . }}{{ end -}}
{{- range $k := list "fleet" "wait" "retry" "s3" }}{{ with get $t $k }}{{ $_ := set $out $k . }}{{ end }}{{ end -}}
{{- toYaml $out -}}
{{- end -}}
{{- end -}}

{{/* The sidecar's --bundle-pin for an injector configuration's bundle section (a dict): bundle.TrustRoots.Pin
computed as the injector computes it (inject.BundleConfig.TrustRoots: no ca_file, no namespace), field by field:
"NAME LEN:VALUE\n" for url, ca_file, ca_pem, each key by sorted id ("key ID", trimmed), fleet, namespace and
s3_endpoint, hashed with SHA-256. tools/helm's TestAdmissionMatchesPrintPolicies fails if the two differ. */}}
{{- define "warden.bundlePin" -}}
{{- $fields := list (list "url" .url) (list "ca_file" "") (list "ca_pem" (default "" .ca)) -}}
{{- $keys := dict -}}
{{- range .trusted_keys }}{{ $_ := set $keys .id .public_key }}{{ end -}}
{{- range (keys $keys | sortAlpha) }}{{ $fields = append $fields (list (printf "key %s" .) (trim (get $keys .))) }}{{ end -}}
{{- $s3 := default "" (default (dict) .s3).endpoint -}}
{{- $fields = append $fields (list "fleet" (default "" .fleet)) -}}
{{- $fields = append $fields (list "namespace" "") -}}
{{- $fields = append $fields (list "s3_endpoint" $s3) -}}
{{- $msg := "" -}}
{{- range $fields }}{{ $msg = printf "%s%s %d:%s\n" $msg (index . 0) (len (index . 1)) (index . 1) }}{{ end -}}
{{- printf "sha256:%s" (sha256sum $msg) -}}
{{- end -}}
