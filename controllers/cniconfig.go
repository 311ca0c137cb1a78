package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/cni/antrea"
	"github.com/mtu-operator/mtu-operator/internal/cni/calico"
	"github.com/mtu-operator/mtu-operator/internal/cni/flannel"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// The Calico kinds the operator edits.
var (
	installationGVK       = schema.GroupVersionKind{Group: "operator.tigera.io", Version: "v1", Kind: "Installation"}
	felixConfigurationGVK = schema.GroupVersionKind{Group: "crd.projectcalico.org", Version: "v1", Kind: "FelixConfiguration"}
	ipPoolGVK             = schema.GroupVersionKind{Group: "crd.projectcalico.org", Version: "v1", Kind: "IPPool"}
)

// resourceEdit is the outcome of editing one CNI resource: the changes, and how to write them.
type resourceEdit struct {
	// resource names the object as status shows it.
	resource string
	changes  []mtuv1alpha1.ConfigChange
	// write applies the edit; it fails with a conflict if the object changed since it was read.
	write func(ctx context.Context) error
	// daemonSet is the agent DaemonSet that must restart to read this resource, if any.
	daemonSet *types.NamespacedName
	// managedFields are the resource's, as read: who wrote it, and when.
	managedFields []metav1.ManagedFieldsEntry
}

// cniPlan is every edit a policy needs, or why there can be none.
type cniPlan struct {
	edits   []resourceEdit
	problem *plan.Problem
	// ownStep: the documents differ from what the operator last wrote because its own next
	// step changes them (a restore's), not because someone reverted them.
	ownStep bool
}

func (p cniPlan) changes() []mtuv1alpha1.ConfigChange {
	var all []mtuv1alpha1.ConfigChange
	for _, e := range p.edits {
		all = append(all, e.changes...)
	}
	return all
}

// writersSince are the other field managers that changed a resource with pending changes since
// the operator wrote it, each once, the earliest first.
func (p cniPlan) writersSince(written time.Time) []plan.Writer {
	var all []plan.Writer
	for _, e := range p.edits {
		if len(e.changes) > 0 {
			all = append(all, plan.WritersSince(e.managedFields, FieldManager, written)...)
		}
	}
	slices.SortStableFunc(all, func(a, b plan.Writer) int { return a.Time.Compare(b.Time) })
	var out []plan.Writer
	for _, w := range all {
		if !slices.ContainsFunc(out, func(o plan.Writer) bool { return o.Manager == w.Manager }) {
			out = append(out, w)
		}
	}
	return out
}

// daemonSets are the agent DaemonSets that read the edited documents, changed or not.
func (p cniPlan) daemonSets() []types.NamespacedName {
	var out []types.NamespacedName
	for _, e := range p.edits {
		if e.daemonSet != nil && !slices.Contains(out, *e.daemonSet) {
			out = append(out, *e.daemonSet)
		}
	}
	return out
}

// restarts are the agent DaemonSets that must restart to read the changed documents.
func (p cniPlan) restarts() []types.NamespacedName {
	var out []types.NamespacedName
	for _, e := range p.edits {
		if e.daemonSet != nil && len(e.changes) > 0 && !slices.Contains(out, *e.daemonSet) {
			out = append(out, *e.daemonSet)
		}
	}
	return out
}

// calicoObjects are the Calico custom resources seeCNIs read, kept so that planning edits
// the same copies instead of reading them from the API server again (they are not cached).
type calicoObjects struct {
	installation, felix *unstructured.Unstructured // nil when absent
	pools               []unstructured.Unstructured
}

// seeCNIs gathers which CNI configuration objects exist, and Calico's as read.
func (r *NetworkMTUPolicyReconciler) seeCNIs(ctx context.Context) (plan.Seen, calicoObjects, error) {
	var seen plan.Seen
	var objs calicoObjects
	for _, ns := range []string{plan.FlannelNamespace, plan.FlannelLegacyNamespace} {
		found, err := r.exists(ctx, &corev1.ConfigMap{}, ns, plan.FlannelConfigMap)
		if err != nil {
			return seen, objs, err
		}
		if found {
			seen.FlannelConfigMapNamespace = ns
			break
		}
	}
	var err error
	if seen.CalicoConfigMap, err = r.exists(ctx, &corev1.ConfigMap{}, plan.CalicoConfigNamespace, plan.CalicoConfigMap); err != nil {
		return seen, objs, err
	}
	if seen.AntreaConfigMap, err = r.exists(ctx, &corev1.ConfigMap{}, plan.AntreaNamespace, plan.AntreaConfigMap); err != nil {
		return seen, objs, err
	}
	if objs.installation, err = r.getCR(ctx, installationGVK, plan.CalicoInstallation); err != nil {
		return seen, objs, err
	}
	if objs.felix, err = r.getCR(ctx, felixConfigurationGVK, plan.CalicoFelixConfiguration); err != nil {
		return seen, objs, err
	}
	if objs.pools, err = r.ipPools(ctx); err != nil {
		return seen, objs, err
	}
	seen.CalicoInstallation, seen.CalicoFelixConfiguration = objs.installation != nil, objs.felix != nil
	seen.CalicoIPPools = len(objs.pools)
	return seen, objs, nil
}

func (r *NetworkMTUPolicyReconciler) exists(ctx context.Context, obj client.Object, namespace, name string) (bool, error) {
	err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// getCR reads a cluster-scoped Calico object with the uncached reader, nil when it (or its
// kind) is absent: Calico's CRDs may not exist, and the operator does not cache objects of
// kinds it does not own.
func (r *NetworkMTUPolicyReconciler) getCR(ctx context.Context, gvk schema.GroupVersionKind, name string) (*unstructured.Unstructured, error) {
	if r.absentKinds.absent(gvk) {
		return nil, nil
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: name}, u); err != nil {
		r.absentKinds.see(gvk, err)
		if isAbsent(err) {
			return nil, nil
		}
		return nil, err
	}
	return u, nil
}

func (r *NetworkMTUPolicyReconciler) ipPools(ctx context.Context) ([]unstructured.Unstructured, error) {
	if r.absentKinds.absent(ipPoolGVK) {
		return nil, nil
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(ipPoolGVK.GroupVersion().WithKind("IPPoolList"))
	if err := r.APIReader.List(ctx, list); err != nil {
		r.absentKinds.see(ipPoolGVK, err)
		if isAbsent(err) {
			return nil, nil
		}
		return nil, err
	}
	return list.Items, nil
}

// absentKinds remembers, for resyncPeriod, the kinds the API server does not serve (Calico's
// custom resources in a cluster without Calico): asking for one makes the client reload API
// discovery for its group, which returns 404, on every reconcile of a rollout. A kind
// installed since is seen at the latest one resync later.
type absentKinds struct {
	mu    sync.Mutex
	since map[schema.GroupVersionKind]time.Time
}

func (a *absentKinds) absent(gvk schema.GroupVersionKind) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.since[gvk]
	return ok && time.Since(t) < resyncPeriod
}

// see records whether err says the API server does not serve gvk.
func (a *absentKinds) see(gvk schema.GroupVersionKind, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !meta.IsNoMatchError(err) {
		delete(a.since, gvk)
		return
	}
	if a.since == nil {
		a.since = map[schema.GroupVersionKind]time.Time{}
	}
	a.since[gvk] = time.Now()
}

// isAbsent: the object, or its kind, does not exist in this cluster.
func isAbsent(err error) bool {
	return apierrors.IsNotFound(err) || meta.IsNoMatchError(err)
}

// planCNI computes the edits that bring the detected CNI's configuration to the target's
// settings.
func (r *NetworkMTUPolicyReconciler) planCNI(ctx context.Context, det detected, target plan.CNITarget, replaced []mtuv1alpha1.ConfigChange) (cniPlan, error) {
	switch det.Provider {
	case mtuv1alpha1.CNIFlannel:
		want := target.Flannel
		ns := det.seen.FlannelConfigMapNamespace
		return r.planConfigMap(ctx, ns, plan.FlannelConfigMap, plan.FlannelConfigKey, &types.NamespacedName{Namespace: ns, Name: plan.FlannelDaemonSet},
			func(doc string, remembered cni.Remembered) ([]byte, []cni.Change, error) {
				return flannel.Edit([]byte(doc), want, remembered)
			}, replaced)
	case mtuv1alpha1.CNIAntrea:
		want := target.Antrea
		return r.planConfigMap(ctx, plan.AntreaNamespace, plan.AntreaConfigMap, plan.AntreaConfigKey, &types.NamespacedName{Namespace: plan.AntreaNamespace, Name: plan.AntreaDaemonSet},
			func(doc string, _ cni.Remembered) ([]byte, []cni.Change, error) {
				return antrea.Edit([]byte(doc), want)
			}, replaced)
	case mtuv1alpha1.CNICalico:
		return r.planCalico(ctx, det, target.Calico, replaced)
	default:
		return cniPlan{}, fmt.Errorf("no editor for CNI %q", det.Provider)
	}
}

type documentEditor func(doc string, remembered cni.Remembered) ([]byte, []cni.Change, error)

// planConfigMap edits one key of a ConfigMap. The write is a server-side apply of that key
// alone, under the operator's field manager, pinned to the resourceVersion that was edited.
func (r *NetworkMTUPolicyReconciler) planConfigMap(ctx context.Context, namespace, name, key string, daemonSet *types.NamespacedName, edit documentEditor, replaced []mtuv1alpha1.ConfigChange) (cniPlan, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, cm); err != nil {
		return cniPlan{}, err
	}
	resource := fmt.Sprintf("ConfigMap %s/%s", namespace, name)
	doc, ok := cm.Data[key]
	if !ok {
		return cniPlan{problem: &plan.Problem{Reason: mtuv1alpha1.ReasonUnparseableConfig, Message: fmt.Sprintf("%s has no %s key", resource, key)}}, nil
	}
	prefix := key + ": "
	originals, err := plan.ParseOriginals(cm.Annotations)
	if err != nil {
		return unreadableOriginals(resource, err), nil
	}
	out, changes, err := edit(doc, remembered(originals, replaced, resource, prefix))
	if err != nil {
		return unparseable(resource, key, err)
	}
	e := resourceEdit{resource: resource, changes: asConfigChanges(resource, prefix, changes), daemonSet: daemonSet, managedFields: cm.ManagedFields}
	if len(changes) > 0 {
		e.write = r.applyConfigMap(cm, originals.With(prefix, changes), map[string]string{key: string(out)})
	}
	return cniPlan{edits: []resourceEdit{e}}, nil
}

// remembered are the original values an editor may restore: those recorded on the object,
// and, for an object edited before the operator recorded them there, those in the policy's
// status.
func remembered(originals plan.Originals, replaced []mtuv1alpha1.ConfigChange, resource, prefix string) cni.Remembered {
	r := plan.RememberedFor(replaced, resource, prefix)
	maps.Copy(r, originals.Remembered(prefix))
	return r
}

// unparseable turns an editor's refusal into the policy's Stalled reason; anything else is a bug.
func unparseable(resource, key string, err error) (cniPlan, error) {
	if errors.Is(err, cni.ErrUnparseable) || errors.Is(err, cni.ErrUnexpectedShape) {
		where := resource
		if key != "" {
			where += " key " + key
		}
		return cniPlan{problem: &plan.Problem{Reason: mtuv1alpha1.ReasonUnparseableConfig, Message: fmt.Sprintf("%s was left untouched: %v", where, err)}}, nil
	}
	return cniPlan{}, err
}

// unreadableOriginals is the plan of an object whose originals annotation does not parse: the
// operator will not write it and lose the originals.
func unreadableOriginals(resource string, err error) cniPlan {
	p, _ := unparseable(resource, "", fmt.Errorf("%w: %w", cni.ErrUnparseable, err))
	return p
}

// applyConfigMap writes the given data keys and the originals annotation of a ConfigMap with a
// server-side apply under the operator's field manager, pinned to the resourceVersion read.
func (r *NetworkMTUPolicyReconciler) applyConfigMap(cm *corev1.ConfigMap, originals plan.Originals, data map[string]string) func(context.Context) error {
	apply := corev1ac.ConfigMap(cm.Name, cm.Namespace).WithResourceVersion(cm.ResourceVersion).
		WithAnnotations(map[string]string{plan.OriginalsAnnotation: originals.Annotation()}).
		WithData(data)
	return func(ctx context.Context) error {
		return r.Apply(ctx, apply, client.FieldOwner(FieldManager), client.ForceOwnership)
	}
}

// mergePatch writes after as a JSON merge patch from before, failing with a conflict if the
// object changed since before was read.
func (r *NetworkMTUPolicyReconciler) mergePatch(before, after client.Object) func(context.Context) error {
	return func(ctx context.Context) error {
		return r.Patch(ctx, after, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager))
	}
}

func asConfigChanges(resource, prefix string, changes []cni.Change) []mtuv1alpha1.ConfigChange {
	out := make([]mtuv1alpha1.ConfigChange, 0, len(changes))
	for _, c := range changes {
		out = append(out, mtuv1alpha1.ConfigChange{Resource: resource, Path: prefix + c.Path, From: truncate(c.Old), To: truncate(c.New)})
	}
	return out
}

// truncate keeps status values within the CRD's bound; MTU fields are short, but a removed
// option can hold any JSON.
func truncate(s string) string {
	const limit = 1024
	if len(s) <= limit {
		return s
	}
	return s[:limit-len("…")] + "…"
}

// planCalico edits the Calico objects of the install kind that was detected. Calico's custom
// resources are written with JSON merge patches pinned to the resourceVersion that was edited:
// Installation's ipPools is an atomic list, which server-side apply would make the operator
// own whole.
func (r *NetworkMTUPolicyReconciler) planCalico(ctx context.Context, det detected, want mtu.Calico, replaced []mtuv1alpha1.ConfigChange) (cniPlan, error) {
	var p cniPlan
	addCR := func(gvk schema.GroupVersionKind, obj *unstructured.Unstructured, edit func(map[string]any, mtu.Calico, cni.Remembered) (map[string]any, []cni.Change, error)) error {
		resource := fmt.Sprintf("%s %s", gvk.Kind, obj.GetName())
		originals, err := plan.ParseOriginals(obj.GetAnnotations())
		if err != nil {
			p.problem = unreadableOriginals(resource, err).problem
			return nil
		}
		edited, changes, err := edit(obj.Object, want, remembered(originals, replaced, resource, ""))
		if err != nil {
			bad, err := unparseable(resource, "", err)
			if bad.problem != nil {
				p.problem = bad.problem
			}
			return err
		}
		e := resourceEdit{resource: resource, changes: asConfigChanges(resource, "", changes), managedFields: obj.GetManagedFields()}
		if len(changes) > 0 {
			original := obj.DeepCopy()
			target := (&unstructured.Unstructured{Object: edited}).DeepCopy()
			annotations := target.GetAnnotations()
			if annotations == nil {
				annotations = map[string]string{}
			}
			annotations[plan.OriginalsAnnotation] = originals.With("", changes).Annotation()
			target.SetAnnotations(annotations)
			e.write = r.mergePatch(original, target)
		}
		p.edits = append(p.edits, e)
		return nil
	}

	if det.Calico == plan.CalicoOperatorInstall && det.calico.installation != nil {
		if err := addCR(installationGVK, det.calico.installation, calico.EditInstallation); err != nil || p.problem != nil {
			return p, err
		}
		// The Tigera operator rolls calico-node itself when the Installation changes.
	}
	if det.Calico == plan.CalicoManifestInstall || want.WireGuard {
		if det.calico.felix != nil {
			if err := addCR(felixConfigurationGVK, det.calico.felix, ignoreMemory(calico.EditFelixConfiguration)); err != nil || p.problem != nil {
				return p, err
			}
		}
	}
	if det.Calico == plan.CalicoManifestInstall {
		for i := range det.calico.pools {
			if err := addCR(ipPoolGVK, &det.calico.pools[i], calico.EditIPPool); err != nil || p.problem != nil {
				return p, err
			}
		}
		if det.seen.CalicoConfigMap {
			// calico-node's install-cni container reads veth_mtu when it starts.
			edit, err := r.planCalicoConfig(ctx, want)
			if err != nil || edit.problem != nil {
				return edit, err
			}
			p.edits = append(p.edits, edit.edits...)
		}
	}
	return p, nil
}

// planCalicoConfig sets veth_mtu in the calico-config ConfigMap with a server-side apply of
// that key.
func (r *NetworkMTUPolicyReconciler) planCalicoConfig(ctx context.Context, want mtu.Calico) (cniPlan, error) {
	cm := &corev1.ConfigMap{}
	key := types.NamespacedName{Namespace: plan.CalicoConfigNamespace, Name: plan.CalicoConfigMap}
	if err := r.Get(ctx, key, cm); err != nil {
		return cniPlan{}, err
	}
	resource := fmt.Sprintf("ConfigMap %s/%s", key.Namespace, key.Name)
	originals, err := plan.ParseOriginals(cm.Annotations)
	if err != nil {
		return unreadableOriginals(resource, err), nil
	}
	data, changes, err := calico.EditCalicoConfig(cm.Data, want)
	if err != nil {
		return unparseable(resource, plan.CalicoConfigKey, err)
	}
	e := resourceEdit{resource: resource, changes: asConfigChanges(resource, "", changes), managedFields: cm.ManagedFields,
		daemonSet: &types.NamespacedName{Namespace: plan.CalicoConfigNamespace, Name: plan.CalicoNodeDaemonSet}}
	if len(changes) > 0 {
		owned := map[string]string{}
		for _, c := range changes {
			owned[c.Path] = data[c.Path]
		}
		e.write = r.applyConfigMap(cm, originals.With("", changes), owned)
	}
	return cniPlan{edits: []resourceEdit{e}}, nil
}

// restartAnnotation is set on a DaemonSet's pod template to restart its pods, as
// `kubectl rollout restart` does; the DaemonSet's update strategy paces the restart.
const restartAnnotation = "networking.mtu-operator.io/restartedAt"

// restartDaemonSet restarts a CNI agent DaemonSet; a missing DaemonSet is reported, not an error.
func (r *NetworkMTUPolicyReconciler) restartDaemonSet(ctx context.Context, name types.NamespacedName, at string) (bool, error) {
	ds := &appsv1.DaemonSet{}
	if err := r.Get(ctx, name, ds); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`, restartAnnotation, at)
	return true, r.Patch(ctx, ds, client.RawPatch(types.MergePatchType, []byte(patch)), client.FieldOwner(FieldManager))
}

func namesOf(names []types.NamespacedName) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, n.String())
	}
	return out
}

func describeChanges(changes []mtuv1alpha1.ConfigChange) string {
	var parts []string
	for _, c := range changes {
		parts = append(parts, fmt.Sprintf("%s %s: %s → %s", c.Resource, c.Path, orAbsent(c.From), orAbsent(c.To)))
	}
	return strings.Join(parts, "; ")
}

func orAbsent(v string) string {
	if v == "" {
		return "(absent)"
	}
	return v
}

// ignoreMemory adapts an editor that needs no remembered values.
func ignoreMemory(edit func(map[string]any, mtu.Calico) (map[string]any, []cni.Change, error)) func(map[string]any, mtu.Calico, cni.Remembered) (map[string]any, []cni.Change, error) {
	return func(obj map[string]any, want mtu.Calico, _ cni.Remembered) (map[string]any, []cni.Change, error) {
		return edit(obj, want)
	}
}
