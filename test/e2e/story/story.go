// Package story is the scenario `make demo` tells and the end-to-end test asserts: a platform
// engineer moves a cluster to jumbo frames and then off VXLAN, with a dry run first. Each step
// applies a policy as `kubectl apply --server-side` would and waits for the outcome the
// operator must reach; the demo prints what an engineer would look at, the test checks more.
package story

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/mtuctl"
	"github.com/mtu-operator/mtu-operator/internal/plan"
	"github.com/mtu-operator/mtu-operator/internal/remediate"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab"
)

// PolicyName is the policy the story edits.
const PolicyName = "jumbo-frames"

// What a step shows after its outcome, in the demo.
const (
	ShowPolicy     = "policy"     // kubectl get networkmtupolicies -o wide
	ShowConditions = "conditions" // the policy's conditions
	ShowPlan       = "plan"       // status.plannedChanges
	ShowNodes      = "nodes"      // kubectl get nodemtustates -o wide
	ShowLinks      = "links"      // each node's interfaces, read from its namespace
	ShowPods       = "pods"       // each pod's eth0 MTU, read from its namespace
	ShowStale      = "stale"      // the stale-MTU annotation on pods
	ShowEvents     = "events"     // kubectl get events for the policy
	ShowEvictions  = "evictions"  // kubectl get events of evicted pods
	ShowCNIConfig  = "cniconfig"  // the CNI's configuration document
	ShowTraffic    = "traffic"    // what the background traffic sent and lost during the step
)

// Step is one thing the engineer does and what the operator must then reach.
type Step struct {
	Title string
	// Why explains the step to a reader, one sentence a line.
	Why []string
	// Before, when set, is what happens to the cluster before the policy is applied (a switch
	// port misconfigured, or fixed); Commands say it as shell lines, for the demo.
	Before   func(ctx context.Context, w *World) error
	Commands []string
	// Policy is the whole policy the engineer applies.
	Policy string
	// Expect says what the operator must reach, for a reader.
	Expect string
	// Until checks the outcome on the policy, read once its generation was observed; nil
	// means reached.
	Until   func(ctx context.Context, w *World, p *mtuv1alpha1.NetworkMTUPolicy) error
	Timeout time.Duration
	// Crossings are checked with packets once the outcome is reached.
	Crossings []Crossing
	// ReplacesPods: the step evicts pods, so the background traffic loses what was on its
	// way to them.
	ReplacesPods bool
	// SwapsRoutes: the CNI's agents replace their routes to the peers' pod subnets in a way
	// that leaves a moment without one (flanneld deletes the old route, then adds the new):
	// a small datagram sent in that moment is lost, at most one per path per node's restart.
	SwapsRoutes bool
	Show        []string
}

// LossAllowed is how many datagrams of RoutableSize a path of the background traffic may lose
// during the step on a lab of that many nodes; bounded says whether there is a bound at all.
func (s Step) LossAllowed(nodes int) (allowed int, bounded bool) {
	switch {
	case s.ReplacesPods:
		return 0, false // the pods themselves go away
	case s.SwapsRoutes:
		return nodes, true
	default:
		return 0, true
	}
}

// World is the lab with what the story remembers between steps.
type World struct {
	*lab.Lab
	// Before is the CNI configuration when the story began, by object.
	Before map[string]string
	// PodsBefore are the pods' UIDs when the story began; no step before the evictions
	// replaces a pod.
	PodsBefore map[types.UID]bool
}

// NewWorld records the starting state of a freshly started lab.
func NewWorld(ctx context.Context, l *lab.Lab) (*World, error) {
	w := &World{Lab: l, PodsBefore: map[types.UID]bool{}}
	var err error
	if w.Before, err = CNIConfig(ctx, l); err != nil {
		return nil, err
	}
	pods, err := l.Pods(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		w.PodsBefore[p.UID] = true
	}
	return w, nil
}

// Await waits until the operator has observed the step's policy and reached its outcome.
func (w *World) Await(ctx context.Context, s Step) error {
	return w.WaitFor(ctx, s.Expect, s.Timeout, func(ctx context.Context) error {
		p, err := Policy(ctx, w.Lab)
		if err != nil {
			return err
		}
		if err := observed(p); err != nil {
			return err
		}
		if err := s.Until(ctx, w, p); err != nil {
			return err
		}
		// As an engineer waits with `kubectl rollout status` for the CNI's agents.
		return w.CNIRolledOut(ctx)
	})
}

// routesPinned checks, in each node's kernel, that its routes are pinned at mtu (0: none
// pinned). The kernel, not the status: the policy releases pins without the agents reporting.
func (w *World) routesPinned(_ context.Context, mtu int32) error {
	for _, n := range w.Nodes {
		pinned, err := n.PinnedRoutes()
		if err != nil {
			return err
		}
		switch {
		case mtu == 0 && len(pinned) > 0:
			return fmt.Errorf("%s pins %v, want no pin", n.Name, pinned)
		case mtu > 0 && len(pinned) == 0:
			return fmt.Errorf("%s pins no route, want %d", n.Name, mtu)
		}
		for _, r := range pinned {
			if mtu > 0 && !strings.HasSuffix(r, fmt.Sprintf(" mtu %d", mtu)) {
				return fmt.Errorf("%s pins %s, want %d", n.Name, r, mtu)
			}
		}
	}
	return nil
}

// What crosses between pods after each step, and why: the sizes an application on those pods
// can send with fragmentation forbidden. They are what happens on a real cluster, warts and
// all: a pod keeps its own MTU until it is replaced or raised in place, and a pod that learnt
// a smaller path MTU from an ICMP report keeps it for ten minutes (net.ipv4.route.mtu_expires)
// unless the agent makes it forget, which it does when it releases a route pin.
var (
	jumbo     = Crossing{From: "node-a", To: "node-b", Size: 8950, Why: "both nodes carry jumbo frames"}
	blackHole = Crossing{From: "node-a", To: "node-c", Size: 1450, Why: "node-c's NIC at 1500 drops larger frames silently: a black hole"}
	smallPods = Crossing{From: "node-c", To: "node-b", Size: 1450, Why: "node-c's pods have 1450"}
	flushedAB = Crossing{From: "node-a", To: "node-b", Size: 8950, Why: "routes were pinned at 1450 during the rollout; when the pins went, the agent made node-a's pod forget the 1450 it had learnt"}
	raisedAC  = Crossing{From: "node-a", To: "node-c", Size: 8950, Why: "node-c's pods were raised in place"}
	raisedCB  = Crossing{From: "node-c", To: "node-b", Size: 8950, Why: "node-c's pods were raised in place, and forgot what they had learnt"}
)

// After a switch port towards node-c came back at 1500.
var (
	jumboNewPods  = Crossing{From: "node-a", To: "node-b", Size: 9000, Why: "their switch ports carry jumbo frames"}
	blackHolePort = Crossing{From: "node-a", To: "node-c", Size: 1500, Why: "node-c's switch port carries 1500 and drops larger frames without a word"}
)

// newPods is what crosses once every pod was recreated at size: new pods remember nothing.
func newPods(size int) []Crossing {
	return []Crossing{
		{From: "node-a", To: "node-b", Size: size, Why: "new pods, every node at the same MTU"},
		{From: "node-a", To: "node-c", Size: size, Why: "new pods, every node at the same MTU"},
		{From: "node-c", To: "node-b", Size: size, Why: "new pods, every node at the same MTU"},
	}
}

func policy(mode, management string, encap mtuv1alpha1.EncapsulationType, action string) string {
	return fmt.Sprintf(`apiVersion: networking.mtu-operator.io/v1alpha1
kind: NetworkMTUPolicy
metadata:
  name: %s
spec:
  mode: %s
  underlay:
    source: Declared
    mtu: 9000
    management: %s
  encapsulation:
    type: %s
  rollout:
    maxUnavailable: 1
  stalePods:
    action: %s
`, PolicyName, mode, management, encap, action)
}

// Steps is the story for the lab's CNI.
func Steps(cni lab.CNI) []Step {
	tunnel, gateway := cni.TunnelDevice(), cni.Gateway()
	return []Step{{
		Title: "Dry run: what would jumbo frames change?",
		Why: []string{
			"The network team has moved the switches to 9000-byte frames. Before touching anything,",
			"the platform team asks the operator for a plan: mode DryRun writes nothing.",
		},
		Policy: policy("DryRun", "Observe", mtuv1alpha1.EncapsulationVXLAN, "Report"),
		Expect: "a plan of CNI field changes, every node reporting its NIC, node-c named as the odd one at 1500, and nothing changed",
		Until: func(ctx context.Context, w *World, p *mtuv1alpha1.NetworkMTUPolicy) error {
			if err := all(
				hasCondition(p, mtuv1alpha1.ConditionConfigApplied, metav1.ConditionFalse, mtuv1alpha1.ReasonDryRun, "would change"),
				hasCondition(p, mtuv1alpha1.ConditionUnderlayConsistent, metav1.ConditionFalse, mtuv1alpha1.ReasonUnderlayMismatch, "node-c (1500)"),
				nodesSelected(p, 3),
				check(len(p.Status.PlannedChanges) > 0, "no planned changes"),
				check(p.Status.PodMTU == 8950, "pod MTU %d, want 8950", p.Status.PodMTU),
			); err != nil {
				return err
			}
			return all(w.configUnchanged(ctx), linkMTU(w.Lab, "node-c", "eth0", 1500), linkMTU(w.Lab, "node-c", tunnel, 1450))
		},
		Timeout:   time.Minute,
		Crossings: []Crossing{jumbo, blackHole, smallPods},
		Show:      []string{ShowPolicy, ShowConditions, ShowPlan, ShowNodes, ShowTraffic},
	}, {
		Title: "Apply: the operator refuses to size pods for a NIC that cannot carry them",
		Why: []string{
			"The plan looks right, so the policy goes to mode Apply. node-c's NIC is still at 1500:",
			"pods sized for 9000 would black-hole large packets there (the TLS-handshake-timeout incident),",
			"and a restarted CNI agent there could not even create its tunnel.",
		},
		Policy: policy("Apply", "Observe", mtuv1alpha1.EncapsulationVXLAN, "Report"),
		Expect: "the policy Stalled with UnderlayMismatch naming node-c, the CNI configuration held back, nothing changed",
		Until: func(ctx context.Context, w *World, p *mtuv1alpha1.NetworkMTUPolicy) error {
			return all(
				hasCondition(p, mtuv1alpha1.ConditionStalled, metav1.ConditionTrue, mtuv1alpha1.ReasonUnderlayMismatch, "node-c (1500)"),
				hasCondition(p, mtuv1alpha1.ConditionReady, metav1.ConditionFalse, "", ""),
				hasCondition(p, mtuv1alpha1.ConditionConfigApplied, metav1.ConditionFalse, mtuv1alpha1.ReasonUnderlayMismatch, "not written while [node-c (1500)]"),
				w.configUnchanged(ctx),
				linkMTU(w.Lab, "node-c", "eth0", 1500),
				// Nothing changes, so nothing is pinned: jumbo traffic between node-a and
				// node-b keeps working.
				w.routesPinned(ctx, 0),
			)
		},
		Timeout:   time.Minute,
		Crossings: []Crossing{jumbo, blackHole, smallPods},
		Show:      []string{ShowPolicy, ShowConditions, ShowEvents, ShowTraffic},
	}, {
		Title: "Enforce: a paced migration raises node-c's NIC, then the CNI, node by node",
		Why: []string{
			"underlay.management Enforce lets the agent raise the odd NIC. Routes are pinned at 1450 first, so every",
			"packet fits every path; node-c's NIC and devices change as a probed transaction; only then is the CNI",
			"configuration written and each node's CNI agent restarted in turn; then the pins go.",
		},
		Policy: policy("Apply", "Enforce", mtuv1alpha1.EncapsulationVXLAN, "Report"),
		Expect: "node-c's eth0 at 9000, then the CNI configuration written and its agents restarted one node at a time, every tunnel and bridge at 8950, no pin left, the policy Ready, node-c's old pods reported stale at 1450",
		Until: func(ctx context.Context, w *World, p *mtuv1alpha1.NetworkMTUPolicy) error {
			checks := []error{
				hasCondition(p, mtuv1alpha1.ConditionReady, metav1.ConditionTrue, "", ""),
				hasCondition(p, mtuv1alpha1.ConditionUnderlayConsistent, metav1.ConditionTrue, "", ""),
				hasCondition(p, mtuv1alpha1.ConditionNodesConverged, metav1.ConditionTrue, mtuv1alpha1.ReasonAllNodesConverged, ""),
				hasCondition(p, mtuv1alpha1.ConditionConfigApplied, metav1.ConditionTrue, "", ""),
				check(slices.Contains(p.Status.AgentRestarts, cni.AgentDaemonSet().String()) || len(p.Status.ReplacedValues) > 0, "the CNI configuration was not written"),
				hasCondition(p, mtuv1alpha1.ConditionPodsCurrent, metav1.ConditionFalse, mtuv1alpha1.ReasonStalePodsFound, ""),
				check(p.Status.Pods.Stale == 2, "%d stale pods, want node-c's 2", p.Status.Pods.Stale),
			}
			for _, n := range w.Nodes {
				checks = append(checks, linkMTU(w.Lab, n.Name, "eth0", 9000), linkMTU(w.Lab, n.Name, tunnel, 8950), linkMTU(w.Lab, n.Name, gateway, 8950))
			}
			checks = append(checks, w.staleAnnotations(ctx, "node-c", "1450"), w.routesPinned(ctx, 0))
			return all(checks...)
		},
		Timeout:   2 * time.Minute,
		Crossings: []Crossing{flushedAB, smallPods},
		Show:      []string{ShowPolicy, ShowConditions, ShowNodes, ShowLinks, ShowPods, ShowStale, ShowEvents, ShowTraffic},
	}, {
		Title: "InPlace: correct the stale pods without restarting them",
		Why: []string{
			"Raising a pod's MTU is safe once every node carries it, so the agent can set both ends",
			"of each stale pod's veth to the new MTU in place.",
		},
		Policy: policy("Apply", "Enforce", mtuv1alpha1.EncapsulationVXLAN, "InPlace"),
		Expect: "node-c's pods at 8950 in their own namespaces, no stale pods, PodsCurrent True",
		Until: func(ctx context.Context, w *World, p *mtuv1alpha1.NetworkMTUPolicy) error {
			return all(
				hasCondition(p, mtuv1alpha1.ConditionReady, metav1.ConditionTrue, "", ""),
				hasCondition(p, mtuv1alpha1.ConditionPodsCurrent, metav1.ConditionTrue, "", ""),
				check(p.Status.StalePods == 0, "%d stale pods", p.Status.StalePods),
				PodMTUs(ctx, w.Lab, 8950),
			)
		},
		Timeout:   time.Minute,
		Crossings: []Crossing{flushedAB, raisedAC, raisedCB},
		Show:      []string{ShowPolicy, ShowPods, ShowTraffic},
	}, {
		Title:       "No encapsulation: drop VXLAN, find the pods left behind",
		SwapsRoutes: cni == lab.Flannel,
		Why: []string{
			"The nodes share one L2 segment, so the tunnel is overhead for nothing. Switching to",
			"encapsulation None rewrites the CNI configuration and restarts its agents; pods created",
			"before keep 8950 (the CoreDNS-at-1450 incident), and the operator says why.",
		},
		Policy: policy("Apply", "Enforce", mtuv1alpha1.EncapsulationNone, "Report"),
		Expect: "pod MTU 9000 and no tunnel, the CNI configuration and agents updated, every old pod reported stale: \"8950 predates the switch from VXLAN to None\"",
		Until: func(ctx context.Context, w *World, p *mtuv1alpha1.NetworkMTUPolicy) error {
			checks := []error{
				check(p.Status.PodMTU == 9000, "pod MTU %d, want 9000", p.Status.PodMTU),
				check(len(p.Status.Tunnels) == 0, "tunnels %v, want none", p.Status.Tunnels),
				check(slices.Contains(p.Status.AgentRestarts, cni.AgentDaemonSet().String()), "agent restarts %v", p.Status.AgentRestarts),
				hasCondition(p, mtuv1alpha1.ConditionNodesConverged, metav1.ConditionTrue, "", ""),
				hasCondition(p, mtuv1alpha1.ConditionPodsCurrent, metav1.ConditionFalse, mtuv1alpha1.ReasonStalePodsFound, ""),
				check(p.Status.Pods.Stale == 6, "%d stale pods, want all 6", p.Status.Pods.Stale),
				w.staleAnnotations(ctx, "", "8950 predates the switch from VXLAN to None"),
			}
			for _, n := range w.Nodes {
				checks = append(checks, linkMTU(w.Lab, n.Name, gateway, 9000))
				if cni == lab.Flannel {
					// flanneld, restarted with host-gw, leaves flannel.1 where it was, unused.
					checks = append(checks, linkMTU(w.Lab, n.Name, tunnel, 8950))
				} else {
					// Calico's and Antrea's agents drop the tunnel the configuration no longer has.
					checks = append(checks, linkAbsent(w.Lab, n.Name, tunnel))
				}
			}
			return all(checks...)
		},
		Timeout:   2 * time.Minute,
		Crossings: []Crossing{flushedAB, raisedAC, raisedCB},
		Show:      []string{ShowPolicy, ShowConditions, ShowCNIConfig, ShowLinks, ShowStale, ShowTraffic},
	}, {
		Title: "Evict: let the workloads' controllers recreate the stale pods",
		Why: []string{
			"Evictions go through the Eviction API, so PodDisruptionBudgets are honored; only pods",
			"a controller will recreate are evicted. New pods get the CNI's new MTU.",
		},
		Policy: policy("Apply", "Enforce", mtuv1alpha1.EncapsulationNone, "Evict"),
		Expect: "every old pod evicted and replaced, every pod at 9000, the policy Ready with PodsCurrent True",
		Until: func(ctx context.Context, w *World, p *mtuv1alpha1.NetworkMTUPolicy) error {
			return all(
				hasCondition(p, mtuv1alpha1.ConditionReady, metav1.ConditionTrue, "", ""),
				hasCondition(p, mtuv1alpha1.ConditionPodsCurrent, metav1.ConditionTrue, "", ""),
				w.podsReplaced(ctx),
				PodMTUs(ctx, w.Lab, 9000),
			)
		},
		Timeout:      2 * time.Minute,
		Crossings:    newPods(9000),
		ReplacesPods: true,
		Show:         []string{ShowPolicy, ShowConditions, ShowPods, ShowEvictions, ShowTraffic},
	}, {
		Title: "A black hole: node-c's switch port comes back at 1500",
		Why: []string{
			"node-c's switch is replaced and its port comes up at 1500. Every NIC still says 9000, so no",
			"comparison of NICs can see it, but frames larger than 1500 to or from node-c now vanish.",
			"The next change of the policy has every node check its peers at full size: the checks",
			"towards node-c fail, the agents measure those paths, and the rollout stops.",
		},
		Before:   func(_ context.Context, w *World) error { return w.SetSwitchPortMTU("node-c", 1500) },
		Commands: []string{"ip link set port-node-c mtu 1500    # on the switch: the port towards node-c"},
		Policy:   policy("Apply", "Enforce", mtuv1alpha1.EncapsulationNone, "Report"),
		Expect:   "the paths to and from node-c measured and named in PathMTUVerified, the rollout Stalled",
		Until: func(ctx context.Context, w *World, p *mtuv1alpha1.NetworkMTUPolicy) error {
			// The checks of the change's turns find it (PathCheckFailed), or, should the
			// probes between rollouts have found it first, the change does not start at all.
			stalled := hasCondition(p, mtuv1alpha1.ConditionStalled, metav1.ConditionTrue, mtuv1alpha1.ReasonPathCheckFailed, "")
			if byRounds := hasCondition(p, mtuv1alpha1.ConditionStalled, metav1.ConditionTrue, mtuv1alpha1.ReasonPathMTUBlackHole, ""); byRounds == nil {
				stalled = nil
			}
			return all(
				stalled,
				hasCondition(p, mtuv1alpha1.ConditionPathMTUVerified, metav1.ConditionFalse, mtuv1alpha1.ReasonPathMTUBlackHole, "node-a → node-c: the path carries 1500, the NICs 9000"),
				hasCondition(p, mtuv1alpha1.ConditionPathMTUVerified, metav1.ConditionFalse, "", "node-b → node-c: the path carries 1500, the NICs 9000"),
				// From node-c's side a veth lets a VLAN tag's 4 bytes more in: 1504.
				hasCondition(p, mtuv1alpha1.ConditionPathMTUVerified, metav1.ConditionFalse, "", "node-c → node-a: the path carries 150"),
				hasCondition(p, mtuv1alpha1.ConditionPathMTUVerified, metav1.ConditionFalse, "", "node-c → node-b: the path carries 150"),
			)
		},
		Timeout:   2 * time.Minute,
		Crossings: []Crossing{jumboNewPods, blackHolePort},
		Show:      []string{ShowConditions, ShowNodes, ShowEvents, ShowTraffic},
	}, {
		Title: "Fix the port, check again",
		Why: []string{
			"The network team sets node-c's port back to 9000, and the nodes whose checks failed are",
			"retried as the Stalled condition says. Their checks pass, the short paths are cleared.",
		},
		Before: func(ctx context.Context, w *World) error {
			if err := w.SetSwitchPortMTU("node-c", 9000); err != nil {
				return err
			}
			_, err := w.RetryFailedNodes(ctx)
			return err
		},
		Commands: []string{
			"ip link set port-node-c mtu 9000    # on the switch",
			"kubectl annotate nodemtustate node-a node-b node-c " + mtuv1alpha1.RetryAnnotation + "=true",
			"# or, with the plugin (bin/kubectl-mtu): kubectl mtu retry --failed " + PolicyName,
		},
		Policy: policy("Apply", "Enforce", mtuv1alpha1.EncapsulationNone, "Report"),
		Expect: "the policy Ready, PathMTUVerified True",
		Until: func(_ context.Context, _ *World, p *mtuv1alpha1.NetworkMTUPolicy) error {
			return all(
				hasCondition(p, mtuv1alpha1.ConditionReady, metav1.ConditionTrue, "", ""),
				hasCondition(p, mtuv1alpha1.ConditionPathMTUVerified, metav1.ConditionTrue, "", ""),
			)
		},
		Timeout:   2 * time.Minute,
		Crossings: newPods(9000),
		Show:      []string{ShowConditions, ShowTraffic},
	}}
}

// RetryFailedNodes annotates, as a Stalled condition says, each NodeMTUState whose change or
// check of its paths failed, and names them.
func (w *World) RetryFailedNodes(ctx context.Context) ([]string, error) {
	var states mtuv1alpha1.NodeMTUStateList
	if err := w.Client.List(ctx, &states); err != nil {
		return nil, err
	}
	var retried []string
	for _, s := range states.Items {
		if !mtuctl.NeedsRetry(s) {
			continue
		}
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+mtuv1alpha1.RetryAnnotation+`":"true"}}}`))
		if err := w.Client.Patch(ctx, &s, patch); err != nil {
			return nil, err
		}
		retried = append(retried, s.Name)
	}
	// None when the probes between rollouts found the path before any check did: they clear
	// it themselves once it carries its size.
	return retried, nil
}

// Apply does what happens before the step, then applies its policy as
// `kubectl apply --server-side` does.
func (w *World) Apply(ctx context.Context, s Step) error {
	if s.Before != nil {
		if err := s.Before(ctx, w); err != nil {
			return err
		}
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(s.Policy), &u.Object); err != nil {
		return err
	}
	return w.Client.Patch(ctx, u, client.Apply, client.FieldOwner("kubectl"), client.ForceOwnership) //nolint:staticcheck // the typed Apply needs generated apply configurations
}

// Policy reads the story's policy.
func Policy(ctx context.Context, l *lab.Lab) (*mtuv1alpha1.NetworkMTUPolicy, error) {
	p := &mtuv1alpha1.NetworkMTUPolicy{}
	return p, l.Client.Get(ctx, types.NamespacedName{Name: PolicyName}, p)
}

// CNIConfig returns the CNI's configuration objects' contents, by kind/name.
func CNIConfig(ctx context.Context, l *lab.Lab) (map[string]string, error) {
	out := map[string]string{}
	var cms corev1.ConfigMapList
	if err := l.Client.List(ctx, &cms); err != nil {
		return nil, err
	}
	for _, cm := range cms.Items {
		switch cm.Name {
		case plan.FlannelConfigMap, plan.CalicoConfigMap, plan.AntreaConfigMap:
			out["ConfigMap/"+cm.Name] = fmt.Sprint(cm.Data)
		}
	}
	if l.CNI == lab.Calico {
		for _, kind := range []string{"FelixConfiguration", "IPPool"} {
			list := &unstructured.UnstructuredList{}
			list.SetAPIVersion("crd.projectcalico.org/v1")
			list.SetKind(kind + "List")
			if err := l.Client.List(ctx, list); err != nil {
				return nil, err
			}
			for _, u := range list.Items {
				out[kind+"/"+u.GetName()] = fmt.Sprint(u.Object["spec"])
			}
		}
	}
	var dss appsv1.DaemonSetList
	if err := l.Client.List(ctx, &dss); err != nil {
		return nil, err
	}
	for _, ds := range dss.Items {
		out["DaemonSet/"+ds.Name] = fmt.Sprint(ds.Spec.Template.Annotations)
	}
	return out, nil
}

func (w *World) configUnchanged(ctx context.Context) error {
	now, err := CNIConfig(ctx, w.Lab)
	if err != nil {
		return err
	}
	for k, v := range w.Before {
		if now[k] != v {
			return fmt.Errorf("%s changed in DryRun: %s", k, now[k])
		}
	}
	return nil
}

// staleAnnotations checks that every pod on node (all nodes when empty) carries the stale-MTU
// report and that it says want.
func (w *World) staleAnnotations(ctx context.Context, node, want string) error {
	pods, err := w.Pods(ctx)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if node != "" && p.Spec.NodeName != node {
			if _, ok := p.Annotations[remediate.StaleMTUAnnotation]; ok {
				return fmt.Errorf("%s/%s on %s is reported stale", p.Namespace, p.Name, p.Spec.NodeName)
			}
			continue
		}
		if got := p.Annotations[remediate.StaleMTUAnnotation]; !strings.Contains(got, want) {
			return fmt.Errorf("%s/%s stale-MTU annotation %q, want it to say %q", p.Namespace, p.Name, got, want)
		}
	}
	return nil
}

func (w *World) podsReplaced(ctx context.Context) error {
	pods, err := w.Pods(ctx)
	if err != nil {
		return err
	}
	if len(pods) != 6 {
		return fmt.Errorf("%d pods, want 6", len(pods))
	}
	for _, p := range pods {
		if w.PodsBefore[p.UID] {
			return fmt.Errorf("%s/%s is still the pod from before", p.Namespace, p.Name)
		}
		if p.Status.PodIP == "" {
			return fmt.Errorf("%s/%s is not running yet", p.Namespace, p.Name)
		}
	}
	return nil
}

// PodMTUs checks that every pod's eth0 has MTU want.
func PodMTUs(ctx context.Context, l *lab.Lab, want int) error {
	got, err := l.PodMTUs(ctx)
	if err != nil {
		return err
	}
	for pod, m := range got {
		if m != want {
			return fmt.Errorf("pod %s eth0 MTU %d, want %d", pod, m, want)
		}
	}
	return nil
}

func linkMTU(l *lab.Lab, node, link string, want int) error {
	if link == "" {
		return nil
	}
	mtus, err := l.Node(node).LinkMTUs()
	if err != nil {
		return err
	}
	if got, ok := mtus[link]; !ok || got != want {
		return fmt.Errorf("%s %s MTU %d, want %d", node, link, got, want)
	}
	return nil
}

func linkAbsent(l *lab.Lab, node, link string) error {
	mtus, err := l.Node(node).LinkMTUs()
	if err != nil {
		return err
	}
	if _, ok := mtus[link]; ok {
		return fmt.Errorf("%s still has %s", node, link)
	}
	return nil
}

func observed(p *mtuv1alpha1.NetworkMTUPolicy) error {
	if p.Status.ObservedGeneration != p.Generation {
		return fmt.Errorf("generation %d not observed yet (%d)", p.Generation, p.Status.ObservedGeneration)
	}
	return nil
}

func nodesSelected(p *mtuv1alpha1.NetworkMTUPolicy, n int32) error {
	return check(p.Status.Nodes.Selected == n, "%d nodes selected, want %d", p.Status.Nodes.Selected, n)
}

// hasCondition checks a condition's status, and its reason and message when not empty.
func hasCondition(p *mtuv1alpha1.NetworkMTUPolicy, typ string, status metav1.ConditionStatus, reason, msgPart string) error {
	c := meta.FindStatusCondition(p.Status.Conditions, typ)
	switch {
	case c == nil:
		return fmt.Errorf("no %s condition", typ)
	case c.Status != status || (reason != "" && c.Reason != reason) || !strings.Contains(c.Message, msgPart):
		return fmt.Errorf("%s is %s/%s %q; want %s/%s mentioning %q", typ, c.Status, c.Reason, c.Message, status, reason, msgPart)
	}
	return nil
}

func check(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

// all returns the first error: a step's outcome is reached when every check passes.
func all(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
