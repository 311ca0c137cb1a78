// Package alerts tests what users monitor the operator with: the Grafana dashboard's queries
// (config/grafana) and the PrometheusRule users install (config/prometheus/rules.yaml) with
// Prometheus' own promtool, built from its pinned module (make promtool): the rules are
// checked, and their unit tests (testdata/rules_test.yaml) run against series named and
// labeled as the binaries export them. That the names exist is checked where the binaries'
// code runs: the agent suite's TestFailedNodeHaltsTheRollout gathers what the manager's and
// the agents' code registered, mid-failure, and finds every name the rules read.
package alerts

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

// promtool finds the pinned promtool, or skips (fails under CI=true) without it.
func promtool(t *testing.T) string {
	t.Helper()
	path := os.Getenv("PROMTOOL") // set by the Makefile
	if path == "" {
		path = "../../bin/promtool"
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found at %s: make test builds it (make promtool)", path)
		}
		t.Skipf("promtool not found at %s: run make promtool, or set PROMTOOL", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// rules reads the PrometheusRule of config/prometheus as kustomize renders it, and writes its
// groups, as a Prometheus rule file, to dir.
func rules(t *testing.T, dir string) ruleFile {
	t.Helper()
	objects, err := testenv.Render("config/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(objects, func(u *unstructured.Unstructured) bool { return u.GetKind() == "PrometheusRule" })
	if i < 0 {
		t.Fatal("config/prometheus has no PrometheusRule")
	}
	groups, err := yaml.Marshal(objects[i].Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), groups, 0o644); err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(groups, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func run(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

// TestRules: promtool accepts the rules and every alert behaves as its unit test says.
func TestRules(t *testing.T) {
	dir := t.TempDir()
	rules(t, dir)
	tests, err := os.ReadFile("testdata/rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "check", "rules", "rules.yaml")
	run(t, dir, "test", "rules", "rules_test.yaml")
}

// TestEveryAlertIsTestedAndHasARunbook: each alert has a unit test, a severity, a summary, and
// a runbook_url whose section exists in docs/runbooks.md.
func TestEveryAlertIsTestedAndHasARunbook(t *testing.T) {
	f := rules(t, t.TempDir())
	tests, err := os.ReadFile("testdata/rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	runbooks, err := os.ReadFile("../../docs/runbooks.md")
	if err != nil {
		t.Fatal(err)
	}
	var sections []string
	for _, line := range strings.Split(string(runbooks), "\n") {
		if title, ok := strings.CutPrefix(line, "## "); ok {
			sections = append(sections, strings.ToLower(title))
		}
	}
	tested := regexp.MustCompile(`alertname: (\w+)`).FindAllStringSubmatch(string(tests), -1)
	alerts := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !slices.ContainsFunc(tested, func(m []string) bool { return m[1] == r.Alert }) {
				t.Errorf("%s has no unit test in testdata/rules_test.yaml", r.Alert)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: want a severity and a summary", r.Alert)
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], "https://github.com/mtu-operator/mtu-operator/blob/main/docs/runbooks.md#")
			if !ok || anchor != strings.ToLower(r.Alert) || !slices.Contains(sections, anchor) {
				t.Errorf("%s: runbook_url %q, want docs/runbooks.md#%s, a section of that file", r.Alert, r.Annotations["runbook_url"], strings.ToLower(r.Alert))
			}
		}
	}
	if alerts == 0 {
		t.Fatal("no alert in config/prometheus/rules.yaml")
	}
}

// TestMonitorsScrapeWhatIsInstalled: each ServiceMonitor selects a Service of
// config/prometheus, and that Service selects the pods of config/default on the port their
// metrics are served on.
func TestMonitorsScrapeWhatIsInstalled(t *testing.T) {
	monitoring, err := testenv.Render("config/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	installed, err := testenv.Render("config/default")
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]*corev1.Service{}
	for _, u := range monitoring {
		if u.GetKind() == "Service" {
			s := &corev1.Service{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, s); err != nil {
				t.Fatal(err)
			}
			services[s.Name] = s
		}
	}
	// The pods of each workload, with the port their --metrics-bind-address names.
	type workload struct {
		labels map[string]string
		port   string
		named  map[string]int32
	}
	var workloads []workload
	for _, u := range installed {
		var tmpl corev1.PodTemplateSpec
		switch u.GetKind() {
		case "Deployment":
			d := &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, d); err != nil {
				t.Fatal(err)
			}
			tmpl = d.Spec.Template
		case "DaemonSet":
			d := &appsv1.DaemonSet{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, d); err != nil {
				t.Fatal(err)
			}
			tmpl = d.Spec.Template
		default:
			continue
		}
		w := workload{labels: tmpl.Labels, named: map[string]int32{}}
		for _, c := range tmpl.Spec.Containers {
			for _, a := range c.Args {
				if addr, ok := strings.CutPrefix(a, "--metrics-bind-address="); ok {
					_, w.port, _ = strings.Cut(addr, ":")
				}
			}
			for _, p := range c.Ports {
				w.named[p.Name] = p.ContainerPort
			}
		}
		workloads = append(workloads, w)
	}
	monitors := 0
	for _, u := range monitoring {
		if u.GetKind() != "ServiceMonitor" {
			continue
		}
		monitors++
		selector, _, _ := unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels")
		endpoints, _, _ := unstructured.NestedSlice(u.Object, "spec", "endpoints")
		var svc *corev1.Service
		for _, s := range services {
			if labels.SelectorFromSet(selector).Matches(labels.Set(s.Labels)) {
				if svc != nil {
					t.Errorf("ServiceMonitor %s selects both %s and %s", u.GetName(), svc.Name, s.Name)
				}
				svc = s
			}
		}
		if svc == nil || len(endpoints) != 1 {
			t.Errorf("ServiceMonitor %s selects no Service (or has %d endpoints)", u.GetName(), len(endpoints))
			continue
		}
		port, _ := endpoints[0].(map[string]any)["port"].(string)
		i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == port })
		if i < 0 {
			t.Errorf("ServiceMonitor %s scrapes port %q, which Service %s does not have", u.GetName(), port, svc.Name)
			continue
		}
		target := svc.Spec.Ports[i].TargetPort
		served := false
		for _, w := range workloads {
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.labels)) {
				continue
			}
			want := target.String()
			if target.StrVal != "" {
				want = fmt.Sprint(w.named[target.StrVal])
			}
			if want != w.port {
				t.Errorf("Service %s sends to port %s of pods that serve metrics on %s", svc.Name, want, w.port)
			}
			served = true
		}
		if !served {
			t.Errorf("Service %s selects no pod of config/default", svc.Name)
		}
	}
	if monitors != 2 {
		t.Errorf("%d ServiceMonitors, want the manager's and the agents'", monitors)
	}
}

// dashboardQueries are the PromQL queries of the Grafana dashboard users install (rendered
// from config/grafana), with its variables given values Prometheus parses.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	objects, err := testenv.Render("config/grafana")
	if err != nil {
		t.Fatal(err)
	}
	if len(objects) != 1 || objects[0].GetKind() != "ConfigMap" || objects[0].GetLabels()["grafana_dashboard"] != "1" {
		t.Fatalf("config/grafana renders %d objects; want one ConfigMap labeled for Grafana's sidecar", len(objects))
	}
	raw, _, _ := unstructured.NestedString(objects[0].Object, "data", "mtu-operator.json")
	var dashboard struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal([]byte(raw), &dashboard); err != nil || dashboard.UID == "" {
		t.Fatalf("the dashboard does not parse: %v", err)
	}
	variables := strings.NewReplacer(`"$policy"`, `".+"`, `"$node"`, `".+"`, "$__rate_interval", "5m")
	queries := map[string]string{}
	for _, p := range dashboard.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, target := range p.Targets {
			expr := variables.Replace(target.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q: a variable the test does not know: %s", p.Title, target.Expr)
			}
			queries[fmt.Sprintf("%s #%d", p.Title, i+1)] = expr
		}
	}
	for _, v := range dashboard.Templating.List {
		if inner, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
			metric, _, _ := strings.Cut(inner, ",")
			queries["variable "+v.Name] = metric
		}
	}
	return queries
}

// TestDashboardQueriesParse: promtool parses every query of the dashboard (as recording rules).
func TestDashboardQueriesParse(t *testing.T) {
	queries := dashboardQueries(t)
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, title := range slices.Sorted(maps.Keys(queries)) {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", i), Expr: queries[title]})
	}
	file, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yaml"), file, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "check", "rules", "dashboard.yaml")
}
