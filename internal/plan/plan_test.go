package plan

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

func spec(source mtuv1alpha1.UnderlaySource, underlay int32, encap mtuv1alpha1.EncapsulationType, families ...mtuv1alpha1.IPFamily) mtuv1alpha1.NetworkMTUPolicySpec {
	s := mtuv1alpha1.NetworkMTUPolicySpec{IPFamilies: families}
	s.Underlay.Source = source
	if underlay != 0 {
		s.Underlay.MTU = &underlay
	}
	s.Encapsulation.Type = encap
	s.Encapsulation.Encryption = mtuv1alpha1.EncryptionNone
	return s
}

func TestDecide(t *testing.T) {
	detected := int32(1500)
	tests := []struct {
		name         string
		in           Inputs
		wantFamilies string
		wantUnderlay int32
		wantPod      int
		wantStalled  string // reason
		wantWaiting  bool
	}{
		{"declared IPv4 from the cluster", Inputs{Spec: spec("Declared", 9000, "VXLAN"), ClusterFamilies: []mtuv1alpha1.IPFamily{"IPv4"}}, "[IPv4]", 9000, 8950, "", false},
		{"spec families win over the cluster's", Inputs{Spec: spec("Declared", 9000, "VXLAN", "IPv4", "IPv6"), ClusterFamilies: []mtuv1alpha1.IPFamily{"IPv4"}}, "[IPv4 IPv6]", 9000, 8930, "", false},
		{"dual-stack cluster pays the IPv6 overhead", Inputs{Spec: spec("Declared", 9000, "Geneve"), ClusterFamilies: []mtuv1alpha1.IPFamily{"IPv6", "IPv4"}}, "[IPv6 IPv4]", 9000, 8930, "", false},
		{"no families anywhere means IPv4", Inputs{Spec: spec("Declared", 1500, "None")}, "[IPv4]", 1500, 1500, "", false},
		{"auto-detect waits for nodes", Inputs{Spec: spec("AutoDetect", 0, "VXLAN")}, "[IPv4]", 0, 0, "", true},
		{"auto-detect uses the smallest reported", Inputs{Spec: spec("AutoDetect", 0, "VXLAN"), DetectedUnderlayMTU: &detected}, "[IPv4]", 1500, 1450, "", false},
		// The CRD cannot know a detected family: 1300 − 70 = 1230 < 1280 only once IPv6 is seen.
		{"detected IPv6 pushes the pod below 1280", Inputs{Spec: spec("Declared", 1300, "VXLAN"), ClusterFamilies: []mtuv1alpha1.IPFamily{"IPv6"}}, "[IPv6]", 1300, 0, mtuv1alpha1.ReasonPodMTUBelowFloor, false},
		{"detected IPv6 with IPIP", Inputs{Spec: spec("Declared", 9000, "IPIP"), ClusterFamilies: []mtuv1alpha1.IPFamily{"IPv4", "IPv6"}}, "[IPv4 IPv6]", 9000, 0, mtuv1alpha1.ReasonUnsupported, false},
		{"declared without an MTU", Inputs{Spec: spec("Declared", 0, "VXLAN")}, "[IPv4]", 0, 0, mtuv1alpha1.ReasonInvalidPolicy, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(tc.in)
			if fmt.Sprint(got.Families) != tc.wantFamilies || got.UnderlayMTU != tc.wantUnderlay {
				t.Errorf("families %v underlay %d; want %s %d", got.Families, got.UnderlayMTU, tc.wantFamilies, tc.wantUnderlay)
			}
			switch {
			case tc.wantStalled != "":
				if got.Stalled == nil || got.Stalled.Reason != tc.wantStalled {
					t.Fatalf("stalled %v; want reason %s", got.Stalled, tc.wantStalled)
				}
			case tc.wantWaiting:
				if got.Waiting == nil || got.Stalled != nil {
					t.Fatalf("waiting %v stalled %v; want waiting", got.Waiting, got.Stalled)
				}
			default:
				if got.Stalled != nil || got.Waiting != nil || got.Result.PodMTU != tc.wantPod {
					t.Fatalf("stalled %v waiting %v pod %d; want pod %d", got.Stalled, got.Waiting, got.Result.PodMTU, tc.wantPod)
				}
			}
		})
	}
}

func TestVerdictConditions(t *testing.T) {
	p := &Problem{Reason: "SomeReason", Message: "some message"}
	tests := []struct {
		name                        string
		v                           Verdict
		ready, reconciling, stalled metav1.ConditionStatus
	}{
		{"stalled", Verdict{Stalled: p, Progressing: p}, "False", "False", "True"},
		{"progressing", Verdict{Progressing: p}, "False", "True", "False"},
		{"ready", Verdict{Ready: "all good"}, "True", "False", "False"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]metav1.Condition{}
			for _, c := range tc.v.Conditions(7) {
				got[c.Type] = c
				if c.ObservedGeneration != 7 || c.Reason == "" {
					t.Errorf("%s: observedGeneration %d reason %q", c.Type, c.ObservedGeneration, c.Reason)
				}
			}
			if got["Ready"].Status != tc.ready || got["Reconciling"].Status != tc.reconciling || got["Stalled"].Status != tc.stalled {
				t.Errorf("Ready %s Reconciling %s Stalled %s; want %s %s %s", got["Ready"].Status, got["Reconciling"].Status, got["Stalled"].Status, tc.ready, tc.reconciling, tc.stalled)
			}
		})
	}
}
