package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NetworkMTUTransitionSpec is what every node of a policy acts on at the same moment.
type NetworkMTUTransitionSpec struct {
	// policy is the NetworkMTUPolicy this transition belongs to (also its name).
	// +kubebuilder:validation:MaxLength=253
	// +required
	Policy string `json:"policy"`
	// pinsReleasedGeneration releases the route pins that the policy's NodeMTUState specs
	// carry for policy generations up to and including it: each agent drops such a pin without
	// a spec written or a report made. It only grows.
	// +kubebuilder:validation:Minimum=0
	// +optional
	PinsReleasedGeneration int64 `json:"pinsReleasedGeneration,omitempty"`
	// probing is the schedule of the agents' probes between rollouts; unset while the policy
	// is not Ready, or when its pathProbing is off.
	// +optional
	Probing *PathProbingSchedule `json:"probing,omitempty"`
}

// PathProbingSchedule is what every agent needs to find its peers of a round
// (pathmtu.Peers): the nodes in a fixed order, each with the address it is probed at and the
// MTU of its NIC. It is written when the set of nodes changes, not every round.
type PathProbingSchedule struct {
	// peersPerRound is how many peers each node probes a round.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +required
	PeersPerRound int32 `json:"peersPerRound"`
	// roundSeconds is how long a round lasts; round r starts at r·roundSeconds after the
	// Unix epoch, so every agent agrees on it without talking to the others.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	// +required
	RoundSeconds int32 `json:"roundSeconds"`
	// targets are the nodes, by name, each as "addresses/mtu", then, when it has a pod network
	// device with an address, a space and that device's "addresses/mtu"; addresses are
	// separated by commas, one per IP family ("10.0.0.1,fd00::1/9000 10.244.1.0/8950"). Compact,
	// since every agent receives the list.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10000
	// +kubebuilder:validation:items:MaxLength=180
	// +required
	Targets []string `json:"targets"`
}

// PinReleased says whether a transition's pinsReleasedGeneration releases the pin of a spec of
// policyGeneration; 0 releases nothing.
func PinReleased(pinsReleasedGeneration, policyGeneration int64) bool {
	return pinsReleasedGeneration > 0 && policyGeneration <= pinsReleasedGeneration
}

// NetworkMTUTransition is the cluster-wide state of a policy's rollout that every node acts on
// at once (docs/design/scale.md): the controller writes it a few times per rollout, and every
// agent watches it, instead of N NodeMTUState specs being rewritten, or every agent receiving
// each of the policy's status writes. Named after its policy and owned by it.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=mtutransition,categories=mtu
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.policy`
// +kubebuilder:printcolumn:name="Pins Released",type=integer,JSONPath=`.spec.pinsReleasedGeneration`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NetworkMTUTransition struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// +required
	Spec NetworkMTUTransitionSpec `json:"spec"`
}

// NetworkMTUTransitionList is a list of NetworkMTUTransition.
// +kubebuilder:object:root=true
type NetworkMTUTransitionList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NetworkMTUTransition `json:"items"`
}
