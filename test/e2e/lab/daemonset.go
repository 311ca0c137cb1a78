package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The CNI agent DaemonSet's pods, as the DaemonSet controller and each node's kubelet keep
// them: one pod per node, whose agent is the CNI's agent process (flanneld, or a stand-in's
// state on the node). Deleting a node's pod restarts that node's agent, which reads the CNI's
// configuration anew; a changed pod template replaces every node's pod, one node at a time.

// revisionLabel names the pod template a DaemonSet pod was made from, as the DaemonSet
// controller labels its pods.
const revisionLabel = appsv1.DefaultDaemonSetUniqueLabelKey

// templateRevision stands for the DaemonSet controller's hash of a pod template: any change
// to the template changes it.
func templateRevision(t *corev1.PodTemplateSpec) (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	h := fnv.New32a()
	_, _ = h.Write(b)
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10)), nil
}

// agentPods returns the CNI agent DaemonSet and the pods it owns, terminating ones included.
func agentPods(ctx context.Context, cl client.Client, cni CNI) (*appsv1.DaemonSet, []corev1.Pod, error) {
	ds := &appsv1.DaemonSet{}
	if err := cl.Get(ctx, cni.AgentDaemonSet(), ds); err != nil {
		return nil, nil, err
	}
	var list corev1.PodList
	if err := cl.List(ctx, &list, client.InNamespace(ds.Namespace), client.MatchingLabels(ds.Spec.Selector.MatchLabels)); err != nil {
		return nil, nil, err
	}
	var owned []corev1.Pod
	for _, p := range list.Items {
		if owner := metav1.GetControllerOf(&p); owner != nil && owner.UID == ds.UID {
			owned = append(owned, p)
		}
	}
	return ds, owned, nil
}

// podReady says whether the pod reports the Ready condition true.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// CNIPods returns each node's current CNI agent pod, by node name: the one not being deleted.
// A node whose pod is gone and not yet replaced is missing.
func (l *Lab) CNIPods(ctx context.Context) (map[string]corev1.Pod, error) {
	_, pods, err := agentPods(ctx, l.Client, l.CNI)
	if err != nil {
		return nil, err
	}
	out := map[string]corev1.Pod{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if other, ok := out[p.Spec.NodeName]; ok {
			return nil, fmt.Errorf("node %s has two CNI agent pods, %s and %s", p.Spec.NodeName, other.Name, p.Name)
		}
		out[p.Spec.NodeName] = p
	}
	return out, nil
}

// CNIRolledOut checks, as `kubectl rollout status` does, that the last rollout of the CNI
// agent DaemonSet has finished, and that every node's agent pod is ready, so that a restart
// paced by deleting one node's pod has finished too.
func (l *Lab) CNIRolledOut(ctx context.Context) error {
	ds := &appsv1.DaemonSet{}
	if err := l.Client.Get(ctx, l.CNI.AgentDaemonSet(), ds); err != nil {
		return err
	}
	st := ds.Status
	if st.ObservedGeneration < ds.Generation || st.UpdatedNumberScheduled < st.DesiredNumberScheduled || st.NumberAvailable < st.DesiredNumberScheduled {
		return fmt.Errorf("DaemonSet %s rolling out: %d of %d pods updated, %d available", ds.Name, st.UpdatedNumberScheduled, st.DesiredNumberScheduled, st.NumberAvailable)
	}
	pods, err := l.CNIPods(ctx)
	if err != nil {
		return err
	}
	for _, n := range l.Nodes {
		p, ok := pods[n.Name]
		if !ok {
			return fmt.Errorf("node %s has no %s pod", n.Name, ds.Name)
		}
		if !podReady(&p) {
			return fmt.Errorf("%s pod %s on %s is not ready", ds.Name, p.Name, n.Name)
		}
	}
	return nil
}

// agentNode is one node's share of the CNI agent DaemonSet as the lab's kubelet sees it.
type agentNode struct {
	node *Node
	// pod is the node's current pod, nil while it has none.
	pod *corev1.Pod
	// terminating are the node's pods being deleted.
	terminating []*corev1.Pod
}

// reportCNIAgents creates every node's CNI agent pod, running and ready: the agents started
// with the lab, and these pods stand for them.
func (k *kubelet) reportCNIAgents(ctx context.Context) error {
	ds, _, err := agentPods(ctx, k.client, k.cni)
	if err != nil {
		return err
	}
	revision, err := templateRevision(&ds.Spec.Template)
	if err != nil {
		return err
	}
	agents := make([]agentNode, len(k.nodes))
	for i, n := range k.nodes {
		agents[i].node = n
		if agents[i].pod, err = k.createAgentPod(ctx, ds, n, revision); err != nil {
			return err
		}
		if err := k.agentPodReady(ctx, agents[i].pod); err != nil {
			return err
		}
	}
	return k.reportDaemonSet(ctx, ds, agents, revision)
}

// syncCNIAgents plays the CNI agent DaemonSet's controller and each node's kubelet for its
// pods. A deleted pod is finished and replaced; the replacement becomes ready once the node's
// agent has restarted from the configuration as it is then. With every node's agent available,
// a pod of an older template (the operator, or the Tigera operator, restarts the agents by
// annotating the template) is deleted, one node at a time, as kube-flannel-ds's RollingUpdate
// with maxUnavailable 1 does. The DaemonSet's status tells the progress, as the DaemonSet
// controller's does, so `kubectl rollout status` works.
func (k *kubelet) syncCNIAgents(ctx context.Context) error {
	ds, pods, err := agentPods(ctx, k.client, k.cni)
	if err != nil {
		return err
	}
	revision, err := templateRevision(&ds.Spec.Template)
	if err != nil {
		return err
	}
	agents := make([]agentNode, len(k.nodes))
	for i, n := range k.nodes {
		agents[i].node = n
	}
	for i := range pods {
		p := &pods[i]
		for j := range agents {
			if agents[j].node.Name != p.Spec.NodeName {
				continue
			}
			if p.DeletionTimestamp != nil {
				agents[j].terminating = append(agents[j].terminating, p)
			} else {
				agents[j].pod = p
			}
		}
	}

	for i := range agents {
		a := &agents[i]
		for _, p := range a.terminating {
			if err := k.finishAgentPod(ctx, p); err != nil {
				return err
			}
			if _, ok := k.agentRestarts[a.node.Name]; !ok {
				k.agentRestarts[a.node.Name] = "pod " + p.Name + " deleted"
			}
		}
		if a.pod == nil {
			if _, ok := k.agentRestarts[a.node.Name]; !ok {
				// Deleted with no grace period: the API server removed it at once.
				k.agentRestarts[a.node.Name] = "pod gone"
			}
			if a.pod, err = k.createAgentPod(ctx, ds, a.node, revision); err != nil {
				return err
			}
		}
	}
	if err := k.reportDaemonSet(ctx, ds, agents, revision); err != nil {
		return err
	}

	for i := range agents {
		a := &agents[i]
		if podReady(a.pod) {
			continue
		}
		did, err := k.restartAgent(ctx, a.node)
		if err != nil {
			return fmt.Errorf("restarting the %s agent on %s: %w", k.cni, a.node.Name, err)
		}
		if err := k.agentPodReady(ctx, a.pod); err != nil {
			return err
		}
		why := k.agentRestarts[a.node.Name]
		delete(k.agentRestarts, a.node.Name)
		if did != "" {
			did = ": " + did
		}
		k.say(fmt.Sprintf("%s %s: %s, restarted%s", ds.Name, a.node.Name, why, did))
		if err := k.reportDaemonSet(ctx, ds, agents, revision); err != nil {
			return err
		}
	}

	// Every node's agent is available here: the rollout may take one down.
	for i := range agents {
		a := &agents[i]
		if a.pod.Labels[revisionLabel] == revision {
			continue
		}
		if err := k.client.Delete(ctx, a.pod, client.Preconditions{UID: &a.pod.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("replacing %s/%s: %w", a.pod.Namespace, a.pod.Name, err)
		}
		k.agentRestarts[a.node.Name] = "pod " + a.pod.Name + " replaced by the DaemonSet rollout"
		a.pod = nil
		// One node at a time: the next sync finishes this one.
		return k.reportDaemonSet(ctx, ds, agents, revision)
	}
	return nil
}

// restartAgent restarts the CNI's agent on the node, as the node's new agent pod starts it: it
// reads the CNI's configuration as it is now. It says what the agent did.
func (k *kubelet) restartAgent(ctx context.Context, n *Node) (string, error) {
	if k.cni == Flannel {
		if err := n.restartFlanneld(ctx, k.client); err != nil {
			return "", err
		}
		return n.describeFlannel(), nil
	}
	tunnel, wanted, err := k.cni.tunnel(ctx, k.client)
	if err != nil {
		return "", err
	}
	did, err := n.restartCNIAgent(ctx, k.client, k.nodes, tunnel, wanted)
	if err != nil {
		return "", err
	}
	return did, n.wireStandIn(k.nodes)
}

// createAgentPod creates the node's pod of the DaemonSet, as the DaemonSet controller does:
// the template's labels and spec, bound to the node. It starts pending.
func (k *kubelet) createAgentPod(ctx context.Context, ds *appsv1.DaemonSet, n *Node, revision string) (*corev1.Pod, error) {
	labels := map[string]string{revisionLabel: revision}
	maps.Copy(labels, ds.Spec.Template.Labels)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ds.Namespace, GenerateName: ds.Name + "-", Labels: labels, Annotations: maps.Clone(ds.Spec.Template.Annotations),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))},
		},
		Spec: *ds.Spec.Template.Spec.DeepCopy(),
	}
	p.Spec.NodeName = n.Name
	if err := k.client.Create(ctx, p); err != nil {
		return nil, fmt.Errorf("creating the %s pod on %s: %w", ds.Name, n.Name, err)
	}
	return p, nil
}

// agentPodReady reports the node's agent pod running and ready, as its kubelet does once the
// agent has started. A host-network pod has the node's address.
func (k *kubelet) agentPodReady(ctx context.Context, p *corev1.Pod) error {
	n := nodeNamed(k.nodes, p.Spec.NodeName)
	if n == nil {
		return fmt.Errorf("%s/%s is bound to %q, no node of the lab", p.Namespace, p.Name, p.Spec.NodeName)
	}
	now := metav1.Now()
	p.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, StartTime: &now,
		HostIP: n.Address, HostIPs: []corev1.HostIP{{IP: n.Address}},
		PodIP: n.Address, PodIPs: []corev1.PodIP{{IP: n.Address}},
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: true, Started: new(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	if err := k.client.Status().Update(ctx, p); err != nil {
		return fmt.Errorf("reporting %s/%s running: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// finishAgentPod finishes the deletion of an agent pod, as its kubelet does once the container
// has stopped; the agent itself stops when its replacement starts it again.
func (k *kubelet) finishAgentPod(ctx context.Context, p *corev1.Pod) error {
	err := k.client.Delete(ctx, p, client.GracePeriodSeconds(0), client.Preconditions{UID: &p.UID})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// reportDaemonSet writes the DaemonSet's status from its pods, when it changed: a node counts
// as available while it has a ready pod, and as updated while that pod (ready or not) runs the
// current template.
func (k *kubelet) reportDaemonSet(ctx context.Context, ds *appsv1.DaemonSet, agents []agentNode, revision string) error {
	nodes := int32(len(agents))
	var current, updated, available int32
	for _, a := range agents {
		if a.pod == nil {
			continue
		}
		current++
		if a.pod.Labels[revisionLabel] == revision {
			updated++
		}
		if podReady(a.pod) {
			available++
		}
	}
	want := appsv1.DaemonSetStatus{
		ObservedGeneration:     ds.Generation,
		DesiredNumberScheduled: nodes, CurrentNumberScheduled: current,
		UpdatedNumberScheduled: updated,
		NumberReady:            available, NumberAvailable: available, NumberUnavailable: nodes - available,
	}
	if equality.Semantic.DeepEqual(ds.Status, want) {
		return nil
	}
	before := ds.DeepCopy()
	ds.Status = want
	if err := k.client.Status().Patch(ctx, ds, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("reporting DaemonSet %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	return nil
}
