package controllers

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/cni/antrea"
	"github.com/mtu-operator/mtu-operator/internal/cni/calico"
	"github.com/mtu-operator/mtu-operator/internal/cni/flannel"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
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
	if err := r.forgetUnselected(ctx, nodes); err != nil {
		return phaseResult{}, false, err
	}
	det, found, err := r.detectCNI(ctx, policy)
	if err != nil {
		return phaseResult{}, false, err
	}
	if found.verdict != nil {
		return skip("RestoreSkipped", "no CNI configuration to restore")
	}
	target, p, problem, err := r.planRestore(ctx, policy, det, nodes.nodes)
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
	policy.Spec.Encapsulation.Type, policy.Spec.Encapsulation.Encryption = target.original.encapsulation, target.original.encryption
	policy.Spec.Underlay.AllowLowering = true
	policy.Spec.Underlay.Source, policy.Spec.Underlay.MTU = mtuv1alpha1.UnderlayDeclared, &target.underlay
	policy.Status.PodMTU = target.PodMTU
	if m := policy.Status.Migration; m == nil || m.Generation != policy.Generation {
		r.event(policy, corev1.EventTypeNormal, "Restoring", "Delete", fmt.Sprintf("deletionPolicy Restore: migrating back to the original configuration (%s, pod MTU %d%s) before the policy goes",
			target.original.encapsulation, target.PodMTU, nicNote(target)))
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
	original originalConfig
	underlay int32
}

// originalConfig is what the CNI's configuration, put back to its originals, sets.
type originalConfig struct {
	encapsulation mtuv1alpha1.EncapsulationType
	encryption    mtuv1alpha1.EncryptionType
	// podMTU is the pod MTU it sets, 0 when the CNI takes it from the NIC; underlayMTU is
	// flannel's Backend.MTU, the underlay it sizes from, 0 for the NIC.
	podMTU, underlayMTU int32
	vni                 int
}

// bridge is what the configuration must state while the NICs are not back at their originals:
// CNIs that take the MTU from the NIC read it only when they start, and their agents restart
// before the NICs go back.
type bridge struct{ podMTU, underlayMTU int32 }

// restorer reads a CNI's objects and returns what their originals set and the edits that put
// them back (with b's MTU when set); a plan's problem says why they cannot be.
type restorer func(ctx context.Context, det detected, b *bridge) (originalConfig, cniPlan, error)

// planRestore computes where a restore goes and the edits to get there. A problem says why
// nothing can be restored; a zero PodMTU that a node has not reported its underlay yet.
func (r *NetworkMTUPolicyReconciler) planRestore(ctx context.Context, policy *mtuv1alpha1.NetworkMTUPolicy, det detected, nodes []migration.Node) (restoreTarget, cniPlan, *plan.Problem, error) {
	var restore restorer
	switch det.Provider {
	case mtuv1alpha1.CNIFlannel:
		restore = r.restoreFlannel
	case mtuv1alpha1.CNIAntrea:
		restore = r.restoreAntrea
	case mtuv1alpha1.CNICalico:
		restore = r.restoreCalico
	default:
		return restoreTarget{}, cniPlan{}, &plan.Problem{Reason: "RestoreUnsupported", Message: fmt.Sprintf("no restore for CNI %q", det.Provider)}, nil
	}
	byNode, smallest := plan.OriginalUnderlays(nodeInputs(nodes))
	if len(byNode) < len(nodes) {
		return restoreTarget{}, cniPlan{}, nil, nil
	}
	original, p, err := restore(ctx, det, nil)
	if err != nil || p.problem != nil {
		return restoreTarget{}, cniPlan{}, p.problem, err
	}
	families, err := r.clusterFamilies(ctx)
	if err != nil {
		return restoreTarget{}, cniPlan{}, nil, err
	}
	result := func(underlay int32) (mtu.Result, error) {
		spec := policy.Spec
		spec.Encapsulation.Type, spec.Encapsulation.Encryption = original.encapsulation, original.encryption
		spec.Underlay.Source, spec.Underlay.MTU = mtuv1alpha1.UnderlayDeclared, &underlay
		outcome := plan.Decide(plan.Inputs{Spec: spec, ClusterFamilies: families, DetectedUnderlayMTU: &underlay})
		if outcome.Stalled != nil || outcome.Waiting != nil {
			return mtu.Result{}, fmt.Errorf("the original configuration (%s, underlay %d) cannot be computed: %s", original.encapsulation, underlay, describeProblem(outcome))
		}
		return outcome.Result, nil
	}
	underlay := smallest
	switch {
	case original.underlayMTU > 0:
		underlay = original.underlayMTU
	case original.podMTU > 0:
		// The underlay that gives the original pod MTU: the pod MTU plus the headers.
		probe, err := result(9000)
		if err != nil {
			return restoreTarget{}, cniPlan{}, &plan.Problem{Reason: mtuv1alpha1.ReasonUnparseableConfig, Message: err.Error()}, nil //nolint:nilerr // a restore that cannot be computed is reported, not retried
		}
		underlay = original.podMTU + int32(9000-probe.PodMTU)
	}
	res, err := result(underlay)
	if err != nil {
		return restoreTarget{}, cniPlan{}, &plan.Problem{Reason: mtuv1alpha1.ReasonUnparseableConfig, Message: err.Error()}, nil //nolint:nilerr // reported, not retried
	}
	target, err := plan.TargetFor(det.Provider, res, original.vni)
	if err != nil {
		return restoreTarget{}, cniPlan{}, &plan.Problem{Reason: mtuv1alpha1.ReasonUnsupported, Message: err.Error()}, nil //nolint:nilerr // reported, not retried
	}
	if policy.Spec.Underlay.Management == mtuv1alpha1.UnderlayEnforce {
		target.UnderlayByNode = byNode
		if original.podMTU == 0 && original.underlayMTU == 0 && !nicsAt(nodes, byNode) {
			if _, p, err = restore(ctx, det, &bridge{podMTU: target.PodMTU, underlayMTU: smallest}); err != nil || p.problem != nil {
				return restoreTarget{}, cniPlan{}, p.problem, err
			}
		}
	}
	p.ownStep = true
	return restoreTarget{CNITarget: target, original: original, underlay: smallest}, p, nil, nil
}

// restoreConfigMapKey plans putting one ConfigMap key's document back with restoreDoc, keeping
// the originals annotation until the policy goes (a restore cut short is computed again from
// it).
func (r *NetworkMTUPolicyReconciler) restoreConfigMapKey(ctx context.Context, key types.NamespacedName, dataKey string, daemonSet *types.NamespacedName,
	restoreDoc func(doc []byte, originals map[string]string) ([]byte, []cni.Change, error)) (cniPlan, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, key, cm); err != nil {
		return cniPlan{}, err
	}
	resource := fmt.Sprintf("ConfigMap %s/%s", key.Namespace, key.Name)
	originals, err := plan.ParseOriginals(cm.Annotations)
	if err != nil {
		return unreadableOriginals(resource, err), nil
	}
	restored, changes, err := restoreDoc([]byte(cm.Data[dataKey]), originals.Under(dataKey+": "))
	if err != nil {
		return unparseable(resource, dataKey, err)
	}
	e := resourceEdit{resource: resource, changes: asConfigChanges(resource, dataKey+": ", changes), managedFields: cm.ManagedFields, daemonSet: daemonSet}
	if len(changes) > 0 {
		e.write = r.applyConfigMap(cm, originals, map[string]string{dataKey: string(restored)})
	}
	return cniPlan{edits: []resourceEdit{e}}, nil
}

func (r *NetworkMTUPolicyReconciler) restoreFlannel(ctx context.Context, det detected, b *bridge) (originalConfig, cniPlan, error) {
	ns := det.seen.FlannelConfigMapNamespace
	var original originalConfig
	p, err := r.restoreConfigMapKey(ctx, types.NamespacedName{Namespace: ns, Name: plan.FlannelConfigMap}, plan.FlannelConfigKey,
		&types.NamespacedName{Namespace: ns, Name: plan.FlannelDaemonSet},
		func(doc []byte, originals map[string]string) ([]byte, []cni.Change, error) {
			exact, _, err := flannel.Restore(doc, originals)
			if err != nil {
				return nil, nil, err
			}
			backendType, backendMTU, err := flannel.Backend(exact)
			if err != nil {
				return nil, nil, err
			}
			if b != nil && flannel.HasMTUOption(backendType) {
				// flanneld reads the NIC only when it starts: until the NICs are back,
				// Backend.MTU says what they will carry.
				originals["Backend.MTU"] = strconv.Itoa(int(b.underlayMTU))
			}
			if original.encapsulation, err = plan.FlannelEncapsulation(backendType); err != nil {
				return nil, nil, fmt.Errorf("%w: %w", cni.ErrUnexpectedShape, err)
			}
			original.underlayMTU, original.vni = int32(backendMTU), flannel.VNI(exact)
			return flannel.Restore(doc, originals)
		})
	return original, p, err
}

func (r *NetworkMTUPolicyReconciler) restoreAntrea(ctx context.Context, _ detected, b *bridge) (originalConfig, cniPlan, error) {
	var original originalConfig
	p, err := r.restoreConfigMapKey(ctx, types.NamespacedName{Namespace: plan.AntreaNamespace, Name: plan.AntreaConfigMap}, plan.AntreaConfigKey,
		&types.NamespacedName{Namespace: plan.AntreaNamespace, Name: plan.AntreaDaemonSet},
		func(doc []byte, originals map[string]string) ([]byte, []cni.Change, error) {
			exact, _, err := antrea.Restore(doc, originals)
			if err != nil {
				return nil, nil, err
			}
			settings, err := antrea.Read(exact)
			if err != nil {
				return nil, nil, err
			}
			if original.encapsulation, original.encryption, err = plan.AntreaEncapsulation(settings); err != nil {
				return nil, nil, fmt.Errorf("%w: %w", cni.ErrUnexpectedShape, err)
			}
			original.podMTU = int32(settings.DefaultMTU)
			if b != nil {
				// antrea-agent reads the NIC only when it starts: until the NICs are back,
				// defaultMTU says what pods get.
				originals["defaultMTU"] = strconv.Itoa(int(b.podMTU))
			}
			return antrea.Restore(doc, originals)
		})
	return original, p, err
}

// restoreCalico puts back the objects of the install kind detected: the Installation (the
// Tigera operator rolls calico-node itself), or the FelixConfiguration, the IPPools and
// calico-config's veth_mtu.
func (r *NetworkMTUPolicyReconciler) restoreCalico(ctx context.Context, det detected, b *bridge) (originalConfig, cniPlan, error) {
	var original originalConfig
	var p cniPlan
	restoreCR := func(gvk schema.GroupVersionKind, obj *unstructured.Unstructured, override map[string]string) (map[string]any, error) {
		resource := fmt.Sprintf("%s %s", gvk.Kind, obj.GetName())
		originals, err := plan.ParseOriginals(obj.GetAnnotations())
		if err != nil {
			p = unreadableOriginals(resource, err)
			return nil, nil
		}
		fields := originals.Under("")
		exact, _, err := calico.Restore(obj.Object, fields)
		if err != nil {
			p, err = unparseable(resource, "", err)
			return nil, err
		}
		maps.Copy(fields, override)
		restored, changes, err := calico.Restore(obj.Object, fields)
		if err != nil {
			p, err = unparseable(resource, "", err)
			return nil, err
		}
		e := resourceEdit{resource: resource, changes: asConfigChanges(resource, "", changes), managedFields: obj.GetManagedFields()}
		if len(changes) > 0 {
			e.write = r.mergePatch(obj.DeepCopy(), &unstructured.Unstructured{Object: restored})
		}
		p.edits = append(p.edits, e)
		return exact, nil
	}
	// Calico takes an absent or zero MTU from the NIC when calico-node starts: until the NICs
	// are back, the pod MTU is stated.
	var bridged string
	if b != nil {
		bridged = strconv.Itoa(int(b.podMTU))
	}
	if det.Calico == plan.CalicoOperatorInstall {
		if det.calico.installation == nil {
			return original, cniPlan{problem: &plan.Problem{Reason: mtuv1alpha1.ReasonCNINotFound, Message: "the Installation is gone"}}, nil
		}
		var override map[string]string
		if bridged != "" {
			override = map[string]string{"spec.calicoNetwork.mtu": bridged}
		}
		exact, err := restoreCR(installationGVK, det.calico.installation, override)
		if err != nil || p.problem != nil {
			return original, p, err
		}
		original.encapsulation = mtuv1alpha1.EncapsulationType(calico.OperatorEncapsulation(exact))
		original.podMTU = int32(calico.InstallationPodMTU(exact))
		return original, p, nil
	}
	var felix map[string]any
	if det.calico.felix != nil {
		exact, err := restoreCR(felixConfigurationGVK, det.calico.felix, nil)
		if err != nil || p.problem != nil {
			return original, p, err
		}
		felix = exact
	}
	var pools []map[string]any
	for i := range det.calico.pools {
		exact, err := restoreCR(ipPoolGVK, &det.calico.pools[i], nil)
		if err != nil || p.problem != nil {
			return original, p, err
		}
		pools = append(pools, exact)
	}
	original.encapsulation = mtuv1alpha1.EncapsulationType(calico.ManifestEncapsulation(felix, pools))
	if det.seen.CalicoConfigMap {
		data, edit, err := r.restoreCalicoConfig(ctx, bridged)
		if err != nil || edit.problem != nil {
			return original, edit, err
		}
		p.edits = append(p.edits, edit.edits...)
		original.podMTU = int32(calico.ConfigPodMTU(data))
	}
	return original, p, nil
}

// restoreCalicoConfig puts calico-config's keys back (veth_mtu), with a merge patch that can
// also remove a key the operator added; bridged, when set, is the veth_mtu stated meanwhile.
func (r *NetworkMTUPolicyReconciler) restoreCalicoConfig(ctx context.Context, bridged string) (exact map[string]string, p cniPlan, err error) {
	cm := &corev1.ConfigMap{}
	key := types.NamespacedName{Namespace: plan.CalicoConfigNamespace, Name: plan.CalicoConfigMap}
	if err := r.Get(ctx, key, cm); err != nil {
		return nil, cniPlan{}, err
	}
	resource := fmt.Sprintf("ConfigMap %s/%s", key.Namespace, key.Name)
	originals, err := plan.ParseOriginals(cm.Annotations)
	if err != nil {
		return nil, unreadableOriginals(resource, err), nil
	}
	fields := originals.Under("")
	exact, _ = calico.RestoreCalicoConfig(cm.Data, fields)
	if bridged != "" {
		fields[plan.CalicoConfigKey] = bridged
	}
	restored, changes := calico.RestoreCalicoConfig(cm.Data, fields)
	e := resourceEdit{resource: resource, changes: asConfigChanges(resource, "", changes), managedFields: cm.ManagedFields,
		daemonSet: &types.NamespacedName{Namespace: plan.CalicoConfigNamespace, Name: plan.CalicoNodeDaemonSet}}
	if len(changes) > 0 {
		target := cm.DeepCopy()
		target.Data = restored
		e.write = r.mergePatch(cm.DeepCopy(), target)
	}
	return exact, cniPlan{edits: []resourceEdit{e}}, nil
}

func describeProblem(o plan.Outcome) string {
	for _, p := range []*plan.Problem{o.Stalled, o.Waiting} {
		if p != nil {
			return p.Message
		}
	}
	return ""
}

// dropOriginals removes the originals annotation from every CNI object once a restore put the
// values back.
func (r *NetworkMTUPolicyReconciler) dropOriginals(ctx context.Context) error {
	patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, plan.OriginalsAnnotation)))
	var objects []client.Object
	for _, key := range []types.NamespacedName{
		{Namespace: plan.FlannelNamespace, Name: plan.FlannelConfigMap}, {Namespace: plan.FlannelLegacyNamespace, Name: plan.FlannelConfigMap},
		{Namespace: plan.AntreaNamespace, Name: plan.AntreaConfigMap}, {Namespace: plan.CalicoConfigNamespace, Name: plan.CalicoConfigMap},
	} {
		cm := &corev1.ConfigMap{}
		if err := r.Get(ctx, key, cm); err != nil {
			if client.IgnoreNotFound(err) == nil {
				continue
			}
			return err
		}
		objects = append(objects, cm)
	}
	for _, cr := range []struct {
		gvk  schema.GroupVersionKind
		name string
	}{{installationGVK, plan.CalicoInstallation}, {felixConfigurationGVK, plan.CalicoFelixConfiguration}} {
		obj, err := r.getCR(ctx, cr.gvk, cr.name)
		if err != nil {
			return err
		}
		if obj != nil {
			objects = append(objects, obj)
		}
	}
	pools, err := r.ipPools(ctx)
	if err != nil {
		return err
	}
	for i := range pools {
		objects = append(objects, &pools[i])
	}
	for _, o := range objects {
		if _, ok := o.GetAnnotations()[plan.OriginalsAnnotation]; !ok {
			continue
		}
		if err := r.Patch(ctx, o, patch, client.FieldOwner(FieldManager)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("removing the originals of %s %s after restoring them: %w", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
		}
	}
	return nil
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

func nicNote(t restoreTarget) string {
	if len(t.UnderlayByNode) == 0 {
		return ""
	}
	return fmt.Sprintf(", each NIC back to its original MTU, the smallest %d", t.underlay)
}
