package migration

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// FuzzMemoDecidesAsWithout: over any sequence of decisions, with contexts that change while
// the nodes' states do not (a pin set, a release, the next phase, a new target) and states
// that change while the context does not, a decision with the memo kept since the first
// equals one without. The simulated rollouts check the same on every round of theirs.
func FuzzMemoDecidesAsWithout(f *testing.F) {
	for _, seed := range []string{
		"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10",
		"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0",
		"\x03\x01\x04\x01\x05\x09\x02\x06\x05\x03\x05\x08\x09\x07\x09\x03\x02\x03\x08\x04\x06\x02\x06\x04\x03\x03\x08\x03\x02\x07\x09\x05",
		"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &chooser{data: data}
		memo := NewMemo()
		nodes := make([]Node, 1+c.intn(6))
		for i := range nodes {
			nodes[i] = c.node(i, i+1)
		}
		version := len(nodes)
		in := c.input(nodes)
		var last Step
		for round := 0; round < 8 && c.more(); round++ {
			switch c.intn(5) {
			case 0: // the context changes, the states do not
				in = c.input(nodes)
			case 1: // one thing of the context changes
				c.vary(&in)
			case 2: // some states change, the context does not
				for i := range nodes {
					if c.intn(2) == 0 {
						version++
						nodes[i] = c.node(i, version)
					}
				}
				in.Nodes = nodes
			case 3: // the last step's specs are written, and some agents carry them out
				for i := range nodes {
					if spec, ok := last.Specs[nodes[i].Name]; ok {
						version++
						nodes[i] = Node{Name: nodes[i].Name, State: c.carryOut(nodes[i].State, spec, version)}
					}
				}
				in.Nodes = nodes
			}
			without := Decide(in)
			last = without
			in.Memo = memo
			with := Decide(in)
			in.Memo = nil
			if !equality.Semantic.DeepEqual(without, with) {
				t.Fatalf("round %d: a decision with the memo differs from one without:\n without: %+v\n with:    %+v", round, without, with)
			}
		}
	})
}

// chooser draws choices from a fuzzer's bytes; zero once they run out.
type chooser struct {
	data []byte
	at   int
}

func (c *chooser) more() bool { return c.at < len(c.data) }

func (c *chooser) intn(n int) int {
	if !c.more() {
		return 0
	}
	b := c.data[c.at]
	c.at++
	return int(b) % n
}

func pick[T any](c *chooser, options ...T) T { return options[c.intn(len(options))] }

// input is a decision of a devices phase (or of the phases around it) with a context drawn from c.
func (c *chooser) input(nodes []Node) Input {
	underlay := pick(c, int32(1500), int32(9000))
	target := pick(c, vxlan, none).target(underlay)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	generation := pick(c, int64(1), int64(2))
	in := Input{
		Policy: policy, Generation: generation, Target: target, DeclaredUnderlay: ptr.To(underlay),
		Enforce: c.intn(2) == 0, AllowLowering: c.intn(2) == 0, MaxUnavailable: ptr.To(pick(c, intstr.FromInt32(1), intstr.FromInt32(2), intstr.FromString("50%"))),
		ConfigPending: c.intn(2) == 0, PacedRestart: true, CNIRolledOut: true, Now: now,
		PinsReleased: pick(c, int64(0), int64(1), int64(2)), ProbeTimeoutSeconds: 10,
		Previous: &mtuv1alpha1.MigrationStatus{
			Generation: pick(c, generation, generation-1),
			Phase: pick(c, mtuv1alpha1.MigrationRaisingDevices, mtuv1alpha1.MigrationLoweringDevices, mtuv1alpha1.MigrationPinning,
				mtuv1alpha1.MigrationVerifying, mtuv1alpha1.MigrationDone, mtuv1alpha1.MigrationGathering),
			RoutableMTU: pick(c, int32(0), int32(1450), int32(8950)), VerifyPaths: c.intn(2) == 0, StartedAt: metav1.Time{Time: now},
		},
		Nodes: nodes,
	}
	if in.Enforce {
		in.Target.UnderlayMTU = ptr.To(underlay)
	}
	return in
}

// node is the i-th node with a state drawn from c at resourceVersion version; its retry
// annotation is part of that state.
func (c *chooser) node(i, version int) Node {
	return Node{Name: fmt.Sprintf("node-%c", 'a'+i), State: c.state(i, version), RetryRequested: c.intn(4) == 0}
}

// carryOut is state with spec written at version, and maybe reported on by its agent as
// committed.
func (c *chooser) carryOut(state *mtuv1alpha1.NodeMTUState, spec mtuv1alpha1.NodeMTUStateSpec, version int) *mtuv1alpha1.NodeMTUState {
	s := &mtuv1alpha1.NodeMTUState{}
	if state != nil {
		s = state.DeepCopy()
	}
	s.Spec, s.Generation, s.ResourceVersion = spec, s.Generation+1, strconv.Itoa(version)
	if c.intn(3) == 0 {
		return s
	}
	s.Status.ObservedGeneration, s.Status.RouteMTU = s.Generation, spec.RouteMTU
	if spec.Phase != mtuv1alpha1.PhaseConverge {
		return s
	}
	for _, want := range spec.Interfaces {
		for i := range s.Status.Interfaces {
			if s.Status.Interfaces[i].Name == want.Name {
				s.Status.Interfaces[i].MTU = want.MTU
			}
		}
	}
	if u := spec.UnderlayMTU; u != nil {
		s.Status.UnderlayMTU = *u
		s.Status.Underlay = []mtuv1alpha1.UnderlayInterface{{Name: "eth0", MTU: *u, DefaultRoute: true}}
	}
	s.Status.LastTransaction = &mtuv1alpha1.Transaction{PolicyGeneration: spec.PolicyGeneration, Attempt: spec.Attempt, Outcome: mtuv1alpha1.TransactionCommitted}
	if spec.Verify {
		s.Status.Verification = &mtuv1alpha1.Verification{PolicyGeneration: spec.PolicyGeneration, Attempt: spec.Attempt, Passed: c.intn(4) > 0, Message: "short"}
	}
	return s
}

// vary changes one thing of in's context: what a rollout changes from one decision to the next.
func (c *chooser) vary(in *Input) {
	prev := in.Previous.DeepCopy()
	in.Previous = prev
	switch c.intn(7) {
	case 0:
		prev.RoutableMTU = pick(c, int32(0), int32(1450), int32(8950))
	case 1:
		in.PinsReleased = pick(c, int64(0), int64(1), int64(2))
	case 2:
		prev.Phase = pick(c, mtuv1alpha1.MigrationRaisingDevices, mtuv1alpha1.MigrationLoweringDevices, mtuv1alpha1.MigrationVerifying, mtuv1alpha1.MigrationDone)
	case 3:
		prev.VerifyPaths = !prev.VerifyPaths
	case 4:
		in.ConfigPending = !in.ConfigPending
	case 5:
		in.MaxUnavailable = ptr.To(pick(c, intstr.FromInt32(1), intstr.FromInt32(2), intstr.FromString("50%")))
	default:
		in.Generation = pick(c, int64(1), int64(2))
		prev.Generation = pick(c, in.Generation, in.Generation-1)
	}
}

// state is a node's state drawn from c, at resourceVersion version.
func (c *chooser) state(i, version int) *mtuv1alpha1.NodeMTUState {
	small, large := vxlan.target(1500), vxlan.target(9000)
	s := &mtuv1alpha1.NodeMTUState{}
	s.Name, s.ResourceVersion, s.Generation = fmt.Sprintf("node-%c", 'a'+i), strconv.Itoa(version), int64(1+c.intn(3))
	s.Spec = mtuv1alpha1.NodeMTUStateSpec{
		Policy: pick(c, policy, policy, "other"), PolicyGeneration: pick(c, int64(1), int64(2)),
		Phase:      pick(c, mtuv1alpha1.PhaseObserve, mtuv1alpha1.PhaseConverge),
		Interfaces: pick(c, small.Interfaces, large.Interfaces, nil), PodMTU: pick(c, small.PodMTU, large.PodMTU),
		UnderlayMTU: pick(c, nil, ptr.To[int32](1500), ptr.To[int32](9000)), RouteMTU: pick(c, nil, ptr.To[int32](1450), ptr.To[int32](8950)),
		Verify: c.intn(2) == 0, Attempt: int32(c.intn(2)),
		UnderlayInterfacePattern: "^eth", PodAction: mtuv1alpha1.StalePodReport,
		Probe: mtuv1alpha1.NodeProbe{TimeoutSeconds: 10},
	}
	if c.intn(2) == 0 {
		s.Spec.Probe.Peers = []mtuv1alpha1.ProbePeer{{Address: "10.0.0.9", Size: pick(c, int32(1500), int32(9000))}}
	}
	devices := pick(c, int32(1450), int32(8950), int32(1500))
	underlay := pick(c, int32(0), int32(1500), int32(9000), int32(9000))
	s.Status = mtuv1alpha1.NodeMTUStateStatus{
		ObservedGeneration: s.Generation - int64(c.intn(2)), UnderlayMTU: underlay,
		Underlay:   []mtuv1alpha1.UnderlayInterface{{Name: "eth0", MTU: underlay, DefaultRoute: true}},
		Interfaces: []mtuv1alpha1.InterfaceState{{Name: tunnel, MTU: devices, Present: c.intn(4) > 0}, {Name: bridge, MTU: devices, Present: true}},
		RouteMTU:   pick(c, nil, ptr.To[int32](1450), ptr.To[int32](8950)),
	}
	if c.intn(3) > 0 {
		s.Status.UnderlayAddresses = []string{fmt.Sprintf("10.0.0.%d", 1+c.intn(4))}
	}
	if c.intn(2) == 0 {
		s.Status.LastTransaction = &mtuv1alpha1.Transaction{PolicyGeneration: pick(c, int64(1), int64(2)), Attempt: int32(c.intn(2)),
			Outcome: pick(c, mtuv1alpha1.TransactionCommitted, mtuv1alpha1.TransactionCommitted, mtuv1alpha1.TransactionRolledBack), Message: "probe failed"}
	}
	if c.intn(3) == 0 {
		s.Status.Verification = &mtuv1alpha1.Verification{PolicyGeneration: pick(c, int64(1), int64(2)), Attempt: int32(c.intn(2)), Passed: c.intn(3) > 0, Message: "short"}
	}
	return s
}
