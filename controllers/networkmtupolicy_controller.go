// Package controllers holds the cluster controller's reconcilers.
package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/cni/flannel"
	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// FieldManager is the server-side apply field manager of the cluster controller.
const FieldManager = "mtu-operator-manager"

// conflictRetry is how soon a reconcile that lost a race with a newer status runs again.
const conflictRetry = 100 * time.Millisecond

// resyncPeriod re-checks CNI configuration the controller does not watch (Calico's custom
// resources) for drift.
const resyncPeriod = 10 * time.Minute

// CNINamespaces are the namespaces whose ConfigMaps and DaemonSets the manager caches: the
// only ones where the supported CNIs keep their configuration and agents.
var CNINamespaces = []string{plan.FlannelNamespace, plan.FlannelLegacyNamespace}

// NetworkMTUPolicyReconciler computes a policy's MTUs, configures the CNI and reports.
type NetworkMTUPolicyReconciler struct {
	client.Client
	// APIReader reads objects the manager does not cache (the kubernetes Service, Calico's
	// custom resources).
	APIReader client.Reader
	Recorder  events.EventRecorder
	// families are the cluster's IP families, read at most once per resyncPeriod.
	families familiesMemo
	// absentKinds are Calico's kinds this cluster does not serve, read at most once per
	// resyncPeriod.
	absentKinds absentKinds
	// ReleaseTimeout is how long a deleted policy waits for its agents to confirm they
	// released their route pins; DefaultReleaseTimeout when zero.
	ReleaseTimeout time.Duration
	// cached reads Nodes and NodeMTUStates from the manager's cache in place, only those that
	// changed since a policy's last reconcile, and keeps each policy's decisions between
	// reconciles; it is set up with a manager (a preview lists through its client and decides
	// afresh).
	cached *cachedNodes
}

// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=networkmtupolicies,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=networkmtupolicies/finalizers,verbs=update
// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=networkmtupolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=networking.mtu-operator.io,resources=networkmtutransitions,verbs=get;list;watch;create;patch;delete
// The manager writes only the CNI objects it edits (resourceNames); what RBAC cannot say (on
// pods only the stale-MTU annotation and only the CNI agents' deletion, on DaemonSets only the
// restart annotation) config/rbac/manager_policy.yaml, an admission policy, does.
// +kubebuilder:rbac:groups="",resources=services,verbs=get,resourceNames=kubernetes
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=patch,resourceNames=kube-flannel-cfg;antrea-config;calico-config
// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=patch,resourceNames=kube-flannel-ds;antrea-agent;calico-node
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;delete
// +kubebuilder:rbac:groups=operator.tigera.io,resources=installations,verbs=get;patch,resourceNames=default
// +kubebuilder:rbac:groups=crd.projectcalico.org,resources=felixconfigurations,verbs=get;patch,resourceNames=default
// +kubebuilder:rbac:groups=crd.projectcalico.org,resources=ippools,verbs=get;list;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// Authenticated metrics: the metrics endpoint asks the API server who a caller is and whether
// it may GET /metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Reconcile gathers what the policy depends on, decides with the plan package, writes the
// CNI's configuration, and reports in the policy's status.
func (r *NetworkMTUPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	start := time.Now()
	policy := &mtuv1alpha1.NetworkMTUPolicy{}
	// Read from the API server, not the cache: the status holds the migration's phase, and a
	// decision taken on a copy older than this controller's last write would act on a phase
	// already left (pin again what was released, skip a restart that was recorded).
	if err := r.APIReader.Get(ctx, req.NamespacedName, policy); err != nil {
		if apierrors.IsNotFound(err) {
			forgetMetrics(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if policy.DeletionTimestamp != nil && !restoring(policy) {
		return r.finalizeResult(ctx, policy)
	}
	if policy.DeletionTimestamp == nil {
		if err := r.ensureFinalizer(ctx, policy); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{RequeueAfter: conflictRetry}, nil
			}
			return ctrl.Result{}, err
		}
	}
	base := policy.DeepCopy()
	// persist records the migration before a write it decided on, so that a lost status patch
	// never leaves a write without its record (the agents that must restart after it).
	persist := func(ctx context.Context) error {
		early := base.DeepCopy()
		early.Status.Migration = policy.Status.Migration.DeepCopy()
		if err := r.Status().Patch(ctx, early, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return err
		}
		base = early
		return nil
	}

	var res phaseResult
	var err error
	if policy.DeletionTimestamp != nil {
		var back bool
		res, back, err = r.restorePhases(ctx, policy, persist)
		if back && err == nil {
			if err := r.dropOriginals(ctx); err != nil {
				return ctrl.Result{}, err
			}
			return r.finalizeResult(ctx, policy)
		}
	} else {
		res, err = r.reconcilePhases(ctx, policy, persist)
	}
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil // decided on a stale copy: decide again
	}
	verdict := deref(res.verdict)
	if err != nil {
		// Report the error as progress, so a transient failure shows in status too.
		verdict = plan.Verdict{Progressing: &plan.Problem{Reason: mtuv1alpha1.ReasonProgressing, Message: err.Error()}}
	}
	assembleConditions(policy, res.conditions, verdict)
	// The status holds the migration's phase: a decision made on a stale copy of it must not
	// overwrite a newer one, so the patch carries the resourceVersion it was made from.
	if patchErr := r.Status().Patch(ctx, policy, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); patchErr != nil {
		if apierrors.IsConflict(patchErr) {
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, fmt.Errorf("patching status: %w", patchErr)
	}
	recordMetrics(policy)
	if m := policy.Status.Migration; m != nil {
		log.FromContext(ctx).V(1).Info("reconciled", "phase", m.Phase, "requeue", res.requeue, "took", time.Since(start))
	}
	return ctrl.Result{RequeueAfter: res.requeue}, err
}

// finalizeResult finalizes a deleted policy and says when to look again.
func (r *NetworkMTUPolicyReconciler) finalizeResult(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy) (ctrl.Result, error) {
	wait, err := r.finalize(ctx, policy)
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return ctrl.Result{RequeueAfter: wait}, err
}

// phaseResult is what a phase of Reconcile decided about the policy's status: the detail
// conditions, the verdict when the policy can go no further now, and how soon to look again.
// Phases do not set conditions; Reconcile assembles them all from the results, in one place.
type phaseResult struct {
	conditions []metav1.Condition
	verdict    *plan.Verdict
	requeue    time.Duration
}

// then adds a later phase's result: its conditions, its verdict if it has one, and the sooner
// of the requeues.
func (p phaseResult) then(next phaseResult) phaseResult {
	p.conditions = append(p.conditions, next.conditions...)
	if next.verdict != nil {
		p.verdict = next.verdict
	}
	if next.requeue > 0 && (p.requeue == 0 || next.requeue < p.requeue) {
		p.requeue = next.requeue
	}
	return p
}

// stop is a result that ends the reconcile with a verdict.
func stop(v plan.Verdict, conditions ...metav1.Condition) phaseResult {
	return phaseResult{conditions: conditions, verdict: &v}
}

// detail is a detail condition; its generation is set when it is assembled.
func detail(conditionType string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: conditionType, Status: status, Reason: reason, Message: msg}
}

// assembleConditions sets the detail conditions the phases decided and the kstatus conditions
// of the verdict, all for the policy's generation.
func assembleConditions(policy *mtuv1alpha1.NetworkMTUPolicy, details []metav1.Condition, verdict plan.Verdict) {
	for _, c := range details {
		c.ObservedGeneration = policy.Generation
		meta.SetStatusCondition(&policy.Status.Conditions, c)
	}
	for _, c := range verdict.Conditions(policy.Generation) {
		meta.SetStatusCondition(&policy.Status.Conditions, c)
	}
	policy.Status.ObservedGeneration = policy.Generation
}

// reconcilePhases runs the phases in order; the first whose result has a verdict ends it.
func (r *NetworkMTUPolicyReconciler) reconcilePhases(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, persist func(context.Context) error) (_ phaseResult, err error) {
	var policies mtuv1alpha1.NetworkMTUPolicyList
	if err := r.List(ctx, &policies); err != nil {
		return phaseResult{}, err
	}
	if r.cached != nil {
		r.cached.keepOnly(policies.Items)
	}
	wasOverlapping := stalledFor(policy, mtuv1alpha1.ReasonNodeSelectorClash)
	if v, err := r.checkOverlap(ctx, policy, policies.Items); v != nil || err != nil {
		if v != nil && v.Stalled.Reason == mtuv1alpha1.ReasonNodeSelectorClash && !wasOverlapping {
			r.event(policy, corev1.EventTypeWarning, v.Stalled.Reason, "Select", v.Stalled.Message)
		}
		if err == nil {
			// Stalled, it still shows what it would size the pods at, for the person who
			// resolves the clash.
			err = r.showComputed(ctx, policy)
		}
		return phaseResult{verdict: v}, err
	}
	if wasOverlapping {
		// An older policy that selected these nodes is gone (or narrowed): say so before
		// anything changes.
		r.event(policy, corev1.EventTypeNormal, "NodesTakenOver", "Select", "no older policy selects these nodes any more: this policy manages them now, through a paced migration")
	}
	nodes, err := r.gatherNodes(ctx, policy)
	if err != nil {
		return phaseResult{}, err
	}
	if err := r.forgetUnselected(ctx, nodes); err != nil {
		return phaseResult{}, err
	}
	// Nodes the migration did not get to still get a state, so that their agents report.
	defer func() {
		if err == nil {
			err = r.createMissing(ctx, policy, nodes)
		}
	}()
	outcome, err := r.computeMTUs(ctx, policy, nodes.smallestUnderlay())
	if err != nil || outcome.Stalled != nil || outcome.Waiting != nil {
		return stop(plan.Verdict{Stalled: outcome.Stalled, Progressing: outcome.Waiting}), err
	}
	det, res, err := r.detectCNI(ctx, policy)
	if res.verdict != nil || err != nil {
		return res, err
	}
	startCounters(policy.Name, det.Provider)
	target, next := r.cniTarget(policy, det, outcome)
	if res = res.then(next); res.verdict != nil {
		return res, nil
	}
	cniPlan, err := r.planCNI(ctx, det, target, policy.Status.ReplacedValues)
	if err != nil {
		return res, err
	}
	if p := cniPlan.problem; p != nil {
		r.event(policy, corev1.EventTypeWarning, p.Reason, "Configure", p.Message)
		return res.then(stop(plan.Verdict{Stalled: p}, detail(mtuv1alpha1.ConditionConfigApplied, metav1.ConditionFalse, p.Reason, p.Message))), nil
	}
	owner, next := r.cniOwnership(policy, target, policies.Items)
	if res = res.then(next); res.verdict != nil {
		return res, nil
	}
	if next, err := r.checkSharedConfig(ctx, policy, owner, target, cniPlan); err != nil || next.verdict != nil {
		return res.then(next), err
	}
	next, err = r.migrate(ctx, policy, det, target, cniPlan, nodes, owner, persist)
	if res = res.then(next); err != nil || policy.Spec.Mode == mtuv1alpha1.ModeDryRun {
		return res, err
	}
	if v := res.verdict; v.Stalled != nil || v.Progressing != nil {
		return res, nil
	}
	next, err = r.remediatePods(ctx, policy, nodeInputs(nodes.nodes))
	return res.then(next), err
}

func deref(v *plan.Verdict) plan.Verdict {
	if v == nil {
		return plan.Verdict{}
	}
	return *v
}

// cniOwnership decides who writes the CNI configuration, which every node shares: the oldest
// policy in Apply mode (plan.CNIOwner). It returns the owner's name when it is another policy;
// a policy that would configure the CNI differently from its owner is Stalled, naming it.
func (r *NetworkMTUPolicyReconciler) cniOwnership(policy *mtuv1alpha1.NetworkMTUPolicy, target plan.CNITarget, policies []mtuv1alpha1.NetworkMTUPolicy) (string, phaseResult) {
	if policy.Spec.Mode != mtuv1alpha1.ModeApply {
		return "", phaseResult{} // a dry run writes nothing
	}
	me := plan.CNIWriter{PolicySelection: plan.PolicySelection{Name: policy.Name, Created: policy.CreationTimestamp.Time}, PodMTU: target.PodMTU, Encapsulation: policy.Spec.Encapsulation.Type}
	writers := []plan.CNIWriter{me}
	for _, p := range policies {
		if p.Name == policy.Name || p.DeletionTimestamp != nil || p.Spec.Mode != mtuv1alpha1.ModeApply || p.Status.PodMTU == 0 {
			continue
		}
		writers = append(writers, plan.CNIWriter{PolicySelection: plan.PolicySelection{Name: p.Name, Created: p.CreationTimestamp.Time}, PodMTU: p.Status.PodMTU, Encapsulation: p.Spec.Encapsulation.Type})
	}
	owner := plan.CNIOwner(writers)
	if owner.Name == policy.Name {
		if c := meta.FindStatusCondition(policy.Status.Conditions, mtuv1alpha1.ConditionConfigApplied); c != nil && c.Reason == mtuv1alpha1.ReasonCNIConfigOwned {
			r.event(policy, corev1.EventTypeNormal, "CNIConfigTakenOver", "Configure", "the policy that owned the CNI configuration is gone: this policy owns it now and configures it through a paced migration")
		}
		return "", phaseResult{}
	}
	if me.Agrees(*owner) {
		return owner.Name, phaseResult{}
	}
	msg := fmt.Sprintf("the CNI configuration, which every node shares, is owned by NetworkMTUPolicy %s (pod MTU %d, %s); this policy would set pod MTU %d, %s: give it the same underlay.mtu and encapsulation, or manage these nodes from %s",
		owner.Name, owner.PodMTU, owner.Encapsulation, me.PodMTU, me.Encapsulation, owner.Name)
	return owner.Name, stop(plan.Verdict{Stalled: &plan.Problem{Reason: mtuv1alpha1.ReasonCNIConfigOwned, Message: msg}},
		detail(mtuv1alpha1.ConditionConfigApplied, metav1.ConditionFalse, mtuv1alpha1.ReasonCNIConfigOwned, msg))
}

// checkSharedConfig stalls a policy that would change the CNI configuration without selecting
// every node: the configuration is read by every node's CNI agent, and a node outside the
// selection gets no pin, no device change and no paced restart for it.
func (r *NetworkMTUPolicyReconciler) checkSharedConfig(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, cniOwner string, target plan.CNITarget, p cniPlan) (phaseResult, error) {
	changes := p.changes()
	if cniOwner != "" || policy.Spec.Mode != mtuv1alpha1.ModeApply || len(changes) == 0 {
		return phaseResult{}, nil
	}
	me, err := selectionOf(policy)
	if err != nil || me.Selector == nil {
		return phaseResult{}, err
	}
	nodes := &metav1.PartialObjectMetadataList{}
	nodes.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
	if err := r.List(ctx, nodes); err != nil {
		return phaseResult{}, err
	}
	all := make([]plan.NamedLabels, 0, len(nodes.Items))
	for _, n := range nodes.Items {
		if n.DeletionTimestamp == nil {
			all = append(all, plan.NamedLabels{Name: n.Name, Labels: n.Labels})
		}
	}
	unselected := plan.Unselected(me, all)
	if len(unselected) == 0 {
		return phaseResult{}, nil
	}
	policy.Status.PlannedChanges = capChanges(changes)
	defer func() {
		if !stalledFor(policy, mtuv1alpha1.ReasonCNIConfigShared) {
			r.event(policy, corev1.EventTypeWarning, mtuv1alpha1.ReasonCNIConfigShared, "Configure", fmt.Sprintf("not changing the CNI configuration, which %s also read", plan.Bounded(unselected)))
		}
	}()
	msg := fmt.Sprintf("would change the CNI configuration (%d field(s), in status.plannedChanges) to pod MTU %d, but every node's CNI agent reads it and this policy does not select %s: those nodes would get it with no pin and no device prepared. Remove spec.nodeSelector, or make the change from a policy that selects every node",
		len(changes), target.PodMTU, plan.Bounded(unselected))
	return stop(plan.Verdict{Stalled: &plan.Problem{Reason: mtuv1alpha1.ReasonCNIConfigShared, Message: msg}},
		detail(mtuv1alpha1.ConditionConfigApplied, metav1.ConditionFalse, mtuv1alpha1.ReasonCNIConfigShared, msg)), nil
}

// checkOverlap stalls a policy whose node selector cannot work, or that selects a node an
// older policy already selects.
func (r *NetworkMTUPolicyReconciler) checkOverlap(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, policies []mtuv1alpha1.NetworkMTUPolicy) (*plan.Verdict, error) {
	me, err := selectionOf(policy)
	if err != nil {
		// Admission checks what a schema can; what is left can only be fixed by a person.
		return &plan.Verdict{Stalled: &plan.Problem{Reason: mtuv1alpha1.ReasonInvalidNodeSelector, Message: err.Error()}}, nil //nolint:nilerr // reported in status, not retried
	}
	if len(policies) < 2 {
		return nil, nil
	}
	nodes := &metav1.PartialObjectMetadataList{}
	nodes.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
	if err := r.List(ctx, nodes); err != nil {
		return nil, err
	}
	nodeLabels := make([]labels.Set, 0, len(nodes.Items))
	for _, n := range nodes.Items {
		nodeLabels = append(nodeLabels, n.Labels)
	}
	var others []plan.PolicySelection
	for i := range policies {
		if s, err := selectionOf(&policies[i]); err == nil {
			others = append(others, s)
		}
	}
	if other := plan.EarlierOverlap(me, others, nodeLabels); other != "" {
		return &plan.Verdict{Stalled: &plan.Problem{Reason: mtuv1alpha1.ReasonNodeSelectorClash,
			Message: fmt.Sprintf("selects nodes that NetworkMTUPolicy %s already manages; narrow spec.nodeSelector so each node has one policy", other)}}, nil
	}
	return nil, nil
}

func selectionOf(p *mtuv1alpha1.NetworkMTUPolicy) (plan.PolicySelection, error) {
	s := plan.PolicySelection{Name: p.Name, Created: p.CreationTimestamp.Time}
	if p.Spec.NodeSelector != nil && (len(p.Spec.NodeSelector.MatchLabels) > 0 || len(p.Spec.NodeSelector.MatchExpressions) > 0) {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.NodeSelector.LabelSelector())
		if err != nil {
			return s, fmt.Errorf("spec.nodeSelector: %w", err)
		}
		s.Selector = sel
	}
	return s, nil
}

// computeMTUs decides the MTUs and writes them to status.
func (r *NetworkMTUPolicyReconciler) computeMTUs(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, detectedUnderlay *int32) (plan.Outcome, error) {
	families, err := r.clusterFamilies(ctx)
	if err != nil {
		return plan.Outcome{}, err
	}
	outcome := plan.Decide(plan.Inputs{Spec: policy.Spec, ClusterFamilies: families, DetectedUnderlayMTU: detectedUnderlay})
	writeComputed(&policy.Status, outcome)
	return outcome, nil
}

// showComputed writes into the status the MTUs the policy computes for its nodes, changing
// nothing else.
func (r *NetworkMTUPolicyReconciler) showComputed(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy) error {
	nodes, err := r.gatherNodes(ctx, policy)
	if err != nil {
		return err
	}
	_, err = r.computeMTUs(ctx, policy, nodes.smallestUnderlay())
	return err
}

// clusterFamilies reads the IP families of the kubernetes Service, which the API server
// creates with the cluster's service families.
func (r *NetworkMTUPolicyReconciler) clusterFamilies(ctx context.Context) ([]mtuv1alpha1.IPFamily, error) {
	r.families.mu.Lock()
	defer r.families.mu.Unlock()
	if m := &r.families; !m.read.IsZero() && time.Since(m.read) < resyncPeriod {
		return m.families, nil
	}
	families, err := r.readClusterFamilies(ctx)
	if err == nil {
		r.families.families, r.families.read = families, time.Now()
	}
	return families, err
}

// familiesMemo keeps the cluster's IP families between reads: they are set when the cluster is
// made and change only when it converts to dual-stack, while a rollout reconciles many times.
type familiesMemo struct {
	mu       sync.Mutex
	families []mtuv1alpha1.IPFamily
	read     time.Time
}

func (r *NetworkMTUPolicyReconciler) readClusterFamilies(ctx context.Context) ([]mtuv1alpha1.IPFamily, error) {
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

// detectCNI finds the CNI and reports it in the CNIDetected condition.
func (r *NetworkMTUPolicyReconciler) detectCNI(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy) (detected, phaseResult, error) {
	seen, calicoObjs, err := r.seeCNIs(ctx)
	if err != nil {
		return detected{}, phaseResult{}, err
	}
	det, problem := plan.DetectCNI(policy.Spec.CNI.Provider, seen)
	if problem != nil {
		policy.Status.CNI = ""
		return detected{}, stop(plan.Verdict{Stalled: problem}, detail(mtuv1alpha1.ConditionCNIDetected, metav1.ConditionFalse, problem.Reason, problem.Message)), nil
	}
	policy.Status.CNI = det.Provider
	found := phaseResult{conditions: []metav1.Condition{detail(mtuv1alpha1.ConditionCNIDetected, metav1.ConditionTrue, mtuv1alpha1.ReasonCNIFound, fmt.Sprintf("%s: %s", det.Provider, det.Evidence))}}
	d := detected{Detection: det, seen: seen, calico: calicoObjs, flannelVNI: 1}
	if det.Provider == mtuv1alpha1.CNIFlannel {
		cm := &corev1.ConfigMap{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: seen.FlannelConfigMapNamespace, Name: plan.FlannelConfigMap}, cm); err == nil {
			d.flannelVNI = flannel.VNI([]byte(cm.Data[plan.FlannelConfigKey]))
		}
	}
	return d, found, nil
}

type detected struct {
	plan.Detection
	seen   plan.Seen
	calico calicoObjects
	// flannelVNI names flannel's VXLAN devices (flannel.<VNI>).
	flannelVNI int
}

// cniTarget is what the CNI and the nodes must reach; a verdict when the CNI cannot.
func (r *NetworkMTUPolicyReconciler) cniTarget(policy *mtuv1alpha1.NetworkMTUPolicy, det detected, outcome plan.Outcome) (plan.CNITarget, phaseResult) {
	target, err := plan.TargetFor(det.Provider, outcome.Result, det.flannelVNI)
	if err != nil {
		problem := &plan.Problem{Reason: mtuv1alpha1.ReasonUnsupported, Message: err.Error()}
		return target, stop(plan.Verdict{Stalled: problem}, detail(mtuv1alpha1.ConditionConfigApplied, metav1.ConditionFalse, problem.Reason, problem.Message))
	}
	policy.Status.PodMTU = target.PodMTU
	if policy.Spec.Mode == mtuv1alpha1.ModeApply {
		policy.Status.PodMTUHistory = plan.RecordEra(policy.Status.PodMTUHistory, mtuv1alpha1.PodMTUEra{
			PodMTU: target.PodMTU, Encapsulation: policy.Spec.Encapsulation.Type, UnderlayMTU: outcome.UnderlayMTU,
		})
	}
	return target, phaseResult{}
}

// configPending says whether the CNI's documents need writing now. A value someone reverted
// after the operator wrote it for this generation is written again only after the drift
// delay, so the operator never fights another writer in a hot loop; drift says it was one.
func configPending(policy *mtuv1alpha1.NetworkMTUPolicy, changes []mtuv1alpha1.ConfigChange, now time.Time) (pending, drift bool, wait time.Duration) {
	if len(changes) == 0 {
		return false, false, 0
	}
	m := policy.Status.Migration
	drift = m != nil && m.Generation == policy.Generation && m.ConfigWrittenAt != nil
	if !drift {
		return true, false, 0
	}
	var last *time.Time
	if policy.Status.LastDriftCorrection != nil {
		last = &policy.Status.LastDriftCorrection.Time
	}
	if wait = plan.DriftDelay(policy.Status.DriftCorrections, last, now); wait > 0 {
		return false, true, wait
	}
	return true, true, 0
}

// writeCNIConfig writes every edit of the plan, records what it replaced, and, when the
// CNI's agents are not restarted node by node, restarts their DaemonSets.
func (r *NetworkMTUPolicyReconciler) writeCNIConfig(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, det detected, p cniPlan, restartDaemonSets bool, drift bool, reverters []plan.Writer) (metav1.Condition, error) {
	changes := p.changes()
	for _, e := range p.edits {
		if e.write == nil {
			continue
		}
		if err := e.write(ctx); err != nil {
			return metav1.Condition{}, fmt.Errorf("writing %s: %w", e.resource, err)
		}
		configWrites.WithLabelValues(policy.Name, string(det.Provider)).Inc()
		r.event(policy, corev1.EventTypeNormal, mtuv1alpha1.ReasonConfigWritten, "Update", describeChanges(e.changes))
	}
	policy.Status.ReplacedValues = capChanges(plan.MergeReplaced(policy.Status.ReplacedValues, changes))
	policy.Status.AgentRestarts = namesOf(p.restarts())
	if restartDaemonSets {
		restartedAt := time.Now().UTC().Format(time.RFC3339Nano) // two edits within a second must both restart
		for _, ds := range p.restarts() {
			ok, err := r.restartDaemonSet(ctx, ds, restartedAt)
			if err != nil {
				return metav1.Condition{}, fmt.Errorf("restarting DaemonSet %s: %w", ds, err)
			}
			if ok {
				r.event(policy, corev1.EventTypeNormal, "AgentsRestarted", "Restart", fmt.Sprintf("restarted DaemonSet %s so its agents read the new configuration", ds))
			}
		}
	}
	reason, msg := mtuv1alpha1.ReasonConfigWritten, fmt.Sprintf("wrote %d field(s): %s", len(changes), describeChanges(changes))
	if drift {
		reason, msg = mtuv1alpha1.ReasonDriftCorrected, fmt.Sprintf("re-applied fields that %s changed back: %s", plan.DescribeWriters(reverters), describeChanges(changes))
		policy.Status.DriftCorrections++
		policy.Status.LastDriftCorrection = &metav1.Time{Time: time.Now()}
		driftCorrections.WithLabelValues(policy.Name, string(det.Provider)).Inc()
		r.event(policy, corev1.EventTypeWarning, mtuv1alpha1.ReasonDriftCorrected, "Update", msg)
	}
	return detail(mtuv1alpha1.ConditionConfigApplied, metav1.ConditionTrue, reason, msg), nil
}

// capChanges keeps status within the CRD's bound (64 entries).
func capChanges(c []mtuv1alpha1.ConfigChange) []mtuv1alpha1.ConfigChange {
	return c[:min(len(c), 64)]
}

// stalledFor says whether the policy's status says Stalled for reason.
func stalledFor(policy *mtuv1alpha1.NetworkMTUPolicy, reason string) bool {
	c := meta.FindStatusCondition(policy.Status.Conditions, mtuv1alpha1.ConditionStalled)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason
}

func isTrueFor(policy *mtuv1alpha1.NetworkMTUPolicy, conditionType string) bool {
	c := meta.FindStatusCondition(policy.Status.Conditions, conditionType)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == policy.Generation
}

func (r *NetworkMTUPolicyReconciler) event(policy *mtuv1alpha1.NetworkMTUPolicy, eventType, reason, action, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(policy, nil, eventType, reason, action, "%s", note)
	}
}

// SetupWithManager registers the reconciler. It reacts to policy spec changes (not its own
// status writes), to changes of the CNI ConfigMaps it owns fields in, and to node label
// changes (which can make two policies overlap).
func (r *NetworkMTUPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	cached, err := newCachedNodes(context.Background(), mgr.GetCache())
	if err != nil {
		return err
	}
	r.cached = cached
	everyPolicy := func(ctx context.Context, _ client.Object) []reconcile.Request {
		var list mtuv1alpha1.NetworkMTUPolicyList
		if err := mgr.GetClient().List(ctx, &list); err != nil {
			log.FromContext(ctx).Error(err, "listing policies")
			return nil
		}
		requests := make([]reconcile.Request, 0, len(list.Items))
		for _, p := range list.Items {
			requests = append(requests, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
		}
		return requests
	}
	allPolicies := handler.EnqueueRequestsFromMapFunc(everyPolicy)
	cniConfigMaps := predicate.NewPredicateFuncs(func(o client.Object) bool {
		switch o.GetName() {
		case plan.FlannelConfigMap, plan.AntreaConfigMap, plan.CalicoConfigMap:
			return true
		}
		return false
	})
	// What selects a node: its labels, and that it is not being deleted.
	nodeSelectionChanged := predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !labels.Equals(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
				(e.ObjectOld.GetDeletionTimestamp() == nil) != (e.ObjectNew.GetDeletionTimestamp() == nil)
		},
	}
	nodesChanged := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		r.cached.nodesChanged()
		return everyPolicy(ctx, o)
	})
	// Creating or deleting a policy can start or end an overlap with the others.
	policyAddedOrRemoved := predicate.Funcs{
		UpdateFunc: func(event.UpdateEvent) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&mtuv1alpha1.NetworkMTUPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&mtuv1alpha1.NetworkMTUPolicy{}, allPolicies, builder.WithPredicates(policyAddedOrRemoved)).
		Watches(&corev1.ConfigMap{}, allPolicies, builder.WithPredicates(cniConfigMaps)).
		Watches(&corev1.Node{}, nodesChanged, builder.OnlyMetadata, builder.WithPredicates(nodeSelectionChanged)).
		Watches(&mtuv1alpha1.NodeMTUState{}, handler.EnqueueRequestsFromMapFunc(r.policyOfNodeState)).
		Owns(&mtuv1alpha1.NetworkMTUTransition{}).
		Named("networkmtupolicy").
		Complete(r)
}

// policyOfNodeState maps a node's state (an agent's report) to its policy, after marking the
// node changed for every policy's next gather. Called with the old and the new object of an
// update, it queues both policies.
func (r *NetworkMTUPolicyReconciler) policyOfNodeState(_ context.Context, o client.Object) []reconcile.Request {
	r.cached.stateChanged(o.GetName())
	s, ok := o.(*mtuv1alpha1.NodeMTUState)
	if !ok || s.Spec.Policy == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: s.Spec.Policy}}}
}

// CacheOptions restricts the manager's cache of ConfigMaps and DaemonSets to the CNI
// namespaces: the controller never caches cluster-wide objects it does not need.
func CacheOptions() cache.Options {
	namespaces := map[string]cache.Config{}
	for _, ns := range CNINamespaces {
		namespaces[ns] = cache.Config{}
	}
	return cache.Options{
		// managedFields are a quarter of a NodeMTUState's size and the controller reads them
		// only on the CNI's ConfigMaps (who changed them back): 5,000 nodes' copies are dropped.
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Namespaces: namespaces, Transform: keep},
			&appsv1.DaemonSet{}: {Namespaces: namespaces},
		},
	}
}

// keep caches an object as the API server sent it.
func keep(o any) (any, error) { return o, nil }

// ManagerOptions are the manager options the controller relies on: its scheme, a cache limited
// to the CNI namespaces, and no pod cache. Callers add addresses and leader election.
func ManagerOptions(scheme *runtime.Scheme) ctrl.Options {
	return ctrl.Options{Scheme: scheme, Cache: CacheOptions(), Client: ClientOptions()}
}

// Register adds the NetworkMTUPolicy controller to a manager built with ManagerOptions.
func Register(mgr ctrl.Manager) error {
	r := &NetworkMTUPolicyReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder(FieldManager),
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the NetworkMTUPolicy controller: %w", err)
	}
	return nil
}
