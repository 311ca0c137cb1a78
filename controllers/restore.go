package controllers

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/cni/flannel"
	"github.com/mtu-operator/mtu-operator/internal/plan"
	"github.com/mtu-operator/mtu-operator/internal/plan/migration"
)

// restoring says whether a deleted policy carries the cluster back before it goes.
func restoring(policy *mtuv1alpha1.NetworkMTUPolicy) bool {
	return policy.DeletionTimestamp != nil && policy.Spec.DeletionPolicy == mtuv1alpha1.DeletionRestore &&
		policy.Spec.Mode == mtuv1alpha1.ModeApply && controllerutil.ContainsFinalizer(policy, Finalizer)
}

// restorePhases takes the next step of carrying a deleted policy's changes back
// (deletionPolicy Restore, docs/design/lifecycle.md): a migration like any other, from what
// the operator set to the originals it recorded, the CNI's on its objects and each NIC's in its
// agent's journal. back says the cluster is there (or that nothing can be restored, said in an
// Event): the policy can then be finalized as Orphan does.
func (r *NetworkMTUPolicyReconciler) restorePhases(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, persist func(context.Context) error) (res phaseResult, back bool, err error) {
	skip := func(reason, msg string) (phaseResult, bool, error) {
		r.event(policy, corev1.EventTypeWarning, reason, "Delete", msg+"; the policy is deleted as with deletionPolicy Orphan, leaving the cluster as it is")
		return phaseResult{}, true, nil
	}
	var policies mtuv1alpha1.NetworkMTUPolicyList
	if err := r.List(ctx, &policies); err != nil {
		return phaseResult{}, false, err
	}
	for _, p := range policies.Items {
		if p.Name != policy.Name && p.DeletionTimestamp == nil && p.Spec.Mode == mtuv1alpha1.ModeApply {
			return skip("RestoreSkipped", fmt.Sprintf("NetworkMTUPolicy %s still manages MTUs in this cluster and would undo the restore", p.Name))
		}
	}
	nodes, err := r.gatherNodes(ctx, policy)
	if err != nil {
		return phaseResult{}, false, err
	}
	det, found, err := r.detectCNI(ctx, policy)
	if err != nil {
		return phaseResult{}, false, err
	}
	if found.verdict != nil {
		return skip("RestoreSkipped", "no CNI configuration to restore")
	}
	if det.Provider != mtuv1alpha1.CNIFlannel {
		return skip("RestoreUnsupported", fmt.Sprintf("restoring %s's configuration is not supported yet; the original values are in the %s annotation of each object the operator changed", det.Provider, plan.OriginalsAnnotation))
	}
	target, p, problem, err := r.planFlannelRestore(ctx, policy, det, nodes)
	if err != nil || problem != nil {
		if problem != nil {
			return skip("RestoreImpossible", problem.Message)
		}
		return phaseResult{}, false, err
	}
	if target.PodMTU == 0 {
		return phaseResult{verdict: &plan.Verdict{Progressing: &plan.Problem{Reason: mtuv1alpha1.ReasonProgressing, Message: "restoring: waiting for every node to report its underlay"}}, requeue: resyncPeriod}, false, nil
	}
	if v, err := r.checkSharedConfig(ctx, policy, "", target.CNITarget, p); err != nil || v.verdict != nil {
		if err != nil {
			return phaseResult{}, false, err
		}
		return skip("RestoreSkipped", v.verdict.Stalled.Message)
	}

	// The migration reads the policy's spec: for the restore it is the original configuration,
	// with consent to lower what the operator raised.
	spec := policy.Spec
	defer func() { policy.Spec = spec }()
	policy.Spec.Encapsulation.Type = target.encapsulation
	policy.Spec.Underlay.AllowLowering = true
	policy.Spec.Underlay.Source, policy.Spec.Underlay.MTU = mtuv1alpha1.UnderlayDeclared, &target.underlay
	policy.Status.PodMTU = target.PodMTU
	if m := policy.Status.Migration; m == nil || m.Generation != policy.Generation {
		r.event(policy, corev1.EventTypeNormal, "Restoring", "Delete", fmt.Sprintf("deletionPolicy Restore: migrating back to the original configuration (%s, pod MTU %d%s) before the policy goes",
			target.encapsulation, target.PodMTU, nicNote(target)))
	}
	res, err = r.migrate(ctx, policy, det, target.CNITarget, p, nodes, "", persist)
	if err != nil {
		return res, false, err
	}
	m := policy.Status.Migration
	back = m != nil && m.Phase == mtuv1alpha1.MigrationDone && len(p.changes()) == 0 && res.verdict != nil && res.verdict.Stalled == nil && res.verdict.Progressing == nil
	return res, back, nil
}

// restoreTarget is where a restore goes: the CNI and nodes' target, and the original
// encapsulation and underlay it was computed from.
type restoreTarget struct {
	plan.CNITarget
	encapsulation mtuv1alpha1.EncapsulationType
	underlay      int32
}

// planFlannelRestore computes the restore of flannel's net-conf.json: the document with the
// recorded originals back, and the nodes' target for what flannel reads there. A problem says
// why there is nothing the operator can restore.
func (r *NetworkMTUPolicyReconciler) planFlannelRestore(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, det detected, nodes []migration.Node) (restoreTarget, cniPlan, *plan.Problem, error) {
	ns := det.seen.FlannelConfigMapNamespace
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: plan.FlannelConfigMap}, cm); err != nil {
		return restoreTarget{}, cniPlan{}, nil, err
	}
	resource := fmt.Sprintf("ConfigMap %s/%s", ns, plan.FlannelConfigMap)
	bad := func(err error) (restoreTarget, cniPlan, *plan.Problem, error) {
		return restoreTarget{}, cniPlan{}, &plan.Problem{Reason: mtuv1alpha1.ReasonUnparseableConfig, Message: fmt.Sprintf("%s: %v", resource, err)}, nil
	}
	originals, err := plan.ParseOriginals(cm.Annotations)
	if err != nil {
		return bad(err)
	}
	key := plan.FlannelConfigKey
	fields := originals.Under(key + ": ")
	restored, _, err := flannel.Restore([]byte(cm.Data[key]), fields)
	if err != nil {
		return bad(err)
	}
	backendType, backendMTU, err := flannel.Backend(restored)
	if err != nil {
		return bad(err)
	}
	encapsulation, err := plan.FlannelEncapsulation(backendType)
	if err != nil {
		return bad(err)
	}

	byNode, smallest := plan.OriginalUnderlays(nodeInputs(nodes))
	if len(byNode) < len(nodes) {
		return restoreTarget{}, cniPlan{}, nil, nil // a node has not reported its underlay yet
	}
	enforce := policy.Spec.Underlay.Management == mtuv1alpha1.UnderlayEnforce
	if backendMTU == 0 && enforce && hasMTUOption(backendType) && !nicsAt(nodes, byNode) {
		// flanneld reads the NIC's MTU only when it starts, and its agents restart before the
		// NICs go back: until they are back, Backend.MTU says what the NICs will carry.
		fields["Backend.MTU"] = strconv.Itoa(int(smallest))
	}
	restored, changes, err := flannel.Restore([]byte(cm.Data[key]), fields)
	if err != nil {
		return bad(err)
	}
	// flannel sizes its devices from Backend.MTU when set, from the external interface if not.
	underlay := smallest
	if backendMTU > 0 {
		underlay = int32(backendMTU)
	}
	families, err := r.clusterFamilies(ctx)
	if err != nil {
		return restoreTarget{}, cniPlan{}, nil, err
	}
	spec := policy.Spec
	spec.Encapsulation.Type = encapsulation
	spec.Underlay.Source, spec.Underlay.MTU = mtuv1alpha1.UnderlayDeclared, &underlay
	outcome := plan.Decide(plan.Inputs{Spec: spec, ClusterFamilies: families, DetectedUnderlayMTU: &underlay})
	if outcome.Stalled != nil || outcome.Waiting != nil {
		return bad(fmt.Errorf("the original configuration (%s, underlay %d) cannot be computed: %s", backendType, underlay, describeProblem(outcome)))
	}
	target, err := plan.TargetFor(mtuv1alpha1.CNIFlannel, outcome.Result, flannel.VNI(restored))
	if err != nil {
		return bad(err)
	}
	if enforce {
		target.UnderlayByNode = byNode
	}

	e := resourceEdit{resource: resource, changes: asConfigChanges(resource, key+": ", changes), managedFields: cm.ManagedFields,
		daemonSet: &types.NamespacedName{Namespace: ns, Name: plan.FlannelDaemonSet}}
	if len(changes) > 0 {
		record := originals.Annotation()
		e.write = func(ctx context.Context) error {
			// The record stays until the policy goes: a restore cut short is computed again
			// from it.
			apply := corev1ac.ConfigMap(plan.FlannelConfigMap, ns).WithResourceVersion(cm.ResourceVersion).
				WithAnnotations(map[string]string{plan.OriginalsAnnotation: record}).
				WithData(map[string]string{key: string(restored)})
			return r.Apply(ctx, apply, client.FieldOwner(FieldManager), client.ForceOwnership)
		}
	}
	return restoreTarget{CNITarget: target, encapsulation: encapsulation, underlay: smallest}, cniPlan{edits: []resourceEdit{e}, ownStep: true}, nil, nil
}

func describeProblem(o plan.Outcome) string {
	for _, p := range []*plan.Problem{o.Stalled, o.Waiting} {
		if p != nil {
			return p.Message
		}
	}
	return ""
}

// dropOriginals removes the originals annotation from the flannel ConfigMap once a restore put
// its values back.
func (r *NetworkMTUPolicyReconciler) dropOriginals(ctx context.Context) error {
	for _, ns := range []string{plan.FlannelNamespace, plan.FlannelLegacyNamespace} {
		cm := &corev1.ConfigMap{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: plan.FlannelConfigMap}, cm); err != nil {
			if client.IgnoreNotFound(err) == nil {
				continue
			}
			return err
		}
		if _, ok := cm.Annotations[plan.OriginalsAnnotation]; !ok {
			continue
		}
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, plan.OriginalsAnnotation)
		if err := r.Patch(ctx, cm, client.RawPatch(types.MergePatchType, []byte(patch)), client.FieldOwner(FieldManager)); err != nil {
			return fmt.Errorf("removing the originals of %s/%s after restoring them: %w", ns, cm.Name, err)
		}
	}
	return nil
}

func nicNote(t restoreTarget) string {
	if len(t.UnderlayByNode) == 0 {
		return ""
	}
	return fmt.Sprintf(", each NIC back to its original MTU, the smallest %d", t.underlay)
}

// hasMTUOption says whether a flannel backend reads Backend.MTU.
func hasMTUOption(backendType string) bool {
	return backendType == "vxlan" || backendType == "wireguard"
}

// nicsAt says whether every node's NIC is at the MTU given for it.
func nicsAt(nodes []migration.Node, want map[string]int32) bool {
	for _, n := range nodes {
		if n.State == nil || n.State.Status.UnderlayMTU != want[n.Name] {
			return false
		}
	}
	return true
}
