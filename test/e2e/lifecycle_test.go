package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
	"github.com/mtu-operator/mtu-operator/test/e2e/story"
)

// TestDeletingAPolicyMidMigration deletes a policy while its migration has every route pinned:
// the policy goes, no NodeMTUState is left, no route in any node's kernel keeps a pinned MTU,
// and traffic of the routable size loses nothing throughout.
func TestDeletingAPolicyMidMigration(t *testing.T) {
	ctx := context.Background()
	l := startLabWith(t, lab.Options{CNI: lab.Flannel, Nodes: []lab.NodeSpec{{Name: "node-a", UnderlayMTU: 1500}, {Name: "node-b", UnderlayMTU: 1500}, {Name: "node-c", UnderlayMTU: 1500}}})
	w, err := story.NewWorld(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	traffic, err := w.StartTraffic(ctx, matrixPaths)
	if err != nil {
		t.Fatal(err)
	}
	defer traffic.Stop()
	up := migration{mtu: 9000, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1"}
	if err := w.Apply(ctx, story.Step{Policy: up.policy()}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitFor(ctx, "routes pinned on every node while the CNI's agents restart", time.Minute, func(ctx context.Context) error {
		p, err := story.Policy(ctx, l)
		if err != nil {
			return err
		}
		if m := p.Status.Migration; m == nil || m.Phase != mtuv1alpha1.MigrationRestartingCNI {
			return fmt.Errorf("migration %v", m)
		}
		for _, n := range l.Nodes {
			pinned, err := n.PinnedRoutes()
			if err != nil {
				return err
			}
			if len(pinned) == 0 {
				return fmt.Errorf("%s has no pinned route yet", n.Name)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p, err := story.Policy(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deleting the policy in phase %v", p.Status.Migration)
	deletePolicy(ctx, t, l, p.Name, "the policy gone", time.Minute)
	var states mtuv1alpha1.NodeMTUStateList
	if err := l.Client.List(ctx, &states); err != nil {
		t.Fatal(err)
	}
	if len(states.Items) > 0 {
		t.Errorf("%d NodeMTUStates left after the policy went", len(states.Items))
	}
	if err := pinsLeft(l); err != nil {
		t.Errorf("after the policy went: %v", err)
	}
	for _, r := range traffic.Stop() {
		s := r.Report.Size(story.RoutableSize)
		t.Logf("%s while the policy was applied and deleted: %s", r.Path, s)
		if s.Lost > 0 {
			t.Errorf("%s lost %d datagrams of %d B:\n%s", r.Path, s.Lost, story.RoutableSize, r.Report)
		}
	}
}

// TestDeletingWithRestore raises a lab from 1500 to jumbo frames, then deletes the policy with
// deletionPolicy Restore: before it goes, a paced migration carries everything back. For each
// CNI (the real flanneld; Calico's and Antrea's stand-ins), the CNI's configuration objects
// hold their original data again, every NIC, device and pod has the MTU it had before the
// policy, no pin, no NodeMTUState and no originals annotation is left, and no datagram of the
// routable size was lost while going up and back down.
func TestDeletingWithRestore(t *testing.T) {
	for _, cni := range []lab.CNI{lab.Flannel, lab.Calico, lab.Antrea} {
		t.Run(string(cni), func(t *testing.T) { deleteWithRestore(t, cni) })
	}
}

func deleteWithRestore(t *testing.T, cni lab.CNI) {
	ctx := context.Background()
	l := startLabWith(t, lab.Options{CNI: cni, Nodes: []lab.NodeSpec{{Name: "node-a", UnderlayMTU: 1500}, {Name: "node-b", UnderlayMTU: 1500}, {Name: "node-c", UnderlayMTU: 1500}}})
	w, err := story.NewWorld(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	configBefore := cniConfig(ctx, t, l)
	linksBefore := map[string]map[string]int{}
	for _, n := range l.Nodes {
		if linksBefore[n.Name], err = n.LinkMTUs(); err != nil {
			t.Fatal(err)
		}
	}
	podsBefore, err := l.PodMTUs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	traffic, err := w.StartTraffic(ctx, matrixPaths)
	if err != nil {
		t.Fatal(err)
	}
	defer traffic.Stop()
	up := migration{mtu: 9000, encap: mtuv1alpha1.EncapsulationVXLAN, maxUnavailable: "1"}
	if err := w.Apply(ctx, story.Step{Policy: up.policy() + "  deletionPolicy: Restore\n"}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitFor(ctx, "the policy Ready at 9000", 3*time.Minute, policyReady(l)); err != nil {
		t.Fatal(err)
	}
	p, err := story.Policy(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	deletePolicy(ctx, t, l, p.Name, "the policy restored and gone", 4*time.Minute)
	var events eventsv1.EventList
	if err := l.Client.List(ctx, &events); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Regarding.Name == story.PolicyName && (e.Reason == "Restoring" || e.Reason == mtuv1alpha1.ReasonConfigWritten || strings.HasPrefix(e.Reason, "Restore")) {
			t.Logf("event %s: %s", e.Reason, e.Note)
		}
	}

	configAfter := cniConfig(ctx, t, l)
	for name, before := range configBefore {
		if after := configAfter[name]; after != before {
			t.Errorf("%s after the restore:\n%s\nwant the original:\n%s", name, after, before)
		}
	}
	for _, n := range l.Nodes {
		after, err := n.LinkMTUs()
		if err != nil {
			t.Fatal(err)
		}
		for link, want := range linksBefore[n.Name] {
			if after[link] != want {
				t.Errorf("%s %s at %d after the restore, want %d as before the policy", n.Name, link, after[link], want)
			}
		}
		if cni == lab.Flannel {
			// What flanneld hands to pods started from now on.
			if env, err := n.SubnetEnv(); err != nil || env["FLANNEL_MTU"] != "1450" {
				t.Errorf("%s: flanneld's subnet.env says FLANNEL_MTU=%s (%v), want 1450", n.Name, env["FLANNEL_MTU"], err)
			}
		}
	}
	podsAfter, err := l.PodMTUs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(podsAfter) != fmt.Sprint(podsBefore) {
		t.Errorf("pod MTUs after the restore: %v, want as before: %v", podsAfter, podsBefore)
	}
	var states mtuv1alpha1.NodeMTUStateList
	if err := l.Client.List(ctx, &states); err != nil {
		t.Fatal(err)
	}
	if len(states.Items) > 0 {
		t.Errorf("%d NodeMTUStates left after the policy went", len(states.Items))
	}
	noPinsAnywhere(t, l)
	noLoss(t, traffic.Stop(), "while the policy went up and was restored")
}

// cniConfig is every CNI configuration object of the lab as text: its data or spec, and the
// originals annotation when there is one.
func cniConfig(ctx context.Context, t *testing.T, l *lab.Lab) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, key := range []types.NamespacedName{
		{Namespace: plan.FlannelNamespace, Name: plan.FlannelConfigMap},
		{Namespace: plan.CalicoConfigNamespace, Name: plan.CalicoConfigMap},
		{Namespace: plan.AntreaNamespace, Name: plan.AntreaConfigMap},
	} {
		cm := &corev1.ConfigMap{}
		if err := l.Client.Get(ctx, key, cm); err != nil {
			if client.IgnoreNotFound(err) != nil {
				t.Fatal(err)
			}
			continue
		}
		out["ConfigMap "+key.String()] = fmt.Sprint(cm.Data) + fmt.Sprint(cm.Annotations[plan.OriginalsAnnotation])
	}
	for _, kind := range []string{"FelixConfigurationList", "IPPoolList"} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: "crd.projectcalico.org", Version: "v1", Kind: kind})
		if err := l.Client.List(ctx, list); err != nil {
			if meta.IsNoMatchError(err) {
				continue
			}
			t.Fatal(err)
		}
		for _, o := range list.Items {
			out[o.GetKind()+" "+o.GetName()] = fmt.Sprint(o.Object["spec"]) + o.GetAnnotations()[plan.OriginalsAnnotation]
		}
	}
	return out
}
