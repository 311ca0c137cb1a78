package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
)

// TestCNIAgentPods checks the lab's CNI agent DaemonSet against what the operator relies on
// when it paces the CNI's restart: deleting one node's agent pod restarts that node's agent,
// and only that one, before its new pod is ready; and a changed pod template still restarts
// every node's agent, each with a new pod.
func TestCNIAgentPods(t *testing.T) {
	ctx := context.Background()
	l := startLab(t, lab.Flannel)

	before := cniPodsReady(ctx, t, l)
	pids := flanneldPIDs(l)
	t.Run("deleting node-b's pod restarts node-b's flanneld only", func(t *testing.T) {
		old := before["node-b"]
		deletedAt := time.Now().Truncate(time.Second) // creation times have whole seconds
		if err := l.Client.Delete(ctx, &old); err != nil {
			t.Fatal(err)
		}
		// What node-b's flanneld is the moment its new pod is first seen ready.
		var readyPID int
		var readySubnetEnv error
		err := l.WaitFor(ctx, "a new ready kube-flannel-ds pod on node-b", time.Minute, func(ctx context.Context) error {
			pods, err := l.CNIPods(ctx)
			if err != nil {
				return err
			}
			p, ok := pods["node-b"]
			switch {
			case !ok:
				return fmt.Errorf("node-b has no pod")
			case p.UID == old.UID:
				return fmt.Errorf("node-b still has %s", p.Name)
			case !podIsReady(p):
				return fmt.Errorf("%s on node-b is not ready", p.Name)
			}
			readyPID = l.Node("node-b").FlanneldPID()
			_, readySubnetEnv = l.Node("node-b").SubnetEnv()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// A restarted flanneld starts without subnet.env and writes it once it has its lease.
		if readyPID == pids["node-b"] || readySubnetEnv != nil {
			t.Errorf("node-b's new pod was ready before flanneld had restarted: process %d (was %d), subnet.env: %v", readyPID, pids["node-b"], readySubnetEnv)
		}
		now := flanneldPIDs(l)
		after := cniPodsReady(ctx, t, l)
		if created := after["node-b"].CreationTimestamp.Time; created.Before(deletedAt) {
			t.Errorf("node-b's new pod was created at %s, before its predecessor was deleted at %s", created, deletedAt)
		}
		for _, node := range []string{"node-a", "node-c"} {
			if after[node].UID != before[node].UID || !after[node].CreationTimestamp.Time.Equal(before[node].CreationTimestamp.Time) {
				t.Errorf("%s's pod was replaced: %s, was %s", node, after[node].Name, before[node].Name)
			}
			if now[node] != pids[node] {
				t.Errorf("%s's flanneld restarted: process %d, was %d", node, now[node], pids[node])
			}
		}
		if err := l.CNIRolledOut(ctx); err != nil {
			t.Errorf("after node-b's pod was replaced: %v", err)
		}
		before, pids = after, now
	})

	t.Run("a template change replaces every pod after restarting its flanneld", func(t *testing.T) {
		ds := &appsv1.DaemonSet{}
		if err := l.Client.Get(ctx, lab.Flannel.AgentDaemonSet(), ds); err != nil {
			t.Fatal(err)
		}
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"`+time.Now().Format(time.RFC3339Nano)+`"}}}}}`))
		if err := l.Client.Patch(ctx, ds, patch); err != nil {
			t.Fatal(err)
		}
		if err := l.CNIRolledOut(ctx); err == nil {
			t.Fatal("the rollout is reported finished before the lab's kubelet saw the new template")
		}
		if err := l.WaitFor(ctx, "the kube-flannel-ds rollout", time.Minute, l.CNIRolledOut); err != nil {
			t.Fatal(err)
		}
		now := flanneldPIDs(l)
		after := cniPodsReady(ctx, t, l)
		for _, n := range l.Nodes {
			if after[n.Name].UID == before[n.Name].UID {
				t.Errorf("%s still has pod %s from before the rollout", n.Name, before[n.Name].Name)
			}
			if now[n.Name] == pids[n.Name] {
				t.Errorf("%s's flanneld was not restarted by the rollout: still process %d", n.Name, pids[n.Name])
			}
		}
	})
}

// cniPodsReady returns each node's CNI agent pod and fails the test unless every node has one,
// ready.
func cniPodsReady(ctx context.Context, t *testing.T, l *lab.Lab) map[string]corev1.Pod {
	t.Helper()
	pods, err := l.CNIPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes {
		p, ok := pods[n.Name]
		if !ok || !podIsReady(p) {
			t.Fatalf("%s has no ready CNI agent pod: %v", n.Name, pods)
		}
	}
	return pods
}

func podIsReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// flanneldPIDs returns each node's flanneld process ID, by node name.
func flanneldPIDs(l *lab.Lab) map[string]int {
	out := map[string]int{}
	for _, n := range l.Nodes {
		out[n.Name] = n.FlanneldPID()
	}
	return out
}
