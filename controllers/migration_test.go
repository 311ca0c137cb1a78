package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/agent"
)

// daemonSetController plays the DaemonSet controller and the kubelets for ds: it keeps one
// Ready pod per node, replacing a deleted one, and logs each replacement.
type daemonSetController struct {
	ds    *appsv1.DaemonSet
	nodes []string
	mu    sync.Mutex
	// restarts are the nodes whose pod was replaced, in order, with the time.
	restarts []string
	down     int // most pods down at once
}

func (c *daemonSetController) run(ctx context.Context, t *testing.T) {
	for ctx.Err() == nil {
		if err := c.sync(ctx); err != nil && ctx.Err() == nil {
			t.Logf("daemonset controller: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *daemonSetController) sync(ctx context.Context) error {
	var pods corev1.PodList
	if err := env.Client.List(ctx, &pods, client.InNamespace(c.ds.Namespace), client.MatchingLabels(c.ds.Spec.Selector.MatchLabels)); err != nil {
		return err
	}
	live := map[string]bool{}
	down := 0
	for i := range pods.Items {
		if p := &pods.Items[i]; p.DeletionTimestamp == nil {
			live[p.Spec.NodeName] = true
		} else {
			down++
		}
	}
	// As the DaemonSet controller does, the status counts a node whose pod is going or gone.
	if err := c.reportUnavailable(ctx, len(c.nodes)-len(live)); err != nil {
		return err
	}
	for i := range pods.Items {
		if p := &pods.Items[i]; p.DeletionTimestamp != nil {
			if err := env.Client.Delete(ctx, p, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
	}
	c.mu.Lock()
	c.down = max(c.down, down)
	c.mu.Unlock()
	for _, node := range c.nodes {
		if live[node] {
			continue
		}
		if err := createAgentPod(ctx, c.ds, node); err != nil {
			return err
		}
		c.mu.Lock()
		c.restarts = append(c.restarts, node)
		c.mu.Unlock()
	}
	return c.reportUnavailable(ctx, 0)
}

func (c *daemonSetController) reportUnavailable(ctx context.Context, unavailable int) error {
	ds := &appsv1.DaemonSet{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c.ds), ds); err != nil {
		return err
	}
	if ds.Status.NumberUnavailable == int32(unavailable) {
		return nil
	}
	ds.Status.NumberUnavailable = int32(unavailable)
	return env.Client.Status().Update(ctx, ds)
}

func createAgentPod(ctx context.Context, ds *appsv1.DaemonSet, node string) error {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ds.Namespace, GenerateName: ds.Name + "-", Labels: ds.Spec.Template.Labels}}
	p.Spec = *ds.Spec.Template.Spec.DeepCopy()
	p.Spec.NodeName = node
	if err := env.Client.Create(ctx, p); err != nil {
		return err
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	return env.Client.Status().Update(ctx, p)
}

// fixtureRun tells apart the objects of repeated runs (go test -count), which the API server
// and the manager's cache may still hold for a moment.
var fixtureRun atomic.Int32

// migrationFixture creates nodes with simulated agents at a 1500 underlay under flannel, and
// the flannel DaemonSet's pods on them.
func migrationFixture(t *testing.T, prefix string, n int) ([]*agent.Simulated, *daemonSetController) {
	t.Helper()
	prefix = fmt.Sprintf("%s%d", prefix, fixtureRun.Add(1))
	flannelFixture(t, flannelNetConf)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		var pods corev1.PodList
		_ = env.Client.List(context.Background(), &pods, client.InNamespace("kube-flannel"))
		for i := range pods.Items {
			_ = env.Client.Delete(context.Background(), &pods.Items[i], client.GracePeriodSeconds(0))
		}
	})
	ds := &appsv1.DaemonSet{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "kube-flannel", Name: "kube-flannel-ds"}, ds); err != nil {
		t.Fatal(err)
	}
	// The manager finds the DaemonSet in its cache; a DaemonSet it cannot see is one it
	// cannot pace.
	eventually(t, "the DaemonSet in the manager's cache", func() error {
		cached := &appsv1.DaemonSet{}
		if err := managerClient.Get(ctx, client.ObjectKeyFromObject(ds), cached); err != nil {
			return err
		}
		if cached.UID != ds.UID {
			return fmt.Errorf("the cache still has the DaemonSet of an earlier test")
		}
		return nil
	})
	c := &daemonSetController{ds: ds}
	var agents []*agent.Simulated
	for i := range n {
		name := fmt.Sprintf("%s-%d", prefix, i)
		node := &corev1.Node{}
		node.Name = name
		node.Labels = map[string]string{"migration": prefix}
		createObject(t, node)
		t.Cleanup(func() {
			s := &mtuv1alpha1.NodeMTUState{}
			s.Name = name
			_ = env.Client.Delete(context.Background(), s) // envtest has no garbage collector
		})
		c.nodes = append(c.nodes, name)
		if err := createAgentPod(ctx, ds, name); err != nil {
			t.Fatal(err)
		}
		a := &agent.Simulated{Client: env.Client, Node: name, Underlay: 1500, Address: fmt.Sprintf("192.0.2.%d", i+1),
			Devices: map[string]int32{"flannel.4096": 1450, "cni0": 1450}}
		agents = append(agents, a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Run(ctx, 50*time.Millisecond)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.run(ctx, t)
	}()
	return agents, c
}

func jumboPolicy(name, selector string) *mtuv1alpha1.NetworkMTUPolicy {
	p := newPolicy(name, 9000, mtuv1alpha1.EncapsulationVXLAN)
	p.Spec.Underlay.Management = mtuv1alpha1.UnderlayEnforce
	one := intstr.FromInt32(1)
	p.Spec.Rollout.MaxUnavailable = &one
	p.Spec.NodeSelector = &mtuv1alpha1.NodeSelector{MatchLabels: map[string]mtuv1alpha1.NodeLabelValue{"migration": mtuv1alpha1.NodeLabelValue(selector)}}
	return p
}

// TestPacedMigration: a whole cluster raised from 1500 to 9000 with maxUnavailable 1 ends
// Ready, the configuration written only after every NIC carries it, each node's CNI agent
// restarted by deleting its pod, one at a time, and no pin left.
func TestPacedMigration(t *testing.T) {
	agents, ds := migrationFixture(t, "paced", 3)
	p := jumboPolicy(agents[0].Node[:len(agents[0].Node)-2], agents[0].Node[:len(agents[0].Node)-2])
	// An earlier policy of the same name left its transition, pins of generation 1 released
	// (deleted where no garbage collector runs): it is not this policy's.
	stale := &mtuv1alpha1.NetworkMTUTransition{ObjectMeta: metav1.ObjectMeta{Name: p.Name}, Spec: mtuv1alpha1.NetworkMTUTransitionSpec{Policy: p.Name, PinsReleasedGeneration: 1}}
	if err := env.Client.Create(context.Background(), stale); err != nil {
		t.Fatal(err)
	}
	createPolicy(t, p)

	// Until every NIC carries 9000, the configuration waits.
	sawWaiting := false
	got := waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		raised := 0
		for _, a := range agents {
			if a.UnderlayMTU() == 9000 {
				raised++
			}
		}
		cm := getConfigMap(t, "kube-flannel", "kube-flannel-cfg")
		if b := backend(t, cm.Data["net-conf.json"]); b["MTU"] != nil && raised < len(agents) {
			t.Fatalf("configuration written with %d of %d NICs raised", raised, len(agents))
		}
		if c := condition(p, mtuv1alpha1.ConditionConfigApplied); c.Status == metav1.ConditionFalse && c.Reason == mtuv1alpha1.ReasonRollingOut {
			sawWaiting = true
		}
		if p.Status.Migration != nil {
			t.Logf("phase %s written %v: %s", p.Status.Migration.Phase, p.Status.Migration.ConfigWrittenAt, condition(p, mtuv1alpha1.ConditionNodesConverged).Message)
		}
		return ready(p)
	})
	if !sawWaiting {
		t.Errorf("ConfigApplied never said the configuration waits for the devices")
	}
	if got.Status.Migration == nil || got.Status.Migration.Phase != mtuv1alpha1.MigrationDone || got.Status.Migration.ConfigWrittenAt == nil {
		t.Errorf("migration %+v", got.Status.Migration)
	}
	ds.mu.Lock()
	restarts, down := slices.Clone(ds.restarts), ds.down
	ds.mu.Unlock()
	slices.Sort(restarts)
	if fmt.Sprint(restarts) != fmt.Sprintf("[%s-0 %s-1 %s-2]", p.Name, p.Name, p.Name) || down > 1 {
		t.Logf("migration %+v", got.Status.Migration)
		t.Errorf("CNI agents restarted %v, at most %d at once; want each node once, one at a time", restarts, down)
	}
	// The pins go for the whole cluster at once, through the policy's transition, which every
	// agent watches: no spec is rewritten for it.
	transition := &mtuv1alpha1.NetworkMTUTransition{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: p.Name}, transition); err != nil {
		t.Fatal(err)
	}
	if transition.Spec.PinsReleasedGeneration != got.Generation {
		t.Errorf("pinsReleasedGeneration %d, want %d", transition.Spec.PinsReleasedGeneration, got.Generation)
	}
	eventually(t, "every agent released its pin", func() error {
		for _, a := range agents {
			if pin := a.Pinned(); pin != nil {
				return fmt.Errorf("%s still pins routes at %d", a.Node, *pin)
			}
		}
		return nil
	})
}

// TestFailedNodeRetriedByAnnotation: a node whose change fails halts the rollout and is not
// retried on its own; the retry annotation retries it once, and is removed.
func TestFailedNodeRetriedByAnnotation(t *testing.T) {
	agents, _ := migrationFixture(t, "retry", 2)
	agents[0].SetRefuse(true)
	p := jumboPolicy(agents[0].Node[:len(agents[0].Node)-2], agents[0].Node[:len(agents[0].Node)-2])
	createPolicy(t, p)
	waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		return conditionIs(p, mtuv1alpha1.ConditionStalled, "True", mtuv1alpha1.ReasonNodeFailed)
	})
	ctx := context.Background()
	state := &mtuv1alpha1.NodeMTUState{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: agents[0].Node}, state); err != nil {
		t.Fatal(err)
	}
	if state.Spec.Phase != mtuv1alpha1.PhaseObserve {
		t.Errorf("failed node in %s, want Observe", state.Spec.Phase)
	}
	agents[0].SetRefuse(false)
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"`+mtuv1alpha1.RetryAnnotation+`":"true"}}}`))
	if err := env.Client.Patch(ctx, state, patch); err != nil {
		t.Fatal(err)
	}
	waitForStatus(t, p, ready)
	if err := env.Client.Get(ctx, client.ObjectKey{Name: agents[0].Node}, state); err != nil {
		t.Fatal(err)
	}
	if _, ok := state.Annotations[mtuv1alpha1.RetryAnnotation]; ok || state.Spec.Attempt != 1 {
		t.Errorf("after the retry: annotations %v attempt %d", state.Annotations, state.Spec.Attempt)
	}
}

// TestDeletingAPolicyReleasesItsNodes: a policy deleted halfway through a migration (stalled
// on a failed node) has every
// node release its route pins first, then its NodeMTUStates and the pods' stale-MTU annotations
// go, the CNI's configuration stays as written, and the policy is gone.
func TestDeletingAPolicyReleasesItsNodes(t *testing.T) {
	agents, _ := migrationFixture(t, "delete", 2)
	// Node 0 changes first; node 1's change fails, so the migration holds still with both
	// nodes pinned (each pinned at its turn).
	agents[1].SetRefuse(true)
	p := jumboPolicy(agents[0].Node[:len(agents[0].Node)-2], agents[0].Node[:len(agents[0].Node)-2])
	createPolicy(t, p)
	stalePodFixture(t, "delete-web", agents[0].Node, true)
	ctx := context.Background()
	pod := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "delete-web"}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Annotations = map[string]string{"networking.mtu-operator.io/stale-mtu": "1450 (expected 8950)"}
	if err := env.Client.Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	// Mid-migration: routes pinned on every node.
	waitForStatus(t, p, func(p *mtuv1alpha1.NetworkMTUPolicy) error {
		if !slices.Contains(p.Finalizers, Finalizer) {
			return fmt.Errorf("no finalizer")
		}
		if err := conditionIs(p, mtuv1alpha1.ConditionStalled, "True", mtuv1alpha1.ReasonNodeFailed); err != nil {
			return err
		}
		for _, a := range agents {
			if a.Pinned() == nil {
				return fmt.Errorf("%s not pinned yet (phase %v)", a.Node, p.Status.Migration)
			}
		}
		return nil
	})
	before := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").Data["net-conf.json"]
	// node 1's agent is down: it cannot confirm, so the deletion waits for it, then says so.
	agents[1].Stop()
	deleted := time.Now()
	if err := env.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node 0's pin released before its state goes", func() error {
		if pin := agents[0].Pinned(); pin != nil {
			return fmt.Errorf("pinned at %d", *pin)
		}
		s := &mtuv1alpha1.NodeMTUState{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: agents[1].Node}, s); err != nil {
			return fmt.Errorf("node 1's state went before the wait for its agent: %w", err)
		}
		return nil
	})
	eventually(t, "the policy gone", func() error {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), &mtuv1alpha1.NetworkMTUPolicy{})
		if err == nil {
			return fmt.Errorf("still there")
		}
		return client.IgnoreNotFound(err)
	})
	// The wait counts from the deletion timestamp, which has seconds only.
	if waited := time.Since(deleted); waited < testReleaseTimeout-time.Second {
		t.Errorf("the policy went after %s, without waiting %s for node 1's silent agent", waited, testReleaseTimeout)
	}
	eventually(t, "a PinsNotConfirmed event naming node 1", func() error {
		for _, e := range eventsFor(t, p.Name) {
			if e.Reason == "PinsNotConfirmed" && strings.Contains(e.Note, agents[1].Node) {
				return nil
			}
		}
		return fmt.Errorf("none")
	})
	agents[1].Start() // back up, it finds its state gone and releases what it pinned
	for _, a := range agents {
		eventually(t, a.Node+" without a pin", func() error {
			if pin := a.Pinned(); pin != nil {
				return fmt.Errorf("pinned at %d", *pin)
			}
			return nil
		})
		err := env.Client.Get(ctx, client.ObjectKey{Name: a.Node}, &mtuv1alpha1.NodeMTUState{})
		if client.IgnoreNotFound(err) != nil || err == nil {
			t.Errorf("NodeMTUState %s: %v, want it deleted", a.Node, err)
		}
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "delete-web"}, pod); err != nil {
		t.Fatal(err)
	}
	if a, ok := pod.Annotations["networking.mtu-operator.io/stale-mtu"]; ok {
		t.Errorf("the stale-MTU annotation survived the policy: %q", a)
	}
	if after := getConfigMap(t, "kube-flannel", "kube-flannel-cfg").Data["net-conf.json"]; after != before {
		t.Errorf("net-conf.json changed when the policy was deleted:\n%s\nwas:\n%s", after, before)
	}
}
