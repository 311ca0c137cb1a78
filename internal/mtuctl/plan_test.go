package mtuctl

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// TestWritePlan: the CNI's fields apart from the nodes' interfaces, the restarts, the pods an
// inventory found at another MTU on the selected nodes only, and what would stop it.
func TestWritePlan(t *testing.T) {
	p := &mtuv1alpha1.NetworkMTUPolicy{}
	p.Name = "lower"
	p.Spec.StalePods.Action = mtuv1alpha1.StalePodEvict
	p.Status = mtuv1alpha1.NetworkMTUPolicyStatus{
		CNI: mtuv1alpha1.CNIFlannel, UnderlayMTU: 1500, PodMTU: 1450,
		Tunnels: []mtuv1alpha1.TunnelMTU{{Family: mtuv1alpha1.IPv4, MTU: 1450}},
		PlannedChanges: []mtuv1alpha1.ConfigChange{
			{Resource: "ConfigMap kube-flannel/kube-flannel-cfg", Path: "net-conf.json: Backend.MTU", To: "1450"},
			{Resource: "Node node-a", Path: "flannel.1 mtu", From: "8950", To: "1450"},
		},
		AgentRestarts: []string{"kube-flannel/kube-flannel-ds"},
		Conditions: []metav1.Condition{
			{Type: mtuv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: mtuv1alpha1.ReasonPathMTUBlackHole, Message: "node-a → node-c: the path carries 1300"},
		},
	}
	state := func(name string, at, pods int32) mtuv1alpha1.NodeMTUState {
		s := mtuv1alpha1.NodeMTUState{}
		s.Name = name
		s.Status.ActualPodMTU, s.Status.Pods = at, pods
		return s
	}
	states := []mtuv1alpha1.NodeMTUState{state("node-a", 8950, 4), state("node-b", 1450, 2), state("node-c", 8950, 3), state("node-x", 8950, 50)}
	var out strings.Builder
	if err := WritePlan(&out, p, []string{"node-a", "node-b", "node-c"}, states); err != nil {
		t.Fatal(err)
	}
	want := `Applying NetworkMTUPolicy lower would (nothing was written):
  size:      underlay 1500, pods 1450, tunnel IPv4 1450 (Flannel); 3 node(s) selected
  CNI configuration:
    ConfigMap kube-flannel/kube-flannel-cfg net-conf.json: Backend.MTU: (unset) → 1450
  node interfaces:
    node-a flannel.1 mtu: 8950 → 1450
  CNI agents restarted:
    kube-flannel/kube-flannel-ds
  stale pods: about 7 pod(s) on 2 node(s), at 8950 now, keep that MTU until recreated (stalePods.action: Evict)
  it would stop: PathMTUBlackHole: node-a → node-c: the path carries 1300
`
	if out.String() != want {
		t.Errorf("WritePlan =\n%s\nwant\n%s", out.String(), want)
	}
}
