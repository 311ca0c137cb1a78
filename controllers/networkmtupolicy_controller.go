// Package controllers holds the cluster controller's reconcilers.
package controllers

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// FieldManager is the server-side apply field manager of the cluster controller.
const FieldManager = "mtu-operator-manager"

// NetworkMTUPolicyReconciler computes a policy's MTUs and reports them in its status.
type NetworkMTUPolicyReconciler struct {
	client.Client
	// APIReader reads objects the manager does not cache (the kubernetes Service).
	APIReader client.Reader
}

// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=networkmtupolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=networkmtupolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get

// Reconcile gathers what the policy depends on, decides with the plan package, and writes
// the status.
func (r *NetworkMTUPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	policy := &mtuv1alpha1.NetworkMTUPolicy{}
	if err := r.Get(ctx, req.NamespacedName, policy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := policy.DeepCopy()

	families, err := r.clusterFamilies(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	outcome := plan.Decide(plan.Inputs{Spec: policy.Spec, ClusterFamilies: families})
	verdict := plan.Verdict{Stalled: outcome.Stalled, Progressing: outcome.Waiting}
	if verdict.Stalled == nil && verdict.Progressing == nil {
		verdict.Ready = fmt.Sprintf("pod MTU %d from underlay %d with %s", outcome.Result.PodMTU, outcome.UnderlayMTU, policy.Spec.Encapsulation.Type)
	}

	writeComputed(&policy.Status, outcome)
	for _, c := range verdict.Conditions(policy.Generation) {
		meta.SetStatusCondition(&policy.Status.Conditions, c)
	}
	policy.Status.ObservedGeneration = policy.Generation
	if err := r.Status().Patch(ctx, policy, client.MergeFrom(base)); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching status: %w", err)
	}
	log.FromContext(ctx).V(1).Info("reconciled", "podMTU", policy.Status.PodMTU, "stalled", outcome.Stalled, "waiting", outcome.Waiting)
	return ctrl.Result{}, nil
}

// clusterFamilies reads the IP families of the kubernetes Service, which the API server
// creates with the cluster's service families.
func (r *NetworkMTUPolicyReconciler) clusterFamilies(ctx context.Context) ([]mtuv1alpha1.IPFamily, error) {
	svc := &corev1.Service{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: metav1.NamespaceDefault, Name: "kubernetes"}, svc)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the kubernetes Service for the cluster's IP families: %w", err)
	}
	var families []mtuv1alpha1.IPFamily
	for _, f := range svc.Spec.IPFamilies {
		families = append(families, mtuv1alpha1.IPFamily(f))
	}
	return families, nil
}

// writeComputed copies the outcome's numbers into the status; unknown values are cleared
// rather than left from an earlier generation.
func writeComputed(status *mtuv1alpha1.NetworkMTUPolicyStatus, o plan.Outcome) {
	status.IPFamilies = slices.Clone(o.Families)
	status.UnderlayMTU = o.UnderlayMTU
	status.PodMTU = 0
	status.Tunnels = nil
	if o.Stalled != nil || o.Waiting != nil {
		return
	}
	status.PodMTU = int32(o.Result.PodMTU)
	for _, t := range o.Result.Tunnels {
		status.Tunnels = append(status.Tunnels, mtuv1alpha1.TunnelMTU{Family: mtuv1alpha1.IPFamily(t.Family), MTU: int32(t.MTU)})
	}
}

// SetupWithManager registers the reconciler; it reacts to spec changes only, not to its own
// status writes.
func (r *NetworkMTUPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&mtuv1alpha1.NetworkMTUPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("networkmtupolicy").
		Complete(r)
}
