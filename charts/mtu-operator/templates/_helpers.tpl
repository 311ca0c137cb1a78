{{/* Labels of every object, as config/default's kustomization sets them. */}}
{{- define "mtu-operator.partOf" -}}
app.kubernetes.io/part-of: mtu-operator
{{- end }}

{{/* Labels of a component's objects and pods. */}}
{{- define "mtu-operator.component" -}}
app.kubernetes.io/component: {{ . }}
app.kubernetes.io/name: mtu-operator
{{- end }}

{{/* The CNI namespaces as a CEL list: ['kube-flannel', 'kube-system']. */}}
{{- define "mtu-operator.cniNamespacesCEL" -}}
[{{ range $i, $ns := .Values.cniNamespaces }}{{ if $i }}, {{ end }}'{{ $ns }}'{{ end }}]
{{- end }}
