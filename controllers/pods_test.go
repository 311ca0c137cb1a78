package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/agent"
	"github.com/mtu-operator/mtu-operator/internal/remediate"
)

// stalePodFixture creates a Running pod on node; owned says whether a ReplicaSet controls it.
func stalePodFixture(t *testing.T, name, node string, owned bool) {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{}
	p.Namespace, p.Name = "default", name
	p.Spec.NodeName = node
	p.Spec.Containers = []corev1.Container{{Name: "app", Image: "registry.example/app:v1"}}
	if owned {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: types.UID("rs-" + name), Controller: &yes}}
	}
	createObject(t, p)
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if err := env.Client.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Evicted pods stay Terminating without a kubelet: finish them.
		_ = env.Client.Delete(ctx, p, client.GracePeriodSeconds(0))
	})
}

// simulateAgent runs a simulated agent on node for the rest of the test: it reports as the
// real agent does, with the given stale pods.
func simulateAgent(t *testing.T, a *agent.Simulated) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx, 50*time.Millisecond)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestStalePodsReportedThenEvicted(t *testing.T) {
	flannelFixture(t, flannelNetConf)
	node := &corev1.Node{}
	node.Name = "stale-node"
	createObject(t, node)
	t.Cleanup(func() {
		s := &mtuv1alpha1.NodeMTUState{}
		s.Name = node.Name
		_ = env.Client.Delete(context.Background(), s) // envtest has no garbage collector
	})
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		stalePodFixture(t, name, node.Name, true)
	}
	stalePodFixture(t, "bare", node.Name, false)

	// VXLAN first, then noEncap: pods created under VXLAN keep 1450.
	p := newPolicy("stale-pods", 1500, mtuv1alpha1.EncapsulationVXLAN)
	createPolicy(t, p)
	waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.PodMTU != 1450 {
			return fmt.Errorf("pod MTU %d", p.Status.PodMTU)
		}
		return nil
	})
	updateSpec(t, p, func(s *mtuv1alpha1.NetworkMTUPolicySpec) { s.Encapsulation.Type = mtuv1alpha1.EncapsulationNone })
	waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.PodMTU != 1500 {
			return fmt.Errorf("pod MTU %d", p.Status.PodMTU)
		}
		return nil
	})
	var stale []mtuv1alpha1.StalePod
	for _, name := range []string{"bare", "web-1", "web-2", "web-3"} {
		stale = append(stale, mtuv1alpha1.StalePod{Namespace: "default", Name: name, Interface: "eth0", MTU: 1450})
	}
	simulateAgent(t, &agent.Simulated{Client: env.Client, Node: node.Name, Underlay: 1500,
		Devices: map[string]int32{"flannel.4096": 1450, "cni0": 1450}, Stale: stale})

	// Report: every stale pod is annotated with the reason and the fix; the policy counts them.
	got := waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.StalePods != 4 || p.Status.Pods.Remediated != 4 {
			return fmt.Errorf("stale %d pods %+v", p.Status.StalePods, p.Status.Pods)
		}
		return conditionIs(p, mtuv1alpha1.ConditionPodsCurrent, "False", mtuv1alpha1.ReasonStalePodsFound)
	})
	if msg := condition(got, mtuv1alpha1.ConditionPodsCurrent).Message; !strings.Contains(msg, "1450 predates the switch from VXLAN to None") {
		t.Errorf("PodsCurrent message %q does not explain the stale MTU", msg)
	}
	if err := ready(got); err != nil {
		t.Errorf("Report leaves the fix to people; the policy should still be Ready: %v", err)
	}
	pod := &corev1.Pod{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "web-1"}, pod); err != nil {
		t.Fatal(err)
	}
	if a := pod.Annotations[remediate.StaleMTUAnnotation]; !strings.Contains(a, "1450 (expected 1500): 1450 predates the switch from VXLAN to None") {
		t.Errorf("web-1 annotation %q", a)
	}

	// Evict, one at a time: the bare pod is never evicted; at most one eviction is in flight.
	one := int32(1)
	updateSpec(t, p, func(s *mtuv1alpha1.NetworkMTUPolicySpec) {
		s.StalePods.Action = mtuv1alpha1.StalePodEvict
		s.StalePods.MaxConcurrentEvictions = &one
	})
	waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if p.Status.Pods.Remediated != 1 || p.Status.Pods.Waiting != 1 {
			return fmt.Errorf("pods %+v", p.Status.Pods)
		}
		return conditionIs(p, mtuv1alpha1.ConditionReconciling, "True", mtuv1alpha1.ReasonPodsRemediating)
	})
	terminating := 0
	for _, name := range []string{"bare", "web-1", "web-2", "web-3"} {
		pod := &corev1.Pod{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, pod); err != nil {
			t.Fatal(err)
		}
		if pod.DeletionTimestamp != nil {
			terminating++
			if name == "bare" {
				t.Errorf("the bare pod was evicted")
			}
		}
	}
	if terminating != 1 {
		t.Errorf("%d pods evicted at once; maxConcurrentEvictions is 1", terminating)
	}
}
