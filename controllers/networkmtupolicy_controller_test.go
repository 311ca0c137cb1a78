package controllers

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

func newPolicy(name string, underlay int32, encap mtuv1alpha1.EncapsulationType, families ...mtuv1alpha1.IPFamily) *mtuv1alpha1.NetworkMTUPolicy {
	p := &mtuv1alpha1.NetworkMTUPolicy{}
	p.Name = name
	p.Spec.Underlay.MTU = &underlay
	p.Spec.Encapsulation.Type = encap
	p.Spec.IPFamilies = families
	return p
}

// waitForStatus waits until the policy's status describes its current generation and check
// accepts it.
func waitForStatus(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy, check func(*mtuv1alpha1.NetworkMTUPolicy) error) *mtuv1alpha1.NetworkMTUPolicy {
	t.Helper()
	got := &mtuv1alpha1.NetworkMTUPolicy{}
	eventually(t, "status of "+p.Name, func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), got); err != nil {
			return err
		}
		if got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
		}
		return check(got)
	})
	return got
}

func condition(p *mtuv1alpha1.NetworkMTUPolicy, t string) metav1.Condition {
	if c := meta.FindStatusCondition(p.Status.Conditions, t); c != nil {
		return *c
	}
	return metav1.Condition{Type: t, Status: "absent"}
}

func TestPolicyStatusShowsComputedMTUs(t *testing.T) {
	tests := []struct {
		name     string
		underlay int32
		encap    mtuv1alpha1.EncapsulationType
		families []mtuv1alpha1.IPFamily
		// wantFamilies is what status reports; the envtest cluster's Service is IPv4.
		wantFamilies string
		wantPod      int32
		wantTunnels  string
	}{
		{"jumbo-vxlan", 9000, mtuv1alpha1.EncapsulationVXLAN, nil, "[IPv4]", 8950, "[{IPv4 8950}]"},
		{"dual-stack-vxlan", 9000, mtuv1alpha1.EncapsulationVXLAN, []mtuv1alpha1.IPFamily{"IPv4", "IPv6"}, "[IPv4 IPv6]", 8930, "[{IPv4 8950} {IPv6 8930}]"},
		{"noencap", 1500, mtuv1alpha1.EncapsulationNone, nil, "[IPv4]", 1500, "[]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPolicy(tc.name, tc.underlay, tc.encap, tc.families...)
			createPolicy(t, p)
			got := waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
				if p.Status.PodMTU != tc.wantPod {
					return fmt.Errorf("podMTU %d", p.Status.PodMTU)
				}
				return nil
			})
			if fmt.Sprint(got.Status.IPFamilies) != tc.wantFamilies || got.Status.UnderlayMTU != tc.underlay {
				t.Errorf("families %v, underlay %d; want %s, %d", got.Status.IPFamilies, got.Status.UnderlayMTU, tc.wantFamilies, tc.underlay)
			}
			tunnels := "[]"
			if len(got.Status.Tunnels) > 0 {
				tunnels = fmt.Sprint(got.Status.Tunnels)
			}
			if tunnels != tc.wantTunnels {
				t.Errorf("tunnels %s; want %s", tunnels, tc.wantTunnels)
			}
			for _, ct := range []string{mtuv1alpha1.ConditionReady, mtuv1alpha1.ConditionReconciling, mtuv1alpha1.ConditionStalled} {
				if c := condition(got, ct); c.ObservedGeneration != got.Generation {
					t.Errorf("%s observedGeneration %d; want %d", ct, c.ObservedGeneration, got.Generation)
				}
			}
		})
	}
}

// TestConditionsKeepTransitionTimeOnRepeat: a reconcile that changes nothing leaves
// lastTransitionTime where it was.
func TestConditionsKeepTransitionTimeOnRepeat(t *testing.T) {
	p := newPolicy("transition-time", 9000, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, p)
	first := waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.PodMTU == 0 {
			return fmt.Errorf("no pod MTU yet")
		}
		return nil
	})
	before := condition(first, mtuv1alpha1.ConditionReady).LastTransitionTime

	// A label change does not bump the generation; an annotation-only spec edit would not
	// either. Change the spec to something with the same outcome instead: the rollout pace.
	ctx := context.Background()
	patch := client.MergeFrom(first.DeepCopy())
	first.Spec.Rollout.MaxUnavailable = nil
	first.Spec.StalePods.Action = mtuv1alpha1.StalePodReport
	first.Spec.Mode = mtuv1alpha1.ModeApply
	first.Spec.CNI.AgentRestart = mtuv1alpha1.AgentRestartNever
	if err := env.Client.Patch(ctx, first, patch); err != nil {
		t.Fatal(err)
	}
	second := waitForStatus(t, first, func(*mtuv1alpha1.NetworkMTUPolicy) error { return nil })
	if second.Generation == 1 {
		t.Fatalf("spec edit did not bump the generation")
	}
	ready := condition(second, mtuv1alpha1.ConditionReady)
	if !ready.LastTransitionTime.Equal(&before) {
		t.Errorf("Ready lastTransitionTime moved from %v to %v although Ready stayed %s", before, ready.LastTransitionTime, ready.Status)
	}
	if ready.ObservedGeneration != second.Generation {
		t.Errorf("Ready observedGeneration %d; want %d", ready.ObservedGeneration, second.Generation)
	}
}
