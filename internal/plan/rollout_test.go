package plan

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

var jumboTarget = NodeTarget{
	PodMTU:           8950,
	Interfaces:       []mtuv1alpha1.ManagedInterface{{Name: "flannel.1", Role: mtuv1alpha1.RoleTunnel, MTU: 8950}, {Name: "cni0", Role: mtuv1alpha1.RoleBridge, MTU: 8950}},
	InterfacePattern: "^eth",
	PodAction:        mtuv1alpha1.StalePodReport,
}

// node builds a node input whose agent reports the given MTUs for flannel.1 and cni0 and the
// given underlay; phase "" means no state object yet.
func node(name string, phase mtuv1alpha1.NodePhase, podMTU, observed, underlay int32) NodeInput {
	if phase == "" {
		return NodeInput{Name: name}
	}
	s := &mtuv1alpha1.NodeMTUState{}
	s.Name = name
	s.Spec = mtuv1alpha1.NodeMTUStateSpec{Policy: "p", Phase: phase, PodMTU: podMTU, PolicyGeneration: 1}
	for _, i := range jumboTarget.Interfaces {
		s.Spec.Interfaces = append(s.Spec.Interfaces, mtuv1alpha1.ManagedInterface{Name: i.Name, Role: i.Role, MTU: podMTU})
	}
	if observed > 0 {
		s.Status.Interfaces = []mtuv1alpha1.InterfaceState{{Name: "flannel.1", MTU: observed, Present: true}, {Name: "cni0", MTU: observed, Present: true}}
	}
	if underlay > 0 {
		s.Status.UnderlayMTU = underlay
		s.Status.Underlay = []mtuv1alpha1.UnderlayInterface{{Name: "eth0", MTU: underlay, DefaultRoute: true}}
		s.Status.UnderlayAddresses = []string{"192.0.2." + strings.TrimPrefix(name, "n")}
	}
	return NodeInput{Name: name, State: s}
}

func rolledBack(n NodeInput) NodeInput {
	n.State.Status.LastTransaction = &mtuv1alpha1.Transaction{PolicyGeneration: 1, Outcome: mtuv1alpha1.TransactionRolledBack, Message: "probe of 192.0.2.2 with 8950 bytes failed"}
	return n
}

func TestPlanRolloutPacing(t *testing.T) {
	two := intstr.FromInt32(2)
	half := intstr.FromString("50%")
	tests := []struct {
		name           string
		maxUnavailable *intstr.IntOrString
		nodes          []NodeInput
		wantInProgress string
		wantPending    string
		wantConverged  int32
		wantPin        string
	}{
		{
			name:           "first two of five get the target; the rest observe",
			maxUnavailable: &two,
			nodes:          []NodeInput{node("n5", "", 0, 0, 0), node("n1", "", 0, 0, 0), node("n2", "", 0, 0, 0), node("n3", "", 0, 0, 0), node("n4", "", 0, 0, 0)},
			wantInProgress: "[n1 n2]", wantPending: "[n3 n4 n5]", wantPin: "8950",
		},
		{
			name:           "in-progress nodes use the budget",
			maxUnavailable: &two,
			nodes:          []NodeInput{node("n1", "Converge", 8950, 1450, 1500), node("n2", "Converge", 8950, 1450, 1500), node("n3", "Observe", 8950, 1450, 1500)},
			wantInProgress: "[n1 n2]", wantPending: "[n3]", wantPin: "1450",
		},
		{
			name:           "converged nodes free the budget",
			maxUnavailable: &two,
			nodes:          []NodeInput{node("n1", "Converge", 8950, 8950, 9000), node("n2", "Converge", 8950, 1450, 9000), node("n3", "Observe", 8950, 1450, 9000), node("n4", "Observe", 8950, 1450, 9000)},
			wantInProgress: "[n2 n3]", wantPending: "[n4]", wantConverged: 1, wantPin: "1450",
		},
		{
			name:           "50% of 3 rounds up to 2",
			maxUnavailable: &half,
			nodes:          []NodeInput{node("n1", "", 0, 0, 0), node("n2", "", 0, 0, 0), node("n3", "", 0, 0, 0)},
			wantInProgress: "[n1 n2]", wantPending: "[n3]", wantPin: "8950",
		},
		{
			name:           "all converged: the pin is released",
			maxUnavailable: &two,
			nodes:          []NodeInput{node("n1", "Converge", 8950, 8950, 9000), node("n2", "Converge", 8950, 8950, 9000)},
			wantInProgress: "[]", wantPending: "[]", wantConverged: 2, wantPin: "none",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := DecideRollout(RolloutInputs{Policy: "p", Generation: 1, Target: jumboTarget, UnderlaySource: mtuv1alpha1.UnderlayDeclared, MaxUnavailable: tc.maxUnavailable, Nodes: tc.nodes})
			if fmt.Sprint(r.InProgress) != tc.wantInProgress || fmt.Sprint(r.Pending) != tc.wantPending || r.Counts.Converged != tc.wantConverged {
				t.Fatalf("in progress %v pending %v converged %d; want %s %s %d", r.InProgress, r.Pending, r.Counts.Converged, tc.wantInProgress, tc.wantPending, tc.wantConverged)
			}
			pin := "none"
			if r.RouteMTU != nil {
				pin = fmt.Sprint(*r.RouteMTU)
			}
			if pin != tc.wantPin {
				t.Errorf("route pin %s; want %s", pin, tc.wantPin)
			}
			converging := 0
			for name, spec := range r.Specs {
				if spec.Policy != "p" || spec.UnderlayInterfacePattern != "^eth" || !equalPtr(spec.RouteMTU, r.RouteMTU) {
					t.Errorf("%s: spec %+v", name, spec)
				}
				if spec.Phase == mtuv1alpha1.PhaseConverge && !converged(&mtuv1alpha1.NodeMTUState{Spec: spec, Status: stateOf(tc.nodes, name).Status}) {
					converging++
				}
			}
			limit, _ := intstr.GetScaledValueFromIntOrPercent(tc.maxUnavailable, len(tc.nodes), true)
			if converging > limit {
				t.Errorf("%d nodes converging; maxUnavailable allows %d", converging, limit)
			}
		})
	}
}

func stateOf(nodes []NodeInput, name string) mtuv1alpha1.NodeMTUState {
	for _, n := range nodes {
		if n.Name == name && n.State != nil {
			return *n.State
		}
	}
	return mtuv1alpha1.NodeMTUState{}
}

func TestPlanRolloutHaltsOnFailure(t *testing.T) {
	all := intstr.FromString("100%")
	r := DecideRollout(RolloutInputs{Policy: "p", Generation: 1, Target: jumboTarget, UnderlaySource: mtuv1alpha1.UnderlayDeclared, MaxUnavailable: &all, Nodes: []NodeInput{
		rolledBack(node("n1", "Converge", 8950, 1450, 1500)), node("n2", "Observe", 8950, 1450, 1500), node("n3", "", 0, 0, 0),
	}})
	if !r.Halted() || r.Counts.Failed != 1 || !strings.Contains(r.Failed[0], "n1: probe of 192.0.2.2 with 8950 bytes failed") {
		t.Fatalf("halted %v failed %v", r.Halted(), r.Failed)
	}
	if fmt.Sprint(r.Pending) != "[n2 n3]" || r.Specs["n2"].Phase != mtuv1alpha1.PhaseObserve || r.Specs["n3"].Phase != mtuv1alpha1.PhaseObserve {
		t.Errorf("a failed node must stop the rollout: pending %v, n2 %s, n3 %s", r.Pending, r.Specs["n2"].Phase, r.Specs["n3"].Phase)
	}
	// Editing the policy (a new generation) lets the failed node try again.
	r = DecideRollout(RolloutInputs{Policy: "p", Generation: 2, Target: jumboTarget, UnderlaySource: mtuv1alpha1.UnderlayDeclared, MaxUnavailable: &all, Nodes: []NodeInput{rolledBack(node("n1", "Converge", 8950, 1450, 1500))}})
	if r.Halted() || r.Specs["n1"].PolicyGeneration != 2 {
		t.Errorf("after a policy edit: halted %v, generation %d", r.Halted(), r.Specs["n1"].PolicyGeneration)
	}
}

// A node whose NIC is smaller than the declared MTU, which the policy only observes, is never
// handed the target (its tunnel cannot exceed its NIC); enforcing the underlay hands it over.
func TestPlanRolloutSkipsNodesThatCannotCarryTheTarget(t *testing.T) {
	all := intstr.FromString("100%")
	declared := int32(9000)
	nodes := []NodeInput{node("n1", "Observe", 8950, 8950, 9000), node("n2", "Observe", 8950, 1450, 1500), node("n3", "Observe", 8950, 8950, 9000)}
	in := RolloutInputs{Policy: "p", Generation: 1, Target: jumboTarget, UnderlaySource: mtuv1alpha1.UnderlayDeclared, DeclaredUnderlay: &declared, MaxUnavailable: &all, Nodes: nodes}
	r := DecideRollout(in)
	if fmt.Sprint(r.Blocked) != "[n2 (1500)]" || r.Specs["n2"].Phase != mtuv1alpha1.PhaseObserve || r.Done() {
		t.Errorf("blocked %v, n2 phase %s, done %v; want n2 observing and the rollout not done", r.Blocked, r.Specs["n2"].Phase, r.Done())
	}
	if r.Specs["n1"].Phase != mtuv1alpha1.PhaseConverge || r.Specs["n3"].Phase != mtuv1alpha1.PhaseConverge {
		t.Errorf("n1 %s, n3 %s; the nodes that can carry it converge", r.Specs["n1"].Phase, r.Specs["n3"].Phase)
	}
	enforced := jumboTarget
	enforced.UnderlayMTU = &declared
	in.Target = enforced
	if r := DecideRollout(in); len(r.Blocked) != 0 || r.Specs["n2"].Phase != mtuv1alpha1.PhaseConverge {
		t.Errorf("with Enforce: blocked %v, n2 %s; want n2 handed the target with its NIC", r.Blocked, r.Specs["n2"].Phase)
	}
}

func TestPlanRolloutPeers(t *testing.T) {
	all := intstr.FromString("100%")
	r := DecideRollout(RolloutInputs{Policy: "p", Generation: 1, Target: jumboTarget, UnderlaySource: mtuv1alpha1.UnderlayDeclared, MaxUnavailable: &all, Nodes: []NodeInput{
		node("n1", "Observe", 8950, 1450, 9000), node("n2", "Observe", 8950, 1450, 9000), node("n3", "Observe", 8950, 1450, 9000), node("n4", "Observe", 8950, 1450, 9000), node("n5", "", 0, 0, 0),
	}})
	if got := fmt.Sprint(r.Specs["n4"].Probe.Peers); got != "[192.0.2.1 192.0.2.2 192.0.2.3]" {
		t.Errorf("n4 peers %s; want the next three nodes that reported an address", got)
	}
	if got := fmt.Sprint(r.Specs["n1"].Probe.Peers); got != "[192.0.2.2 192.0.2.3 192.0.2.4]" {
		t.Errorf("n1 peers %s", got)
	}
}

func TestCompareUnderlay(t *testing.T) {
	declared := int32(9000)
	nodes := []NodeInput{node("n1", "Observe", 8950, 0, 9000), node("n2", "Observe", 8950, 0, 1500), node("n3", "Observe", 8950, 0, 9000), node("n4", "", 0, 0, 0)}
	tests := []struct {
		name         string
		source       mtuv1alpha1.UnderlaySource
		declared     *int32
		nodes        []NodeInput
		wantExpected int32
		wantOutliers string
		wantSmallest int32
	}{
		{"declared: the 1500 node is named", mtuv1alpha1.UnderlayDeclared, &declared, nodes, 9000, "[n2 (1500)]", 1500},
		{"detected: the majority wins", mtuv1alpha1.UnderlayAutoDetect, nil, nodes, 9000, "[n2 (1500)]", 1500},
		{"detected tie: the larger wins", mtuv1alpha1.UnderlayAutoDetect, nil, nodes[:2], 9000, "[n2 (1500)]", 1500},
		{"all agree", mtuv1alpha1.UnderlayAutoDetect, nil, []NodeInput{nodes[0], nodes[2]}, 9000, "[]", 9000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			all := intstr.FromString("100%")
			u := DecideRollout(RolloutInputs{Policy: "p", Generation: 1, Target: jumboTarget, UnderlaySource: tc.source, DeclaredUnderlay: tc.declared, MaxUnavailable: &all, Nodes: tc.nodes}).Underlay
			smallest := SmallestUnderlay(tc.nodes)
			if u.Expected != tc.wantExpected || fmt.Sprint(u.Outliers) != tc.wantOutliers || smallest == nil || *smallest != tc.wantSmallest {
				t.Errorf("expected %d outliers %v smallest %v; want %d %s %d", u.Expected, u.Outliers, smallest, tc.wantExpected, tc.wantOutliers, tc.wantSmallest)
			}
		})
	}
	many := UnderlayReport{}
	for i := range 13 {
		many.Outliers = append(many.Outliers, fmt.Sprintf("n%d (1500)", i))
	}
	if s := Bounded(many.Outliers); !strings.HasSuffix(s, " and 3 more") {
		t.Errorf("summary %q; want it bounded", s)
	}
}

func TestConvergedIgnoresThePin(t *testing.T) {
	n := node("n1", "Converge", 8950, 8950, 9000)
	pin := int32(1450)
	n.State.Spec.RouteMTU = &pin
	n.State.Generation = 7 // the agent has not seen the pin's release yet
	if !converged(n.State) {
		t.Fatalf("a node whose interfaces are at the target is converged whatever the pin")
	}
}
