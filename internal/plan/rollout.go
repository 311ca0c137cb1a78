package plan

import (
	"fmt"
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/util/intstr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// NodeTarget is what every selected node must reach.
type NodeTarget struct {
	PodMTU           int32
	UnderlayMTU      *int32 // set when the policy enforces the underlay
	Interfaces       []mtuv1alpha1.ManagedInterface
	InterfacePattern string
	PodAction        mtuv1alpha1.StalePodAction
}

// NodeInput is one selected node and its state object, if it has one yet.
type NodeInput struct {
	Name  string
	State *mtuv1alpha1.NodeMTUState
}

// UnderlayReport compares the underlay MTU the nodes reported.
type UnderlayReport struct {
	// Reported is how many nodes reported an underlay MTU.
	Reported int
	// Expected is the MTU the nodes should share: the declared one, or the most common.
	Expected int32
	// Outliers are the nodes whose underlay differs from Expected, as "name (mtu)".
	Outliers []string
}

// Rollout is the decision for the selected nodes.
type Rollout struct {
	// Specs is the spec every selected node's NodeMTUState should have.
	Specs map[string]mtuv1alpha1.NodeMTUStateSpec
	// Counts for the policy's status.
	Counts mtuv1alpha1.NodeCounts
	// InProgress are nodes given the target that have not converged yet.
	InProgress []string
	// Pending are nodes still waiting for their turn.
	Pending []string
	// Failed are nodes whose change was rolled back (or failed), with the agent's message.
	Failed []string
	// Blocked are nodes whose underlay is smaller than the declared MTU the policy does not
	// enforce, as "name (mtu)": their interfaces cannot carry the target, so they only observe.
	Blocked []string
	// RouteMTU is pinned on every selected node while nodes disagree; nil once all converged.
	RouteMTU *int32
	Underlay UnderlayReport
}

// Halted says whether a failed node stopped the rollout.
func (r Rollout) Halted() bool { return len(r.Failed) > 0 }

// Done says whether every selected node has converged on the target.
func (r Rollout) Done() bool { return int(r.Counts.Converged) == int(r.Counts.Selected) }

// maxPeers bounds the peers each node probes after a change.
const maxPeers = 3

// RolloutInputs is what the rollout decision needs.
type RolloutInputs struct {
	Policy     string
	Generation int64
	Target     NodeTarget
	// UnderlaySource and DeclaredUnderlay say what underlay MTU the nodes should share.
	UnderlaySource   mtuv1alpha1.UnderlaySource
	DeclaredUnderlay *int32
	MaxUnavailable   *intstr.IntOrString
	// Nodes are the selected nodes.
	Nodes []NodeInput
}

// DecideRollout decides which nodes get the target now. It hands the target to at most
// maxUnavailable nodes that have not converged at a time, in name order, and to none while a
// node's change has failed: a failure stops the rollout rather than spreading. Nodes not yet
// given the target keep what they had, and every node gets the same route MTU pin until all
// have converged, so traffic between changed and unchanged nodes fits both.
func DecideRollout(in RolloutInputs) Rollout {
	policy, generation, target := in.Policy, in.Generation, in.Target
	nodes := slices.Clone(in.Nodes)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })

	r := Rollout{Specs: map[string]mtuv1alpha1.NodeMTUStateSpec{}}
	r.Counts.Selected = int32(len(nodes))
	r.Underlay = compareUnderlay(in.UnderlaySource, in.DeclaredUnderlay, nodes)

	var untargeted []NodeInput
	blocked := map[string]bool{}
	for _, n := range nodes {
		switch {
		case cannotCarry(in, n.State):
			blocked[n.Name] = true
			r.Blocked = append(r.Blocked, underlayOf(n))
		case !targeted(n.State, policy, target):
			untargeted = append(untargeted, n)
		case converged(n.State):
			r.Counts.Converged++
		case failed(n.State, generation):
			r.Counts.Failed++
			r.Failed = append(r.Failed, fmt.Sprintf("%s: %s", n.Name, n.State.Status.LastTransaction.Message))
		default:
			r.InProgress = append(r.InProgress, n.Name)
		}
	}
	budget := 0
	if !r.Halted() {
		budget = max(scaledMaxUnavailable(in.MaxUnavailable, len(nodes))-len(r.InProgress), 0)
	}
	handed := map[string]bool{}
	for _, n := range untargeted {
		if len(handed) == budget {
			r.Pending = append(r.Pending, n.Name)
			continue
		}
		handed[n.Name] = true
		r.InProgress = append(r.InProgress, n.Name)
	}

	if !r.Done() {
		r.RouteMTU = routePin(policy, target, nodes)
	}

	for i, n := range nodes {
		spec := mtuv1alpha1.NodeMTUStateSpec{}
		if n.State != nil && n.State.Spec.Policy == policy {
			spec = *n.State.Spec.DeepCopy()
		}
		give := func(phase mtuv1alpha1.NodePhase, underlay *int32) {
			spec.Phase = phase
			spec.PolicyGeneration = generation
			spec.PodMTU = target.PodMTU
			spec.UnderlayMTU = underlay
			spec.Interfaces = slices.Clone(target.Interfaces)
		}
		switch {
		case blocked[n.Name]:
			// Its devices cannot take the target over this underlay: the kernel would refuse,
			// or worse, accept and drop large packets. It reports until the NIC is fixed.
			give(mtuv1alpha1.PhaseObserve, nil)
		case handed[n.Name] || targeted(n.State, policy, target):
			give(mtuv1alpha1.PhaseConverge, target.UnderlayMTU)
		case spec.Phase != mtuv1alpha1.PhaseConverge:
			// Waiting for its turn: report the target interfaces so the pin can account for
			// their current MTU, and change nothing.
			give(mtuv1alpha1.PhaseObserve, nil)
		}
		spec.Policy = policy
		spec.UnderlayInterfacePattern = target.InterfacePattern
		spec.PodAction = target.PodAction
		spec.RouteMTU = r.RouteMTU
		spec.Probe.Peers = peersOf(nodes, i)
		r.Specs[n.Name] = spec
	}
	return r
}

// cannotCarry: the node reported an underlay smaller than the declared MTU, which the policy
// does not enforce.
func cannotCarry(in RolloutInputs, s *mtuv1alpha1.NodeMTUState) bool {
	return in.Target.UnderlayMTU == nil && belowDeclared(in.UnderlaySource, in.DeclaredUnderlay, s)
}

// belowDeclared: the node reported an underlay smaller than the declared MTU.
func belowDeclared(source mtuv1alpha1.UnderlaySource, declared *int32, s *mtuv1alpha1.NodeMTUState) bool {
	return source == mtuv1alpha1.UnderlayDeclared && declared != nil &&
		s != nil && s.Status.UnderlayMTU > 0 && s.Status.UnderlayMTU < *declared
}

// NodesBelowDeclared names, as "name (mtu)", the nodes whose reported underlay is smaller than
// the declared MTU.
func NodesBelowDeclared(source mtuv1alpha1.UnderlaySource, declared *int32, nodes []NodeInput) []string {
	var below []string
	for _, n := range nodes {
		if belowDeclared(source, declared, n.State) {
			below = append(below, underlayOf(n))
		}
	}
	return below
}

// underlayOf names a node with its reported underlay MTU, as conditions list them.
func underlayOf(n NodeInput) string {
	return fmt.Sprintf("%s (%d)", n.Name, n.State.Status.UnderlayMTU)
}

func scaledMaxUnavailable(v *intstr.IntOrString, selected int) int {
	if v == nil {
		return 1
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, selected, true)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// routePin is the MTU routes are pinned to while nodes disagree: the smallest of the target,
// the targets nodes are still converging to, and the MTUs the nodes' CNI interfaces have now.
func routePin(policy string, target NodeTarget, nodes []NodeInput) *int32 {
	pin := target.PodMTU
	for _, n := range nodes {
		if n.State == nil || n.State.Spec.Policy != policy {
			continue
		}
		if n.State.Spec.Phase == mtuv1alpha1.PhaseConverge && n.State.Spec.PodMTU > 0 {
			pin = min(pin, n.State.Spec.PodMTU)
		}
		for _, i := range n.State.Status.Interfaces {
			if i.Present && i.MTU > 0 {
				pin = min(pin, i.MTU)
			}
		}
	}
	if pin <= 0 {
		return nil
	}
	return &pin
}

// targeted: the node's spec already asks it to converge on this target.
func targeted(s *mtuv1alpha1.NodeMTUState, policy string, t NodeTarget) bool {
	if s == nil || s.Spec.Policy != policy || s.Spec.Phase != mtuv1alpha1.PhaseConverge || s.Spec.PodMTU != t.PodMTU || !equalPtr(s.Spec.UnderlayMTU, t.UnderlayMTU) {
		return false
	}
	if len(s.Spec.Interfaces) != len(t.Interfaces) {
		return false
	}
	for _, want := range t.Interfaces {
		if !slices.Contains(s.Spec.Interfaces, want) {
			return false
		}
	}
	return true
}

func equalPtr(a, b *int32) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// converged: the agent reports every managed interface (and an enforced underlay) at its
// target. It is judged from what the agent saw, not from the spec's generation, so that
// releasing the route pin, a spec change, does not make converged nodes look unconverged.
func converged(s *mtuv1alpha1.NodeMTUState) bool {
	if s.Spec.Phase != mtuv1alpha1.PhaseConverge {
		return false
	}
	for _, want := range s.Spec.Interfaces {
		i := slices.IndexFunc(s.Status.Interfaces, func(got mtuv1alpha1.InterfaceState) bool { return got.Name == want.Name })
		if i < 0 || (s.Status.Interfaces[i].Present && s.Status.Interfaces[i].MTU != want.MTU) {
			return false
		}
	}
	if s.Spec.UnderlayMTU != nil {
		for _, u := range s.Status.Underlay {
			if u.MTU != *s.Spec.UnderlayMTU {
				return false
			}
		}
		if len(s.Status.Underlay) == 0 {
			return false
		}
	}
	return true
}

// failed: the agent's last change, made for the policy's current generation, did not commit.
// Editing the policy starts a new generation, which lets a failed node try again.
func failed(s *mtuv1alpha1.NodeMTUState, generation int64) bool {
	t := s.Status.LastTransaction
	return t != nil && t.Outcome != mtuv1alpha1.TransactionCommitted && t.PolicyGeneration == generation
}

// peersOf picks up to maxPeers other nodes that reported an underlay address, following i in
// name order, so every node is probed by a few others and the choice is stable.
func peersOf(nodes []NodeInput, i int) []string {
	var peers []string
	for k := 1; k < len(nodes) && len(peers) < maxPeers; k++ {
		n := nodes[(i+k)%len(nodes)]
		if n.State != nil && len(n.State.Status.UnderlayAddresses) > 0 {
			peers = append(peers, n.State.Status.UnderlayAddresses[0])
		}
	}
	return peers
}

// maxNamed bounds the names a condition message lists.
const maxNamed = 10

// Bounded lists at most maxNamed names, for condition messages.
func Bounded(names []string) string {
	if len(names) <= maxNamed {
		return fmt.Sprint(names)
	}
	return fmt.Sprintf("%v and %d more", names[:maxNamed], len(names)-maxNamed)
}

// SmallestUnderlay is the smallest underlay MTU the nodes reported; nil when none did.
func SmallestUnderlay(nodes []NodeInput) *int32 {
	var smallest *int32
	for _, n := range nodes {
		if n.State != nil && n.State.Status.UnderlayMTU > 0 && (smallest == nil || n.State.Status.UnderlayMTU < *smallest) {
			v := n.State.Status.UnderlayMTU
			smallest = &v
		}
	}
	return smallest
}

// compareUnderlay finds the nodes whose underlay MTU differs: from the declared MTU, or, when
// detected, from the most common value (ties go to the larger, the configuration the operator
// was most likely asked to keep).
func compareUnderlay(source mtuv1alpha1.UnderlaySource, declared *int32, nodes []NodeInput) UnderlayReport {
	var rep UnderlayReport
	counts := map[int32]int{}
	for _, n := range nodes {
		if n.State == nil || n.State.Status.UnderlayMTU == 0 {
			continue
		}
		rep.Reported++
		counts[n.State.Status.UnderlayMTU]++
	}
	if source != mtuv1alpha1.UnderlayAutoDetect && declared != nil {
		rep.Expected = *declared
	} else {
		for v, c := range counts {
			if c > counts[rep.Expected] || (c == counts[rep.Expected] && v > rep.Expected) {
				rep.Expected = v
			}
		}
	}
	for _, n := range nodes {
		if n.State != nil && n.State.Status.UnderlayMTU != 0 && n.State.Status.UnderlayMTU != rep.Expected {
			rep.Outliers = append(rep.Outliers, underlayOf(n))
		}
	}
	return rep
}
