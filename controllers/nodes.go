package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=nodemtustates,verbs=get;list;watch;create;update;patch;delete

// probeTimeoutSeconds is how long an agent's probe may take before it rolls a change back.
const probeTimeoutSeconds = 10

// gatherNodes returns the selected nodes with their state objects. Every selected node gets a
// state object at once, watching only, so that agents report the underlay before anything
// changes (auto-detection needs it); states of nodes no longer selected are deleted.
func (r *NetworkMTUPolicyReconciler) gatherNodes(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy) ([]plan.NodeInput, error) {
	selection, err := selectionOf(policy)
	if err != nil {
		return nil, err
	}
	selector := selection.Selector
	if selector == nil {
		selector = labels.Everything()
	}
	nodes := &metav1.PartialObjectMetadataList{}
	nodes.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
	if err := r.List(ctx, nodes, client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, err
	}
	var states mtuv1alpha1.NodeMTUStateList
	if err := r.List(ctx, &states); err != nil {
		return nil, err
	}
	byName := map[string]*mtuv1alpha1.NodeMTUState{}
	for i := range states.Items {
		byName[states.Items[i].Name] = &states.Items[i]
	}

	selected := map[string]bool{}
	inputs := make([]plan.NodeInput, 0, len(nodes.Items))
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if n.DeletionTimestamp != nil {
			continue
		}
		selected[n.Name] = true
		state := byName[n.Name]
		if state == nil {
			created, err := r.createNodeState(ctx, policy, n)
			if err != nil {
				return nil, err
			}
			state = created
		}
		if state.Spec.Policy != policy.Name {
			// Left by a policy that no longer exists (overlap was checked first): taken over.
			state = state.DeepCopy()
			state.Spec = mtuv1alpha1.NodeMTUStateSpec{}
		}
		inputs = append(inputs, plan.NodeInput{Name: n.Name, State: state})
	}
	for i := range states.Items {
		s := &states.Items[i]
		if s.Spec.Policy == policy.Name && !selected[s.Name] {
			if err := r.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
				return nil, fmt.Errorf("deleting NodeMTUState %s of a node no longer selected: %w", s.Name, err)
			}
		}
	}
	return inputs, nil
}

func (r *NetworkMTUPolicyReconciler) createNodeState(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, node *metav1.PartialObjectMetadata) (*mtuv1alpha1.NodeMTUState, error) {
	s := &mtuv1alpha1.NodeMTUState{}
	s.Name = node.Name
	s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
	s.Spec = mtuv1alpha1.NodeMTUStateSpec{
		Policy:                   policy.Name,
		Phase:                    mtuv1alpha1.PhaseObserve,
		UnderlayInterfacePattern: policy.Spec.Underlay.InterfacePattern,
		PodAction:                policy.Spec.StalePods.Action,
		Probe:                    mtuv1alpha1.NodeProbe{TimeoutSeconds: probeTimeoutSeconds},
	}
	if err := r.Create(ctx, s, client.FieldOwner(FieldManager)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("NodeMTUState %s appeared meanwhile: %w", node.Name, err)
		}
		return nil, fmt.Errorf("creating NodeMTUState %s: %w", node.Name, err)
	}
	return s, nil
}

// rolloutNodes hands the target to the nodes at the pace the policy allows, writes their
// specs, and reports the nodes in the policy's status and conditions.
func (r *NetworkMTUPolicyReconciler) rolloutNodes(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, det detected, target plan.CNITarget, nodes []plan.NodeInput) (plan.Verdict, error) {
	nodeTarget := plan.NodeTarget{
		PodMTU:           target.PodMTU,
		Interfaces:       target.Interfaces,
		InterfacePattern: policy.Spec.Underlay.InterfacePattern,
		PodAction:        policy.Spec.StalePods.Action,
	}
	if policy.Spec.Underlay.Management == mtuv1alpha1.UnderlayEnforce {
		nodeTarget.UnderlayMTU = policy.Spec.Underlay.MTU
	}
	dryRun := policy.Spec.Mode == mtuv1alpha1.ModeDryRun
	rollout := plan.DecideRollout(plan.RolloutInputs{
		Policy: policy.Name, Generation: policy.Generation, Target: nodeTarget,
		UnderlaySource: policy.Spec.Underlay.Source, DeclaredUnderlay: policy.Spec.Underlay.MTU,
		MaxUnavailable: policy.Spec.Rollout.MaxUnavailable, Nodes: nodes,
	})

	for _, n := range nodes {
		spec := rollout.Specs[n.Name]
		spec.Probe.TimeoutSeconds = probeTimeoutSeconds
		if dryRun {
			// DryRun changes nothing on nodes: they only report.
			spec.Phase, spec.RouteMTU, spec.UnderlayMTU = mtuv1alpha1.PhaseObserve, nil, nil
		}
		if err := r.writeNodeSpec(ctx, n.State, spec); err != nil {
			return plan.Verdict{}, err
		}
	}

	policy.Status.Nodes = rollout.Counts
	r.reportUnderlay(policy, rollout.Underlay)
	return r.nodeVerdict(policy, det, rollout, nodes, dryRun), nil
}

// writeNodeSpec patches a node's spec when it differs; only the controller writes specs.
func (r *NetworkMTUPolicyReconciler) writeNodeSpec(ctx context.Context, state *mtuv1alpha1.NodeMTUState, spec mtuv1alpha1.NodeMTUStateSpec) error {
	if equality.Semantic.DeepEqual(state.Spec, spec) {
		return nil
	}
	current := &mtuv1alpha1.NodeMTUState{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(state), current); err != nil {
		return err
	}
	patched := current.DeepCopy()
	patched.Spec = spec
	if err := r.Patch(ctx, patched, client.MergeFromWithOptions(current, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("updating NodeMTUState %s: %w", state.Name, err)
	}
	return nil
}

// reportUnderlay sets UnderlayConsistent and emits an Event when the set of outliers changes.
func (r *NetworkMTUPolicyReconciler) reportUnderlay(policy *mtuv1alpha1.NetworkMTUPolicy, u plan.UnderlayReport) {
	switch {
	case u.Reported == 0:
		setCondition(policy, mtuv1alpha1.ConditionUnderlayConsistent, metav1.ConditionUnknown, mtuv1alpha1.ReasonProgressing, "no node has reported its underlay MTU yet")
	case len(u.Outliers) > 0:
		msg := fmt.Sprintf("%d of %d nodes have an underlay MTU other than %d: %s", len(u.Outliers), u.Reported, u.Expected, plan.Bounded(u.Outliers))
		if policy.Spec.Underlay.Management == mtuv1alpha1.UnderlayEnforce {
			msg += fmt.Sprintf("; setting them to %d (underlay.management Enforce)", u.Expected)
		}
		previous := meta.FindStatusCondition(policy.Status.Conditions, mtuv1alpha1.ConditionUnderlayConsistent)
		if previous == nil || previous.Message != msg {
			r.event(policy, corev1.EventTypeWarning, mtuv1alpha1.ReasonUnderlayMismatch, "Compare", msg)
		}
		setCondition(policy, mtuv1alpha1.ConditionUnderlayConsistent, metav1.ConditionFalse, mtuv1alpha1.ReasonUnderlayMismatch, msg)
	default:
		setCondition(policy, mtuv1alpha1.ConditionUnderlayConsistent, metav1.ConditionTrue, mtuv1alpha1.ReasonUnderlayMatches, fmt.Sprintf("all %d reporting nodes have underlay MTU %d", u.Reported, u.Expected))
	}
}

// nodeVerdict turns the rollout into NodesConverged and the policy's verdict.
func (r *NetworkMTUPolicyReconciler) nodeVerdict(policy *mtuv1alpha1.NetworkMTUPolicy, det detected, rollout plan.Rollout, nodes []plan.NodeInput, dryRun bool) plan.Verdict {
	c := rollout.Counts
	summary := fmt.Sprintf("%s pod MTU %d on %d node(s) (underlay %d, %s)", det.Provider, policy.Status.PodMTU, c.Selected, policy.Status.UnderlayMTU, policy.Spec.Encapsulation.Type)
	if dryRun {
		setCondition(policy, mtuv1alpha1.ConditionNodesConverged, metav1.ConditionUnknown, mtuv1alpha1.ReasonDryRun, "DryRun: nodes report, nothing changes")
		return plan.Verdict{Ready: "DryRun: " + strings.TrimPrefix(conditionMessage(policy, mtuv1alpha1.ConditionConfigApplied), "DryRun: ") + "; " + summary}
	}
	if rollout.Halted() {
		msg := fmt.Sprintf("the rollout stopped: %s; fix the node, then edit the policy to retry", strings.Join(rollout.Failed, "; "))
		setCondition(policy, mtuv1alpha1.ConditionNodesConverged, metav1.ConditionFalse, mtuv1alpha1.ReasonNodeFailed, msg)
		r.event(policy, corev1.EventTypeWarning, mtuv1alpha1.ReasonNodeFailed, "Rollout", msg)
		return plan.Verdict{Stalled: &plan.Problem{Reason: mtuv1alpha1.ReasonNodeFailed, Message: msg}}
	}
	if len(rollout.Blocked) > 0 {
		msg := conditionMessage(policy, mtuv1alpha1.ConditionUnderlayConsistent) + "; pods sized for the declared MTU would lose large packets there: fix those NICs or set underlay.management Enforce"
		setCondition(policy, mtuv1alpha1.ConditionNodesConverged, metav1.ConditionFalse, mtuv1alpha1.ReasonUnderlayMismatch, msg)
		return plan.Verdict{Stalled: &plan.Problem{Reason: mtuv1alpha1.ReasonUnderlayMismatch, Message: msg}}
	}
	if !rollout.Done() {
		msg := fmt.Sprintf("%d/%d nodes converged; changing %v; waiting %d", c.Converged, c.Selected, plan.Bounded(rollout.InProgress), len(rollout.Pending))
		if rollout.RouteMTU != nil {
			msg += fmt.Sprintf("; routes pinned to MTU %d until all nodes converge", *rollout.RouteMTU)
		}
		setCondition(policy, mtuv1alpha1.ConditionNodesConverged, metav1.ConditionFalse, mtuv1alpha1.ReasonRollingOut, msg)
		return plan.Verdict{Progressing: &plan.Problem{Reason: mtuv1alpha1.ReasonRollingOut, Message: msg}}
	}
	pinned := 0
	for _, n := range nodes {
		if n.State != nil && n.State.Status.RouteMTU != nil {
			pinned++
		}
	}
	if pinned > 0 {
		msg := fmt.Sprintf("all %d nodes converged; releasing route MTU pins on %d", c.Selected, pinned)
		setCondition(policy, mtuv1alpha1.ConditionNodesConverged, metav1.ConditionFalse, mtuv1alpha1.ReasonRollingOut, msg)
		return plan.Verdict{Progressing: &plan.Problem{Reason: mtuv1alpha1.ReasonRollingOut, Message: msg}}
	}
	setCondition(policy, mtuv1alpha1.ConditionNodesConverged, metav1.ConditionTrue, mtuv1alpha1.ReasonAllNodesConverged, fmt.Sprintf("all %d nodes converged", c.Selected))
	return plan.Verdict{Ready: summary}
}

func conditionMessage(policy *mtuv1alpha1.NetworkMTUPolicy, conditionType string) string {
	if c := meta.FindStatusCondition(policy.Status.Conditions, conditionType); c != nil {
		return c.Message
	}
	return ""
}
