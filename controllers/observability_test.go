package controllers

import (
	"context"
	"fmt"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/metrics"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

// TestPrinterColumns: `kubectl get networkmtupolicies` shows the computed values. The API
// server renders the Table from the CRD's printer columns, as it does for kubectl.
func TestPrinterColumns(t *testing.T) {
	flannelFixture(t, flannelNetConf)
	p := newPolicy("printer-columns", 9000, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, p)
	waitForStatus(t, p, ready)

	got, err := testenv.TableRow(context.Background(), env.Config, mtuv1alpha1.GroupVersion, "networkmtupolicies", p.Name)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Name": "printer-columns", "Underlay": "9000", "Encap": "VXLAN", "Pod MTU": "8950", "Ready": "True", "Mode": "Apply", "Reason": mtuv1alpha1.ReasonReconciled}
	for col, v := range want {
		if got[col] != v {
			t.Errorf("column %q = %q; want %q (row %v)", col, got[col], v, got)
		}
	}
}

// TestMetrics: the policy's computed MTUs, conditions and writes are exported.
func TestMetrics(t *testing.T) {
	flannelFixture(t, flannelNetConf)
	p := newPolicy("metrics", 9000, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, p)
	waitForStatus(t, p, ready)

	value := func(name string, labels map[string]string) (float64, bool) {
		families, err := metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
		metric:
			for _, m := range f.GetMetric() {
				have := map[string]string{}
				for _, l := range m.GetLabel() {
					have[l.GetName()] = l.GetValue()
				}
				for k, v := range labels {
					if have[k] != v {
						continue metric
					}
				}
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue(), true
				}
				return m.GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   func(float64) bool
		says   string
	}{
		{"mtu_operator_computed_mtu_bytes", map[string]string{"policy": "metrics", "kind": "pod"}, func(v float64) bool { return v == 8950 }, "8950"},
		{"mtu_operator_computed_mtu_bytes", map[string]string{"policy": "metrics", "kind": "tunnel_ipv4"}, func(v float64) bool { return v == 8950 }, "8950"},
		{"mtu_operator_policy_condition", map[string]string{"policy": "metrics", "type": "Ready", "status": "True"}, func(v float64) bool { return v == 1 }, "1"},
		{"mtu_operator_policy_condition", map[string]string{"policy": "metrics", "type": "Stalled", "status": "True"}, func(v float64) bool { return v == 0 }, "0"},
		{"mtu_operator_config_writes_total", map[string]string{"policy": "metrics", "cni": "Flannel"}, func(v float64) bool { return v >= 1 }, "at least 1"},
		{"mtu_operator_drift_corrections_total", map[string]string{"policy": "metrics", "cni": "Flannel"}, func(v float64) bool { return v == 0 }, "0, from the start"},
		{"mtu_operator_policy_migration_phase", map[string]string{"policy": "metrics", "phase": "Done"}, func(v float64) bool { return v == 1 }, "1"},
		{"mtu_operator_policy_migration_phase", map[string]string{"policy": "metrics", "phase": "Gathering"}, func(v float64) bool { return v == 0 }, "0"},
		{"mtu_operator_policy_nodes", map[string]string{"policy": "metrics", "state": "failed"}, func(v float64) bool { return v == 0 }, "0"},
	}
	// The controller records metrics right after it writes the status the test waited for.
	for _, c := range checks {
		eventually(t, c.name, func() error {
			if v, ok := value(c.name, c.labels); !ok || !c.want(v) {
				return fmt.Errorf("%s%v = %v (present %v); want %s", c.name, c.labels, v, ok, c.says)
			}
			return nil
		})
	}
}
