// Package chart tests the Helm chart (charts/mtu-operator) with Helm's own library: it lints,
// renders what config/default (and config/prometheus, config/grafana) render, so the two
// cannot drift, its values reach the objects they are for, and what it renders is accepted by
// a real API server, server-side applied.
package chart

import (
	"cmp"
	"context"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

const namespace = "mtu-operator-system"

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) func() { env = e; return nil }))
}

func chartDir(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "charts", "mtu-operator")
}

// render renders the chart as `helm install mtu-operator -n mtu-operator-system` would with
// the given values: the CRDs of crds/, then every template.
func render(t *testing.T, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	c, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(c, values, chartutil.ReleaseOptions{Name: "mtu-operator", Namespace: namespace, IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(c, vals)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	var out []*unstructured.Unstructured
	for _, crd := range c.CRDObjects() {
		out = append(out, parse(t, crd.Filename, string(crd.File.Data))...)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if strings.HasSuffix(name, ".yaml") {
			out = append(out, parse(t, name, files[name])...)
		}
	}
	return out
}

func parse(t *testing.T, name, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(manifest, "\n---") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("%s does not parse: %v\n%s", name, err, doc)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
	return out
}

// clusterScoped are the kinds without a namespace; kustomize sets one on them anyway.
var clusterScoped = []string{"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}

// byName indexes objects by kind and name, as the API server would store them: without a
// namespace when cluster-scoped, and without the Namespace object, which Helm's
// --create-namespace makes.
func byName(t *testing.T, objects []*unstructured.Unstructured) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, u := range objects {
		if u.GetKind() == "Namespace" {
			continue
		}
		if slices.Contains(clusterScoped, u.GetKind()) {
			u.SetNamespace("")
		}
		key := u.GetKind() + " " + u.GetName()
		if _, dup := out[key]; dup {
			t.Errorf("%s twice", key)
		}
		// Through JSON, so numbers and empty values compare alike whoever rendered them.
		b, err := u.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		again := &unstructured.Unstructured{}
		if err := again.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		out[key] = again.Object
	}
	return out
}

func kustomize(t *testing.T, dirs ...string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, dir := range dirs {
		objects, err := testenv.Render(dir)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, objects...)
	}
	return out
}

// TestChartRendersWhatKustomizeDoes: with its default values the chart renders config/default,
// object for object; with monitoring on, config/prometheus and config/grafana too.
func TestChartRendersWhatKustomizeDoes(t *testing.T) {
	for _, tt := range []struct {
		name   string
		values map[string]any
		dirs   []string
	}{
		{"default values", nil, []string{"config/default"}},
		{"monitoring on", map[string]any{"monitoring": map[string]any{"prometheusRule": true, "serviceMonitor": true, "dashboard": true}},
			[]string{"config/default", "config/prometheus", "config/grafana"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			helm, kust := byName(t, render(t, tt.values)), byName(t, kustomize(t, tt.dirs...))
			for key, want := range kust {
				got, ok := helm[key]
				if !ok {
					t.Errorf("the chart does not render %s", key)
					continue
				}
				if !reflect.DeepEqual(got, want) {
					g, _ := yaml.Marshal(got)
					w, _ := yaml.Marshal(want)
					t.Errorf("%s differs; the chart renders\n%s\nkustomize\n%s", key, g, w)
				}
			}
			for key := range helm {
				if _, ok := kust[key]; !ok {
					t.Errorf("the chart renders %s, which kustomize does not", key)
				}
			}
		})
	}
}

// TestValuesReachTheirObjects: images, resources, the agent's tolerations and node selector,
// and the CNI namespaces go where they are meant to.
func TestValuesReachTheirObjects(t *testing.T) {
	values := map[string]any{
		"manager": map[string]any{"image": "registry.example/mtu-manager:v1", "replicas": 3, "resources": map[string]any{"requests": map[string]any{"cpu": "100m"}}},
		"agent": map[string]any{
			"image": "registry.example/mtu-agent:v1", "resources": map[string]any{"limits": map[string]any{"memory": "256Mi"}},
			"tolerations":  []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "net", "effect": "NoSchedule"}},
			"nodeSelector": map[string]any{"kubernetes.io/os": "linux"},
		},
		"cniNamespaces": []any{"kube-flannel"},
	}
	objects := byName(t, render(t, values))
	get := func(key string, path ...string) any {
		t.Helper()
		o, ok := objects[key]
		if !ok {
			t.Fatalf("no %s", key)
		}
		v, found, err := unstructured.NestedFieldNoCopy(o, path...)
		if !found || err != nil {
			t.Fatalf("%s has no %v: %v", key, path, err)
		}
		return v
	}
	container := func(key string) map[string]any {
		return get(key, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"manager image", container("Deployment mtu-operator-manager")["image"], "registry.example/mtu-manager:v1"},
		{"manager replicas", get("Deployment mtu-operator-manager", "spec", "replicas"), int64(3)},
		// Helm merges maps of values with the defaults.
		{"manager resources", container("Deployment mtu-operator-manager")["resources"],
			map[string]any{"limits": map[string]any{"memory": "512Mi"}, "requests": map[string]any{"cpu": "100m", "memory": "64Mi"}}},
		{"agent image", container("DaemonSet mtu-operator-agent")["image"], "registry.example/mtu-agent:v1"},
		{"agent resources", container("DaemonSet mtu-operator-agent")["resources"],
			map[string]any{"limits": map[string]any{"memory": "256Mi"}, "requests": map[string]any{"cpu": "10m", "memory": "32Mi"}}},
		{"agent tolerations", get("DaemonSet mtu-operator-agent", "spec", "template", "spec", "tolerations"),
			[]any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "net", "effect": "NoSchedule"}}},
		{"agent node selector", get("DaemonSet mtu-operator-agent", "spec", "template", "spec", "nodeSelector"), map[string]any{"kubernetes.io/os": "linux"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	validations := get("ValidatingAdmissionPolicy mtu-operator-manager-changes-only-its-fields", "spec", "validations").([]any)
	first := validations[0].(map[string]any)
	if want := "request.resource.resource == 'pods' || request.namespace in ['kube-flannel']"; first["expression"] != want {
		t.Errorf("the manager's admission policy says %q, want %q", first["expression"], want)
	}
	if !strings.HasSuffix(first["message"].(string), "namespaces (kube-flannel)") {
		t.Errorf("its message says %q", first["message"])
	}
}

// TestChartLints: helm lint finds nothing to say, with the default values and with every
// option on.
func TestChartLints(t *testing.T) {
	for _, values := range []map[string]any{nil, {"monitoring": map[string]any{"prometheusRule": true, "serviceMonitor": true, "dashboard": true}}} {
		linter := lint.All(chartDir(t), values, namespace, false)
		for _, m := range linter.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("helm lint: %s", m)
			}
		}
	}
}

// TestChartAppliesToAnAPIServer: what the chart renders is accepted by a real API server,
// server-side applied as `helm install --server-side` would (the CRDs first); the admission
// policies' CEL, with the values in it, compiles there.
func TestChartAppliesToAnAPIServer(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{}
	ns.Name = namespace
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	objects := render(t, map[string]any{"cniNamespaces": []any{"kube-flannel", "kube-system", "calico-system"}, "monitoring": map[string]any{"dashboard": true}})
	crdsFirst := func(u *unstructured.Unstructured) int {
		if u.GetKind() == "CustomResourceDefinition" {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(objects, func(a, b *unstructured.Unstructured) int { return cmp.Compare(crdsFirst(a), crdsFirst(b)) })
	for _, u := range objects {
		//nolint:staticcheck // the typed Apply needs generated apply configurations
		if err := env.Client.Patch(ctx, u, client.Apply, client.FieldOwner("helm"), client.ForceOwnership); err != nil {
			t.Errorf("applying %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("applied %d objects", len(objects))
	// Back out what this test made in the shared API server.
	for _, u := range slices.Backward(objects) {
		_ = env.Client.Delete(ctx, u)
	}
}
