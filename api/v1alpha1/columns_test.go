package v1alpha1_test

import (
	"context"
	"testing"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

// TestNodeStateColumns: `kubectl get nodemtustates` shows each node's phase, and the MTU its
// pods are at beside the target. The API server renders the Table from the CRD's printer
// columns, as it does for kubectl.
func TestNodeStateColumns(t *testing.T) {
	ctx := context.Background()
	s := &mtuv1alpha1.NodeMTUState{}
	s.Name = "columns-node"
	s.Spec = mtuv1alpha1.NodeMTUStateSpec{Policy: "jumbo", Phase: mtuv1alpha1.PhaseConverge, PodMTU: 8950}
	if err := env.Client.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, s) })
	s.Status = mtuv1alpha1.NodeMTUStateStatus{UnderlayMTU: 9000, ActualPodMTU: 1450, StalePodCount: 3, Pods: 3}
	if err := env.Client.Status().Update(ctx, s); err != nil {
		t.Fatal(err)
	}

	got, err := testenv.TableRow(ctx, env.Config, mtuv1alpha1.GroupVersion, "nodemtustates", s.Name)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Policy": "jumbo", "Phase": "Converge", "Underlay": "9000", "Pod MTU": "8950", "Pods At": "1450", "Stale Pods": "3"}
	for col, v := range want {
		if got[col] != v {
			t.Errorf("column %q = %q; want %q (row %v)", col, got[col], v, got)
		}
	}
}
