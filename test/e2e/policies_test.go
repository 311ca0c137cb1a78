package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
	"github.com/mtu-operator/mtu-operator/test/e2e/story"
)

// policyFor is a policy of underlay mtu over the nodes whose hostname is one of nodes (every
// node when none).
func policyFor(name string, mtu int, nodes ...string) string {
	selector := ""
	if len(nodes) > 0 {
		selector = fmt.Sprintf(`
  nodeSelector:
    matchExpressions:
    - key: kubernetes.io/hostname
      operator: In
      values: [%s]`, strings.Join(nodes, ", "))
	}
	return fmt.Sprintf(`apiVersion: networking.mtu-operator.io/v1alpha1
kind: NetworkMTUPolicy
metadata:
  name: %s
spec:
  underlay:
    source: Declared
    mtu: %d
  encapsulation:
    type: VXLAN
  rollout:
    maxUnavailable: 1
  stalePods:
    action: InPlace%s
`, name, mtu, selector)
}

// TestSeveralPolicies runs the two stories on the real-flannel lab (NICs at 9000).
//
//  1. jumbo-frames (9000, node-a and node-b) and small (1500, node-c), disjoint: neither can
//     change flannel's configuration, which node-c and the others all read, so both are Stalled
//     saying why, and nothing is written or restarted (no fight).
//  2. first and second (both over every node, 9000 then 1500): second is Stalled naming first,
//     with an Event. first is deleted: second takes over with an Event, through a paced
//     migration to pod MTU 1450.
//
// Throughout, no datagram of the routable size is lost, and no pin is left at the end.
func TestSeveralPolicies(t *testing.T) {
	ctx := context.Background()
	l := startLabWith(t, lab.Options{CNI: lab.Flannel, Nodes: []lab.NodeSpec{{Name: "node-a", UnderlayMTU: 9000}, {Name: "node-b", UnderlayMTU: 9000}, {Name: "node-c", UnderlayMTU: 9000}}})
	w, err := story.NewWorld(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	traffic, err := w.StartTraffic(ctx, matrixPaths)
	if err != nil {
		t.Fatal(err)
	}
	defer traffic.Stop()
	apply := func(doc string) {
		t.Helper()
		if err := w.Apply(ctx, story.Step{Policy: doc}); err != nil {
			t.Fatal(err)
		}
	}
	stalled := func(name, reason, mentions string) {
		t.Helper()
		if err := l.WaitFor(ctx, name+" Stalled "+reason, time.Minute, func(ctx context.Context) error {
			p := &mtuv1alpha1.NetworkMTUPolicy{}
			if err := l.Client.Get(ctx, types.NamespacedName{Name: name}, p); err != nil {
				return err
			}
			c := meta.FindStatusCondition(p.Status.Conditions, mtuv1alpha1.ConditionStalled)
			if c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason || !strings.Contains(c.Message, mentions) {
				return fmt.Errorf("Stalled %+v", c)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func() *corev1.ConfigMap {
		t.Helper()
		cm := &corev1.ConfigMap{}
		if err := l.Client.Get(ctx, types.NamespacedName{Namespace: "kube-flannel", Name: "kube-flannel-cfg"}, cm); err != nil {
			t.Fatal(err)
		}
		return cm
	}
	deleteAndWait := func(name string) { t.Helper(); deletePolicy(ctx, t, l, name, name+" gone", time.Minute) }

	// 1. Disjoint selectors, different values.
	before := cfg().ResourceVersion
	pods, err := l.CNIPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	apply(policyFor("jumbo-frames", 9000, "node-a", "node-b"))
	time.Sleep(time.Second) // creation times have seconds only: small must be younger
	apply(policyFor("small", 1500, "node-c"))
	stalled("small", mtuv1alpha1.ReasonCNIConfigOwned, "jumbo-frames")
	stalled("jumbo-frames", mtuv1alpha1.ReasonCNIConfigShared, "node-c")
	time.Sleep(5 * time.Second)
	if rv := cfg().ResourceVersion; rv != before {
		t.Errorf("the CNI configuration was written while two policies disagree:\n%s", cfg().Data["net-conf.json"])
	}
	if after, err := l.CNIPods(ctx); err != nil || fmt.Sprint(podNames(after)) != fmt.Sprint(podNames(pods)) {
		t.Errorf("CNI agent pods changed: %v → %v (%v)", podNames(pods), podNames(after), err)
	}
	deleteAndWait("small")
	deleteAndWait("jumbo-frames")

	// 2. Overlapping selectors: the older wins; deleting it hands the nodes over.
	apply(policyFor("first", 9000))
	if err := l.WaitFor(ctx, "first Ready", 2*time.Minute, readyPolicy(l, "first")); err != nil {
		t.Fatal(err)
	}
	apply(policyFor("second", 1500))
	stalled("second", mtuv1alpha1.ReasonNodeSelectorClash, "first")
	deleteAndWait("first")
	if err := l.WaitFor(ctx, "second Ready", 3*time.Minute, readyPolicy(l, "second")); err != nil {
		t.Fatal(err)
	}
	for _, reason := range []string{mtuv1alpha1.ReasonNodeSelectorClash, "NodesTakenOver"} {
		if !hasPolicyEvent(ctx, t, l, "second", reason) {
			t.Errorf("no %s Event for second", reason)
		}
	}
	if b := cfg().Data["net-conf.json"]; !strings.Contains(b, `"MTU": 1500`) {
		t.Errorf("net-conf.json after second took over:\n%s", b)
	}
	podMTUs, err := l.PodMTUs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for pod, m := range podMTUs {
		if m != 1450 {
			t.Errorf("pod %s at %d, want 1450", pod, m)
		}
	}
	noPinsAnywhere(t, l)
	noLoss(t, traffic.Stop(), "while several policies came and went")
}

func podNames(pods map[string]corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	slices.Sort(out)
	return out
}

func readyPolicy(l *lab.Lab, name string) func(context.Context) error {
	return func(ctx context.Context) error {
		p := &mtuv1alpha1.NetworkMTUPolicy{}
		if err := l.Client.Get(ctx, types.NamespacedName{Name: name}, p); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, mtuv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != p.Generation {
			return fmt.Errorf("not Ready: %+v", c)
		}
		return nil
	}
}

func hasPolicyEvent(ctx context.Context, t *testing.T, l *lab.Lab, policy, reason string) bool {
	t.Helper()
	var events eventsv1.EventList
	if err := l.Client.List(ctx, &events); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Regarding.Name == policy && e.Reason == reason {
			return true
		}
	}
	return false
}
