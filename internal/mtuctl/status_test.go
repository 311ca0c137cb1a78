package mtuctl

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

func TestNeedsRetry(t *testing.T) {
	tx := func(o mtuv1alpha1.TransactionOutcome) *mtuv1alpha1.Transaction {
		return &mtuv1alpha1.Transaction{Outcome: o}
	}
	for _, tt := range []struct {
		name  string
		state mtuv1alpha1.NodeMTUStateStatus
		want  bool
	}{
		{"nothing done yet", mtuv1alpha1.NodeMTUStateStatus{}, false},
		{"committed", mtuv1alpha1.NodeMTUStateStatus{LastTransaction: tx(mtuv1alpha1.TransactionCommitted)}, false},
		{"rolled back", mtuv1alpha1.NodeMTUStateStatus{LastTransaction: tx(mtuv1alpha1.TransactionRolledBack)}, true},
		{"failed", mtuv1alpha1.NodeMTUStateStatus{LastTransaction: tx(mtuv1alpha1.TransactionFailed)}, true},
		{"a path check failed", mtuv1alpha1.NodeMTUStateStatus{LastTransaction: tx(mtuv1alpha1.TransactionCommitted), Verification: &mtuv1alpha1.Verification{Passed: false}}, true},
		{"a path check passed", mtuv1alpha1.NodeMTUStateStatus{Verification: &mtuv1alpha1.Verification{Passed: true}}, false},
	} {
		if got := NeedsRetry(mtuv1alpha1.NodeMTUState{Status: tt.state}); got != tt.want {
			t.Errorf("%s: NeedsRetry = %t, want %t", tt.name, got, tt.want)
		}
	}
}

// TestWriteStatus: a stalled rollout as a person reads it: the policy's numbers and
// conditions, its nodes only and in order, the short paths by name, the stale pods.
func TestWriteStatus(t *testing.T) {
	p := &mtuv1alpha1.NetworkMTUPolicy{}
	p.Name = "jumbo"
	p.Spec.Mode, p.Spec.Encapsulation.Type = mtuv1alpha1.ModeApply, mtuv1alpha1.EncapsulationVXLAN
	p.Status = mtuv1alpha1.NetworkMTUPolicyStatus{
		CNI: mtuv1alpha1.CNIFlannel, UnderlayMTU: 9000, PodMTU: 8950,
		Tunnels:   []mtuv1alpha1.TunnelMTU{{Family: mtuv1alpha1.IPv4, MTU: 8950}},
		Nodes:     mtuv1alpha1.NodeCounts{Selected: 2, Converged: 1, Failed: 1},
		Migration: &mtuv1alpha1.MigrationStatus{Phase: mtuv1alpha1.MigrationRaisingDevices, RoutableMTU: 1450},
		Conditions: []metav1.Condition{
			{Type: mtuv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: mtuv1alpha1.ReasonNodeFailed, Message: "node-b rolled back"},
			{Type: mtuv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: mtuv1alpha1.ReasonNodeFailed, Message: "stalled"},
			{Type: mtuv1alpha1.ConditionReconciling, Status: metav1.ConditionFalse, Reason: mtuv1alpha1.ReasonNodeFailed, Message: "stalled"},
			{Type: mtuv1alpha1.ConditionUnderlayConsistent, Status: metav1.ConditionTrue, Reason: mtuv1alpha1.ReasonUnderlayMatches, Message: "all 2"},
			{Type: mtuv1alpha1.ConditionCNIDetected, Status: metav1.ConditionTrue, Reason: mtuv1alpha1.ReasonCNIFound, Message: "Flannel"},
			{Type: mtuv1alpha1.ConditionNodesConverged, Status: metav1.ConditionFalse, Reason: mtuv1alpha1.ReasonNodeFailed, Message: "RaisingDevices stopped: node-b rolled back; retry"},
			{Type: mtuv1alpha1.ConditionPathMTUVerified, Status: metav1.ConditionFalse, Reason: mtuv1alpha1.ReasonPathMTUBlackHole, Message: "1 path(s) carry less"},
		},
	}
	state := func(name, policy string) mtuv1alpha1.NodeMTUState {
		s := mtuv1alpha1.NodeMTUState{}
		s.Name = name
		s.Spec = mtuv1alpha1.NodeMTUStateSpec{Policy: policy, Phase: mtuv1alpha1.PhaseConverge, PodMTU: 8950}
		s.Status = mtuv1alpha1.NodeMTUStateStatus{UnderlayMTU: 9000, OverlayMTU: 1450, ActualPodMTU: 1450, UnderlayAddresses: []string{"10.0.0." + name[len(name)-1:]}}
		return s
	}
	a, b, other := state("node-a", "jumbo"), state("node-b", "jumbo"), state("node-z", "other")
	a.Status.RouteMTU = ptr.To[int32](1450)
	a.Status.LastTransaction = &mtuv1alpha1.Transaction{Outcome: mtuv1alpha1.TransactionCommitted}
	b.Status.LastTransaction = &mtuv1alpha1.Transaction{Outcome: mtuv1alpha1.TransactionRolledBack}
	b.Status.Paths = []mtuv1alpha1.PathMTU{{Peer: "10.0.0.a", Layer: mtuv1alpha1.PathLayerUnderlay, Expected: 9000, Measured: 1500}}
	b.Status.StalePodCount = 1
	b.Status.StalePods = []mtuv1alpha1.StalePod{{Namespace: "default", Name: "web-1", Interface: "eth0", MTU: 1450}}
	a.Status.UnderlayAddresses = []string{"10.0.0.a"}

	var out strings.Builder
	if err := WriteStatus(&out, p, []mtuv1alpha1.NodeMTUState{b, other, a}); err != nil {
		t.Fatal(err)
	}
	want := `NetworkMTUPolicy jumbo (Apply, Flannel, VXLAN)
  MTUs:       underlay 9000, pods 8950, tunnel IPv4 8950
  Migration:  RaisingDevices (routes pinned to 1450); nodes 2 selected, 1 converged, 1 failed
  Ready:      False NodeChangeFailed
  Stalled:    NodeChangeFailed: node-b rolled back
  NodesConverged: False NodeChangeFailed (as the stall says)
  PathMTUVerified: False PathMTUBlackHole: 1 path(s) carry less
  True:       CNIDetected, UnderlayConsistent

NODE    PHASE     UNDERLAY  TUNNEL  PODS AT  TARGET  PIN   LAST CHANGE         SHORT PATHS  STALE PODS
node-a  Converge  9000      1450    1450     8950    1450  Committed           0            0
node-b  Converge  9000      1450    1450     8950    -     RolledBack (retry)  1            1

Short paths (worst first):
  node-b → node-a: the path carries 1500, the NICs 9000

Stale pods:
  default/web-1 on node-b: eth0 at 1450
`
	if out.String() != want {
		t.Errorf("WriteStatus =\n%s\nwant\n%s", out.String(), want)
	}
}
