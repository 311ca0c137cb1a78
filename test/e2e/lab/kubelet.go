package lab

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Workload is a ReplicaSet the lab runs, spread over the nodes.
type Workload struct {
	Namespace, Name string
	Replicas        int32
	Image           string
}

// DefaultWorkloads are CoreDNS (the pods that kept a stale MTU in the Antrea incident) and a
// web application.
var DefaultWorkloads = []Workload{
	{Namespace: "kube-system", Name: "coredns-5d78c9869d", Replicas: 2, Image: "registry.k8s.io/coredns/coredns:v1.12.1"},
	{Namespace: "default", Name: "web-7c5ddbdf54", Replicas: 4, Image: "registry.example/web:v1"},
}

// kubelet plays the parts of a cluster the embedded control plane does not run: the
// ReplicaSet controller (replacing pods that are gone), the scheduler (spreading them), the
// DaemonSet controller of the CNI's agent (see syncCNIAgents) and each node's kubelet and CNI
// plugin (giving a pod a network namespace at the MTU the CNI's configuration says, reporting
// its IP, and finishing the deletion of evicted pods).
type kubelet struct {
	client    client.Client
	cni       CNI
	nodes     []*Node
	workloads []*appsv1.ReplicaSet
	say       func(string)
	// agentRestarts says, by node, why the node's CNI agent pod is being replaced, until its
	// agent has restarted.
	agentRestarts map[string]string
}

// pollInterval is how often the lab's kubelet looks for work; the API server has no kubelet
// watch to push it, and a few pods cost nothing to list.
const pollInterval = 200 * time.Millisecond

func (k *kubelet) run(ctx context.Context) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if err := k.sync(ctx); err != nil && ctx.Err() == nil {
			k.say("kubelet: " + err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (k *kubelet) createWorkloads(ctx context.Context, workloads []Workload) error {
	for _, w := range workloads {
		labels := map[string]string{"app": w.Name}
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name, Labels: labels},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: &w.Replicas,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: w.Image}}},
				},
			},
		}
		if err := k.client.Create(ctx, rs); err != nil {
			return fmt.Errorf("creating ReplicaSet %s/%s: %w", w.Namespace, w.Name, err)
		}
		k.workloads = append(k.workloads, rs)
	}
	return nil
}

// sync does one round of the work: replace and restart the CNI's agents, then for the
// workloads finish deletions, start pods, replace missing ones.
func (k *kubelet) sync(ctx context.Context) error {
	if err := k.syncCNIAgents(ctx); err != nil {
		return err
	}
	perNode := map[string]int{}
	var errs []error
	missing := make([]int32, len(k.workloads))
	var all []*corev1.Pod
	for i, rs := range k.workloads {
		pods, err := replicaSetPods(ctx, k.client, rs)
		if err != nil {
			return err
		}
		live := int32(0)
		for j := range pods {
			p := &pods[j]
			if p.DeletionTimestamp == nil {
				live++
				perNode[p.Spec.NodeName]++
			}
			all = append(all, p)
		}
		missing[i] = *rs.Spec.Replicas - live
	}
	for _, p := range all {
		switch {
		case p.DeletionTimestamp != nil:
			errs = append(errs, k.stop(ctx, p))
		case p.Status.PodIP == "":
			errs = append(errs, k.start(ctx, p))
		}
	}
	for i, rs := range k.workloads {
		for ; missing[i] > 0; missing[i]-- {
			node := k.leastBusy(perNode)
			perNode[node.Name]++
			errs = append(errs, k.create(ctx, rs, node))
		}
	}
	return errors.Join(errs...)
}

// leastBusy is the node with the fewest pods, the first of equals.
func (k *kubelet) leastBusy(perNode map[string]int) *Node {
	best := k.nodes[0]
	for _, n := range k.nodes[1:] {
		if perNode[n.Name] < perNode[best.Name] {
			best = n
		}
	}
	return best
}

// replicaSetPods lists the pods of a ReplicaSet: in its namespace, matching its selector.
func replicaSetPods(ctx context.Context, cl client.Client, rs *appsv1.ReplicaSet) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(rs.Namespace), client.MatchingLabels(rs.Spec.Selector.MatchLabels)); err != nil {
		return nil, err
	}
	return pods.Items, nil
}

func (k *kubelet) create(ctx context.Context, rs *appsv1.ReplicaSet, node *Node) error {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: rs.Namespace, GenerateName: rs.Name + "-", Labels: rs.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))},
		},
		Spec: *rs.Spec.Template.Spec.DeepCopy(),
	}
	p.Spec.NodeName = node.Name
	if err := k.client.Create(ctx, p); err != nil {
		return fmt.Errorf("creating a pod of %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	return nil
}

// start runs a pod: its namespace at the MTU the CNI hands out now, then its status.
func (k *kubelet) start(ctx context.Context, p *corev1.Pod) error {
	node := nodeNamed(k.nodes, p.Spec.NodeName)
	if node == nil {
		return nil
	}
	ip, mtu, err := node.startPod(ctx, k.client, p.UID)
	if err != nil {
		return fmt.Errorf("starting %s/%s on %s: %w", p.Namespace, p.Name, node.Name, err)
	}
	now := metav1.Now()
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, StartTime: &now,
		HostIP: node.Address, HostIPs: []corev1.HostIP{{IP: node.Address}},
		PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
	}
	if err := k.client.Status().Update(ctx, p); err != nil {
		return fmt.Errorf("reporting %s/%s running: %w", p.Namespace, p.Name, err)
	}
	k.say(fmt.Sprintf("kubelet %s: started %s/%s, eth0 %s MTU %d", node.Name, p.Namespace, p.Name, ip, mtu))
	return nil
}

// stop finishes a deletion (an eviction) as the kubelet does once the containers are gone.
func (k *kubelet) stop(ctx context.Context, p *corev1.Pod) error {
	if node := nodeNamed(k.nodes, p.Spec.NodeName); node != nil {
		if err := node.stopPod(ctx, k.client, p.UID); err != nil {
			return err
		}
	}
	err := k.client.Delete(ctx, p, client.GracePeriodSeconds(0), client.Preconditions{UID: &p.UID})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting %s/%s: %w", p.Namespace, p.Name, err)
	}
	k.say(fmt.Sprintf("kubelet %s: %s/%s terminated", p.Spec.NodeName, p.Namespace, p.Name))
	return nil
}
