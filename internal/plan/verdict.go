package plan

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// Verdict is the state of a policy for its top-level conditions.
type Verdict struct {
	// Stalled: the operator cannot progress without a change from a person.
	Stalled *Problem
	// Progressing: the operator is working towards the spec.
	Progressing *Problem
	// Ready is the message when neither is set.
	Ready string
}

// Conditions returns Ready, Reconciling and Stalled as kstatus reads them: Stalled=True means
// Failed, Reconciling=True means InProgress, and both False with the current
// observedGeneration means Current. Ready mirrors that for people and Argo CD.
func (v Verdict) Conditions(generation int64) []metav1.Condition {
	cond := func(t string, s metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation}
	}
	switch {
	case v.Stalled != nil:
		return []metav1.Condition{
			cond(mtuv1alpha1.ConditionReady, metav1.ConditionFalse, v.Stalled.Reason, v.Stalled.Message),
			cond(mtuv1alpha1.ConditionReconciling, metav1.ConditionFalse, v.Stalled.Reason, "stalled: "+v.Stalled.Message),
			cond(mtuv1alpha1.ConditionStalled, metav1.ConditionTrue, v.Stalled.Reason, v.Stalled.Message),
		}
	case v.Progressing != nil:
		return []metav1.Condition{
			cond(mtuv1alpha1.ConditionReady, metav1.ConditionFalse, v.Progressing.Reason, v.Progressing.Message),
			cond(mtuv1alpha1.ConditionReconciling, metav1.ConditionTrue, v.Progressing.Reason, v.Progressing.Message),
			cond(mtuv1alpha1.ConditionStalled, metav1.ConditionFalse, v.Progressing.Reason, "progressing"),
		}
	default:
		return []metav1.Condition{
			cond(mtuv1alpha1.ConditionReady, metav1.ConditionTrue, mtuv1alpha1.ReasonReconciled, v.Ready),
			cond(mtuv1alpha1.ConditionReconciling, metav1.ConditionFalse, mtuv1alpha1.ReasonReconciled, v.Ready),
			cond(mtuv1alpha1.ConditionStalled, metav1.ConditionFalse, mtuv1alpha1.ReasonReconciled, v.Ready),
		}
	}
}
