package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
	"github.com/mtu-operator/mtu-operator/internal/remediate"
)

// Finalizer holds a deleted policy until the operator has stopped managing its nodes.
const Finalizer = "networking.mtu-operator.io/release"

// DefaultReleaseTimeout bounds how long a deleted policy waits for its nodes' agents to
// confirm they released their route pins; a node whose agent does not run cannot confirm.
const DefaultReleaseTimeout = 2 * time.Minute

// ensureFinalizer adds the finalizer to a live policy, so that deleting it releases its nodes.
func (r *NetworkMTUPolicyReconciler) ensureFinalizer(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy) error {
	if controllerutil.ContainsFinalizer(policy, Finalizer) {
		return nil
	}
	if err := r.patchFinalizers(ctx, policy, append(slices.Clone(policy.Finalizers), Finalizer)); err != nil {
		return fmt.Errorf("adding the finalizer: %w", err)
	}
	return nil
}

// patchFinalizers sets the policy's finalizers, others' included, failing with a conflict if
// the policy changed since it was read.
func (r *NetworkMTUPolicyReconciler) patchFinalizers(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, finalizers []string) error {
	quoted := make([]string, 0, len(finalizers))
	for _, f := range finalizers {
		quoted = append(quoted, fmt.Sprintf("%q", f))
	}
	patch := fmt.Sprintf(`{"metadata":{"finalizers":[%s],"resourceVersion":%q}}`, strings.Join(quoted, ","), policy.ResourceVersion)
	return r.Patch(ctx, policy, client.RawPatch(types.MergePatchType, []byte(patch)), client.FieldOwner(FieldManager))
}

// finalize stops managing the nodes of a deleted policy and lets it go (docs/design/lifecycle.md). The CNI's
// configuration is left as it is: the nodes' devices carry it, and changing it back would be a
// migration of its own. In order:
//  1. every node observes and releases its route pins (its agent also makes the pods forget
//     what they learnt), confirmed by its report, or after releaseTimeout for a silent node;
//     a node whose pin was released already (the NetworkMTUTransition) has none;
//  2. the NodeMTUStates go, so no agent acts for this policy any more;
//  3. the stale-MTU annotations the operator put on pods go;
//  4. the finalizer goes.
func (r *NetworkMTUPolicyReconciler) finalize(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy) (time.Duration, error) {
	if !controllerutil.ContainsFinalizer(policy, Finalizer) {
		return 0, nil
	}
	var states mtuv1alpha1.NodeMTUStateList
	if err := r.List(ctx, &states); err != nil {
		return 0, err
	}
	// Read, not cached: a restore may have released the pins in this very reconcile.
	transition := &mtuv1alpha1.NetworkMTUTransition{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: policy.Name}, transition); client.IgnoreNotFound(err) != nil {
		return 0, err
	}
	var pinned []string
	var writes []specWrite
	for i := range states.Items {
		s := &states.Items[i]
		if s.Spec.Policy != policy.Name {
			continue
		}
		if mtuv1alpha1.PinReleased(transition.Spec.PinsReleasedGeneration, s.Spec.PolicyGeneration) {
			// The transition released this spec's pin already (a finished rollout): the agent
			// holds none, and its state can go as it is.
			continue
		}
		released := s.Spec
		released.Phase, released.RouteMTU, released.Verify = mtuv1alpha1.PhaseObserve, nil, false
		writes = append(writes, specWrite{state: s, spec: released})
		// A node that pinned, or was asked to, confirms the release by reporting without a pin
		// on the spec that asked for it.
		hadPin := s.Spec.RouteMTU != nil || s.Status.RouteMTU != nil
		if hadPin && (s.Status.RouteMTU != nil || s.Spec.RouteMTU != nil || s.Status.ObservedGeneration < s.Generation) {
			pinned = append(pinned, s.Name)
		}
	}
	if err := r.writeNodeSpecs(ctx, writes); err != nil {
		return 0, err
	}
	timeout := cmp.Or(r.ReleaseTimeout, DefaultReleaseTimeout)
	if len(pinned) > 0 && time.Since(policy.DeletionTimestamp.Time) < timeout {
		return time.Second, nil // the agents' reports wake us sooner
	}
	if len(pinned) > 0 {
		r.event(policy, corev1.EventTypeWarning, "PinsNotConfirmed", "Delete", fmt.Sprintf("%s did not confirm releasing their route pins within %s: their agents may not be running; check the routes there", plan.Bounded(pinned), timeout))
	}
	for i := range states.Items {
		s := &states.Items[i]
		if s.Spec.Policy != policy.Name {
			continue
		}
		if err := r.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
			return 0, fmt.Errorf("deleting NodeMTUState %s: %w", s.Name, err)
		}
	}
	// Owned by the policy, it would go with it; deleted here so that it goes where nothing
	// collects garbage too.
	if err := r.Delete(ctx, &mtuv1alpha1.NetworkMTUTransition{ObjectMeta: metav1.ObjectMeta{Name: policy.Name}}); client.IgnoreNotFound(err) != nil {
		return 0, fmt.Errorf("deleting NetworkMTUTransition %s: %w", policy.Name, err)
	}
	if err := r.clearStaleAnnotations(ctx); err != nil {
		return 0, err
	}
	if err := r.removeFinalizer(ctx, policy); err != nil {
		return 0, err
	}
	forgetMetrics(policy.Name)
	return 0, nil
}

// clearStaleAnnotations removes the stale-MTU annotation from every pod that has it. Pods are
// not cached, so this reads them all once: deleting a policy is rare.
func (r *NetworkMTUPolicyReconciler) clearStaleAnnotations(ctx context.Context) error {
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods); err != nil {
		return fmt.Errorf("listing pods for their stale-MTU annotations: %w", err)
	}
	remove := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, remediate.StaleMTUAnnotation)
	for i := range pods.Items {
		p := &pods.Items[i]
		if _, ok := p.Annotations[remediate.StaleMTUAnnotation]; !ok {
			continue
		}
		err := r.Patch(ctx, p, client.RawPatch(types.MergePatchType, []byte(remove)), client.FieldOwner(FieldManager))
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("clearing the stale-MTU annotation of %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	return nil
}

func (r *NetworkMTUPolicyReconciler) removeFinalizer(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy) error {
	keep := slices.DeleteFunc(slices.Clone(policy.Finalizers), func(f string) bool { return f == Finalizer })
	if err := r.patchFinalizers(ctx, policy, keep); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing the finalizer: %w", err)
	}
	return nil
}
