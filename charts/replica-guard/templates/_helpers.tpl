{{/* Names. */}}
{{- define "replica-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "replica-guard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "replica-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "replica-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "replica-guard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "replica-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The Secret the guard keeps its self-managed CA and serving certificate in. */}}
{{- define "replica-guard.certSecretName" -}}
{{- printf "%s-certs" (include "replica-guard.fullname" .) -}}
{{- end -}}

{{/* The Secret cert-manager writes the serving certificate to. */}}
{{- define "replica-guard.certManagerSecretName" -}}
{{- printf "%s-tls" (include "replica-guard.fullname" .) -}}
{{- end -}}

{{- define "replica-guard.policiesConfigMapName" -}}
{{- default (printf "%s-policies" (include "replica-guard.fullname" .)) .Values.policies.existingConfigMap -}}
{{- end -}}

{{/* The desired state of both webhook configurations, which the guard reconciles towards. */}}
{{- define "replica-guard.desiredConfigMapName" -}}
{{- printf "%s-webhooks" (include "replica-guard.fullname" .) -}}
{{- end -}}

{{/* DNS names of the Service, as the API server and the certificate use them. */}}
{{- define "replica-guard.serviceDnsNames" -}}
{{- $svc := include "replica-guard.fullname" . -}}
{{- $ns := .Release.Namespace -}}
- {{ $svc }}
- {{ printf "%s.%s" $svc $ns }}
- {{ printf "%s.%s.svc" $svc $ns }}
- {{ printf "%s.%s.svc.cluster.local" $svc $ns }}
{{- end -}}

{{/* True when the guard runs outside the cluster and the configurations call it by URL. */}}
{{- define "replica-guard.urlMode" -}}
{{- if .Values.webhook.url }}true{{ end -}}
{{- end -}}

{{/* Version guard: matchConditions exist from 1.28 (beta, on by default; GA in 1.30). */}}
{{- define "replica-guard.hasMatchConditions" -}}
{{- if semverCompare ">=1.28.0-0" .Capabilities.KubeVersion.Version }}true{{ end -}}
{{- end -}}

{{- define "replica-guard.checkVersion" -}}
{{- if and (not (include "replica-guard.hasMatchConditions" .)) (not .Values.webhook.allowWithoutMatchConditions) -}}
{{- fail (printf "replica-guard needs Kubernetes 1.28 or later (this cluster is %s): older API servers drop the webhooks' matchConditions silently and would send every write in the cluster to a fail-closed webhook. Upgrade the cluster, or set webhook.allowWithoutMatchConditions=true, which renders failurePolicy Ignore: no protection while the guard is down." .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- end -}}

{{- define "replica-guard.failurePolicy" -}}
{{- if include "replica-guard.hasMatchConditions" . -}}
{{- .Values.webhook.failurePolicy -}}
{{- else -}}
Ignore
{{- end -}}
{{- end -}}

{{/*
The ReplicaPolicy documents of policies.files, parsed, as YAML `policies: [...]`. A
document that does not parse or is not a ReplicaPolicy is skipped here: the guard
refuses it with a reason (run `replica-guard check` first).
*/}}
{{- define "replica-guard.parsedPolicies" -}}
{{- $out := list -}}
{{- range $file, $content := .Values.policies.files -}}
{{- range $doc := splitList "\n---" (printf "\n%s" $content) -}}
{{- $parsed := fromYaml $doc -}}
{{- if and (not (hasKey $parsed "Error")) (eq (toString (get $parsed "kind")) "ReplicaPolicy") -}}
{{- $out = append $out $parsed -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "policies" $out) -}}
{{- end -}}

{{/* A CEL string literal (single quotes, backslashes and quotes escaped). */}}
{{- define "replica-guard.celString" -}}
'{{ . | replace "\\" "\\\\" | replace "'" "\\'" }}'
{{- end -}}

{{/* An anchored RE2 expression for a glob (* any run of characters, ? one). */}}
{{- define "replica-guard.globRegex" -}}
^{{ regexQuoteMeta . | replace "\\*" ".*" | replace "\\?" "." }}$
{{- end -}}

{{/* A CEL test of `value` (a CEL expression) against a glob: == for a literal, matches() otherwise. */}}
{{- define "replica-guard.celGlob" -}}
{{- if or (contains "*" .glob) (contains "?" .glob) -}}
{{ .value }}.matches({{ include "replica-guard.celString" (include "replica-guard.globRegex" .glob) }})
{{- else -}}
{{ .value }} == {{ include "replica-guard.celString" .glob }}
{{- end -}}
{{- end -}}

{{/*
The coarse agent test of the matchConditions: the agent namespaces, users and groups of
values, and the service accounts, users and groups the policies in policies.files name.
The guard does the fine match. No identity at all: `false` (the webhooks match nobody).
*/}}
{{- define "replica-guard.agentExpression" -}}
{{- $terms := list -}}
{{- range .Values.agents.namespaces -}}
{{- $terms = append $terms (printf "request.userInfo.username.startsWith(%s)" (include "replica-guard.celString" (printf "system:serviceaccount:%s:" .))) -}}
{{- end -}}
{{- $users := .Values.agents.users -}}
{{- $groups := .Values.agents.groups -}}
{{- $accounts := list -}}
{{- range (include "replica-guard.parsedPolicies" . | fromYaml).policies -}}
{{- $agents := default dict (get (default dict .spec) "agents") -}}
{{- $accounts = concat $accounts (default list $agents.serviceAccounts) -}}
{{- $users = concat $users (default list $agents.users) -}}
{{- $groups = concat $groups (default list $agents.groups) -}}
{{- end -}}
{{- range uniq $accounts -}}
{{- $terms = append $terms (include "replica-guard.celGlob" (dict "value" "request.userInfo.username" "glob" (printf "system:serviceaccount:%s" .))) -}}
{{- end -}}
{{- range uniq $users -}}
{{- $terms = append $terms (include "replica-guard.celGlob" (dict "value" "request.userInfo.username" "glob" .)) -}}
{{- end -}}
{{- if $groups -}}
{{- $groupTerms := list -}}
{{- range uniq $groups -}}
{{- $groupTerms = append $groupTerms (include "replica-guard.celGlob" (dict "value" "g" "glob" .)) -}}
{{- end -}}
{{- $terms = append $terms (printf "request.userInfo.groups.exists(g, %s)" (join " || " $groupTerms)) -}}
{{- end -}}
{{- if $terms -}}
{{- join " || " (uniq $terms) -}}
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/* The identities that are never agents, as matchConditions (the guard skips them too). */}}
{{- define "replica-guard.controllerExclusions" -}}
- name: not-kube-system-service-accounts
  expression: "!request.userInfo.username.startsWith('system:serviceaccount:kube-system:')"
- name: not-control-plane-components
  expression: "!request.userInfo.username.startsWith('system:kube-')"
- name: not-kubelets
  expression: "!request.userInfo.username.startsWith('system:node:')"
{{- end -}}

{{/* matchConditions: the controllers that are never agents, then the agents. */}}
{{- define "replica-guard.matchConditions" -}}
{{ include "replica-guard.controllerExclusions" . }}
- name: agents
  expression: {{ include "replica-guard.agentExpression" . | quote }}
{{- end -}}

{{/*
The rules: the generated list of src/admission/webhook-rules.ts (webhook-rules.yaml, kept
in sync by a test), then the configured scale resources (with their scale subresource)
and custom resources.
*/}}
{{- define "replica-guard.rules" -}}
{{ .Files.Get "webhook-rules.yaml" | fromYaml | dig "rules" list | toYaml }}
{{- range .Values.scaleResources }}
- apiGroups: [{{ .group | quote }}]
  apiVersions: ["*"]
  operations: [CREATE, UPDATE, DELETE]
  resources: [{{ .resource | quote }}, {{ printf "%s/scale" .resource | quote }}]
  scope: Namespaced
{{- end }}
{{- range .Values.customResources }}
- apiGroups: [{{ .group | quote }}]
  apiVersions: ["*"]
  operations: [CREATE, UPDATE, DELETE]
  resources: [{{ .resource | quote }}]
  scope: Namespaced
{{- end }}
{{- end -}}

{{/* clientConfig: the Service, or a URL for a guard outside the cluster. */}}
{{- define "replica-guard.clientConfig" -}}
{{- $path := .path -}}
{{- with .root -}}
{{- if .Values.webhook.url -}}
url: {{ printf "%s%s" (trimSuffix "/" .Values.webhook.url) $path | quote }}
{{- else -}}
service:
  name: {{ include "replica-guard.fullname" . }}
  namespace: {{ .Release.Namespace }}
  path: {{ $path | quote }}
  port: {{ .Values.service.port }}
{{- end }}
{{- if .Values.webhook.caBundle }}
caBundle: {{ .Values.webhook.caBundle | b64enc }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* One webhook entry; `kind` is mutate or validate. */}}
{{- define "replica-guard.webhook" -}}
{{- $root := .root -}}
- name: {{ printf "%s.replica-guard.io" .kind }}
  admissionReviewVersions: ["v1"]
  sideEffects: NoneOnDryRun
  failurePolicy: {{ include "replica-guard.failurePolicy" $root }}
  timeoutSeconds: {{ $root.Values.webhook.timeoutSeconds }}
  {{- if eq .kind "mutate" }}
  reinvocationPolicy: IfNeeded
  {{- end }}
  clientConfig:
    {{- include "replica-guard.clientConfig" (dict "root" $root "path" (printf "/%s" .kind)) | nindent 4 }}
  namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: NotIn
        values:
          {{- toYaml (uniq (concat (list $root.Release.Namespace "kube-system") $root.Values.webhook.excludeNamespaces)) | nindent 10 }}
  {{- if include "replica-guard.hasMatchConditions" $root }}
  matchConditions:
    {{- include "replica-guard.matchConditions" $root | nindent 4 }}
  {{- end }}
  rules:
    {{- include "replica-guard.rules" $root | nindent 4 }}
{{- end -}}

{{/* The two configurations' metadata annotations (cert-manager's CA injector). */}}
{{- define "replica-guard.webhookAnnotations" -}}
{{- if eq .Values.certificates.mode "cert-manager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s-serving" .Release.Namespace (include "replica-guard.fullname" .) }}
{{- end }}
{{- end -}}

{{- define "replica-guard.mutatingConfiguration" -}}
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {{ include "replica-guard.fullname" . }}
  labels:
    {{- include "replica-guard.labels" . | nindent 4 }}
  {{- with include "replica-guard.webhookAnnotations" . }}
  {{- . | nindent 2 }}
  {{- end }}
webhooks:
  {{- include "replica-guard.webhook" (dict "root" . "kind" "mutate") | nindent 2 }}
{{- end -}}

{{- define "replica-guard.validatingConfiguration" -}}
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {{ include "replica-guard.fullname" . }}
  labels:
    {{- include "replica-guard.labels" . | nindent 4 }}
  {{- with include "replica-guard.webhookAnnotations" . }}
  {{- . | nindent 2 }}
  {{- end }}
webhooks:
  {{- include "replica-guard.webhook" (dict "root" . "kind" "validate") | nindent 2 }}
{{- end -}}
