// Package plan decides what a NetworkMTUPolicy means for the cluster: the IP families, the
// underlay MTU, the calculator's result and the verdict the policy's conditions report. It
// is pure: controllers gather the inputs, call it, then write what it returns.
package plan

import (
	"errors"
	"fmt"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// Inputs is what the controller gathered.
type Inputs struct {
	Spec mtuv1alpha1.NetworkMTUPolicySpec
	// ClusterFamilies are the families of the kubernetes Service, used when the spec names none.
	ClusterFamilies []mtuv1alpha1.IPFamily
	// DetectedUnderlayMTU is the smallest underlay MTU the node agents reported; nil when no
	// node has reported yet. Used with AutoDetect.
	DetectedUnderlayMTU *int32
}

// Problem is a reason and a message for a condition.
type Problem struct {
	Reason  string
	Message string
}

// Outcome is the decision.
type Outcome struct {
	// Families used for the computation.
	Families []mtuv1alpha1.IPFamily
	// UnderlayMTU used for the computation; zero while it is unknown.
	UnderlayMTU int32
	// Result is the calculator's answer; valid when Stalled and Waiting are nil.
	Result mtu.Result
	// Stalled is set when the policy cannot progress without a change from a person.
	Stalled *Problem
	// Waiting is set when the policy is progressing but has nothing to compute yet.
	Waiting *Problem
}

// Decide computes the outcome for the inputs.
func Decide(in Inputs) Outcome {
	out := Outcome{Families: in.Spec.IPFamilies}
	if len(out.Families) == 0 {
		out.Families = in.ClusterFamilies
	}
	if len(out.Families) == 0 {
		out.Families = []mtuv1alpha1.IPFamily{mtuv1alpha1.IPv4}
	}

	switch in.Spec.Underlay.Source {
	case mtuv1alpha1.UnderlayAutoDetect:
		if in.DetectedUnderlayMTU == nil {
			out.Waiting = &Problem{mtuv1alpha1.ReasonProgressing, "waiting for node agents to report the underlay MTU"}
			return out
		}
		out.UnderlayMTU = *in.DetectedUnderlayMTU
	default:
		if in.Spec.Underlay.MTU == nil {
			out.Stalled = &Problem{mtuv1alpha1.ReasonInvalidPolicy, "underlay.mtu is required when underlay.source is Declared"}
			return out
		}
		out.UnderlayMTU = *in.Spec.Underlay.MTU
	}

	families := make([]mtu.Family, 0, len(out.Families))
	for _, f := range out.Families {
		families = append(families, mtu.Family(f))
	}
	res, err := mtu.Compute(mtu.Input{
		UnderlayMTU:   int(out.UnderlayMTU),
		Encapsulation: mtu.Encapsulation(in.Spec.Encapsulation.Type),
		Encryption:    mtu.Encryption(in.Spec.Encapsulation.Encryption),
		Families:      families,
	})
	if err != nil {
		out.Stalled = problemFor(err, out.Families)
		return out
	}
	out.Result = res
	return out
}

// problemFor explains a calculator error for a policy's conditions. The CRD rejects most of
// these at admission; they reach here when the families or the underlay were detected.
func problemFor(err error, families []mtuv1alpha1.IPFamily) *Problem {
	switch {
	case errors.Is(err, mtu.ErrBelowFloor):
		return &Problem{mtuv1alpha1.ReasonPodMTUBelowFloor, fmt.Sprintf("%v (IP families %v)", err, families)}
	case errors.Is(err, mtu.ErrUnsupported):
		return &Problem{mtuv1alpha1.ReasonUnsupported, fmt.Sprintf("%v (IP families %v)", err, families)}
	default:
		return &Problem{mtuv1alpha1.ReasonInvalidPolicy, err.Error()}
	}
}
