package controllers

import (
	"context"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// TestPreviewPlansAndWritesNothing: a preview of a policy that does not exist says what its
// CNI change would be, as the reconciler decides it, and leaves no trace: no policy, no
// transition, no node state, the ConfigMap untouched.
func TestPreviewPlansAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	flannelFixture(t, flannelNetConf)
	before := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").ResourceVersion
	p := newPolicy("preview-only", 9000, mtuv1alpha1.EncapsulationVXLAN)
	p.Spec.Mode = mtuv1alpha1.ModeApply

	preview, _, err := Preview(ctx, env.Client, p)
	if err != nil {
		t.Fatal(err)
	}
	if preview.Status.PodMTU != 8950 || preview.Status.CNI != mtuv1alpha1.CNIFlannel {
		t.Errorf("preview computed pod MTU %d for %q; want 8950 for Flannel", preview.Status.PodMTU, preview.Status.CNI)
	}
	if !slices.ContainsFunc(preview.Status.PlannedChanges, func(c mtuv1alpha1.ConfigChange) bool {
		return c.Resource == "ConfigMap kube-flannel/kube-flannel-cfg" && c.Path == "net-conf.json: Backend.MTU" && c.To == "9000"
	}) {
		t.Errorf("planned changes %+v; want flannel's Backend.MTU to 9000 (flanneld subtracts VXLAN's overhead)", preview.Status.PlannedChanges)
	}
	if !slices.Contains(preview.Status.AgentRestarts, "kube-flannel/kube-flannel-ds") {
		t.Errorf("agent restarts %v; want flannel's DaemonSet", preview.Status.AgentRestarts)
	}
	if p.Spec.Mode != mtuv1alpha1.ModeApply {
		t.Errorf("Preview changed the policy it was given")
	}

	if got := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").ResourceVersion; got != before {
		t.Errorf("the ConfigMap was written: version %s, was %s", got, before)
	}
	for _, obj := range []struct {
		kind string
		err  error
	}{
		{"NetworkMTUPolicy", env.Client.Get(ctx, types.NamespacedName{Name: p.Name}, &mtuv1alpha1.NetworkMTUPolicy{})},
		{"NetworkMTUTransition", env.Client.Get(ctx, types.NamespacedName{Name: p.Name}, &mtuv1alpha1.NetworkMTUTransition{})},
	} {
		if !apierrors.IsNotFound(obj.err) {
			t.Errorf("%s %s after a preview: %v; want none", obj.kind, p.Name, obj.err)
		}
	}
	var states mtuv1alpha1.NodeMTUStateList
	if err := env.Client.List(ctx, &states); err != nil {
		t.Fatal(err)
	}
	for _, s := range states.Items {
		if s.Spec.Policy == p.Name {
			t.Errorf("NodeMTUState %s created for the previewed policy", s.Name)
		}
	}
}
