package migration

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// The simulated cluster runs flannel: flannel.1 (VXLAN, 50 bytes of overhead) and cni0.
const (
	tunnel   = "flannel.1"
	bridge   = "cni0"
	overhead = 50
	policy   = "p"
)

// simNode is a node as the kernel and the CNI have it.
type simNode struct {
	name     string
	underlay int32
	devices  map[string]int32 // present devices only
	pin      *int32
	// podMTU is what the node's running CNI agent hands new pods; pods holds every pod's MTU.
	podMTU int32
	enc    encap
	pods   []int32
	cni    CNIPod
	state  *mtuv1alpha1.NodeMTUState
	silent bool // its agent does not run
	// refuse makes every change fail its probe, as a broken path would.
	refuse bool
	// port is the MTU the switch port towards the node carries; 0 carries anything.
	port int32
	// unpinnable: the kernel refuses the route pin; the agent reports none.
	unpinnable bool
	// reports counts the agent's status writes.
	reports int
	// short are the paths its agent's probes found short, as its status reports them.
	short []mtuv1alpha1.PathMTU
	// version is its state's resourceVersion, counted up whenever what the controller reads
	// of it changes; seen is the object last read, handed out again while nothing changes.
	version int
	seen    *mtuv1alpha1.NodeMTUState
}

// carries: the node's NIC and its switch port take a packet of size bytes.
func (n *simNode) carries(size int32) bool {
	return size <= n.underlay && (n.port == 0 || size <= n.port)
}

// encap is a cluster's encapsulation: its target interfaces for a pod MTU.
type encap struct {
	name     string
	overhead int32
	tunnel   bool
}

var (
	vxlan = encap{"VXLAN", overhead, true}
	none  = encap{"None", 0, false}
)

func (e encap) target(underlay int32) plan.NodeTarget {
	pod := underlay - e.overhead
	t := plan.NodeTarget{PodMTU: pod, InterfacePattern: "^eth", PodAction: mtuv1alpha1.StalePodReport}
	if e.tunnel {
		t.Interfaces = append(t.Interfaces, mtuv1alpha1.ManagedInterface{Name: tunnel, Role: mtuv1alpha1.RoleTunnel, MTU: pod})
	}
	t.Interfaces = append(t.Interfaces, mtuv1alpha1.ManagedInterface{Name: bridge, Role: mtuv1alpha1.RoleBridge, MTU: pod})
	return t
}

// sim is a cluster, its CNI configuration and the controller's policy status.
type sim struct {
	t         *testing.T
	nodes     []*simNode
	config    int32 // the pod MTU the CNI's documents hand out
	configEnc encap
	migration *mtuv1alpha1.MigrationStatus
	// pinsReleased is the transition's pinsReleasedGeneration, which every agent watches.
	pinsReleased int64
	now          time.Time
	generation   int64
	log          []string
	// maxChanging is the most nodes that were changing devices or restarting their CNI agent
	// at one moment.
	maxChanging int
	writes      int
	// broken are the pairs of nodes that lost packets before the migration began: the
	// incident the policy is applied to fix. They must work at the end.
	broken map[[2]string]bool
	// memo is the controller's between decisions: every round decides with it and without,
	// and the two must agree.
	memo *Memo
}

// newSim starts a cluster whose nodes have the given underlays and devices sized for them
// with enc, and the CNI configured for the smallest.
func newSim(t *testing.T, enc encap, underlays ...int32) *sim {
	s := &sim{t: t, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), configEnc: enc, config: slices.Min(underlays) - enc.overhead, memo: NewMemo()}
	for i, u := range underlays {
		n := &simNode{name: fmt.Sprintf("node-%c", 'a'+i), underlay: u, devices: map[string]int32{bridge: u - enc.overhead}}
		if enc.tunnel {
			n.devices[tunnel] = u - enc.overhead
		}
		n.podMTU, n.enc = n.devices[bridge], enc
		n.pods = []int32{n.podMTU}
		n.cni = CNIPod{Created: s.now.Add(-time.Hour), Ready: true}
		s.nodes = append(s.nodes, n)
	}
	s.broken = map[[2]string]bool{}
	for _, lost := range s.lostPaths() {
		s.broken[lost.pair] = true
	}
	return s
}

func (s *sim) node(name string) *simNode {
	for _, n := range s.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// input is what the controller gathers for a policy of underlay mtu with enc.
func (s *sim) input(enc encap, mtu int32, enforce, allowLowering bool, maxUnavailable intstr.IntOrString) Input {
	in := Input{
		Policy: policy, Generation: s.generation, Target: enc.target(mtu), DeclaredUnderlay: ptr.To(mtu),
		Enforce: enforce, AllowLowering: allowLowering, MaxUnavailable: &maxUnavailable,
		ConfigPending: s.config != mtu-enc.overhead || s.configEnc != enc, PacedRestart: true, Previous: s.migration, Now: s.now,
		PinsReleased: s.pinsReleased,
	}
	if enforce {
		in.Target.UnderlayMTU = ptr.To(mtu)
	}
	// As the controller does: the agent pods are listed only when a restart may be near.
	in.CNIPodsListed = ListCNIPods(in)
	for _, n := range s.nodes {
		node := Node{Name: n.name, State: n.state.DeepCopy()}
		if node.State != nil {
			node.State.Status.Paths = n.short
			// As a cache hands it out: the same object while it does not change.
			if n.seen != nil {
				node.State.ResourceVersion = n.seen.ResourceVersion
			}
			if equality.Semantic.DeepEqual(node.State, n.seen) {
				node.State = n.seen
			} else {
				n.version++
				node.State.ResourceVersion = strconv.Itoa(n.version)
				n.seen = node.State
			}
		}
		if in.CNIPodsListed {
			pod := n.cni
			node.CNIPod = &pod
		}
		in.Nodes = append(in.Nodes, node)
	}
	return in
}

// round is one reconcile of the controller, then one of every agent, then a second. The step
// it returns lists every node's spec as the node holds it after the step (a decision's own
// lists only the specs that change).
func (s *sim) round(in Input) Step {
	s.t.Helper()
	for i := range in.Nodes {
		if n := &in.Nodes[i]; n.RetryRequested && n.State != nil {
			n.State = n.State.DeepCopy()
			n.State.ResourceVersion += "+retry" // the annotation is a write of its own
		}
	}
	step := Decide(in)
	in.Memo = s.memo
	if remembered := Decide(in); !equality.Semantic.DeepEqual(step, remembered) {
		s.t.Fatalf("a decision with the memo differs from one without:\n without: %+v\n with:    %+v", step, remembered)
	}
	s.migration = step.Migration.DeepCopy()
	if step.PinsReleased < s.pinsReleased {
		s.t.Fatalf("pinsReleasedGeneration went back from %d to %d", s.pinsReleased, step.PinsReleased)
	}
	s.pinsReleased = step.PinsReleased
	for _, n := range s.nodes {
		spec, changed := step.Specs[n.name]
		switch {
		case n.state == nil && !changed:
			s.t.Fatalf("no spec for %s, which has no state yet", n.name)
		case n.state == nil:
			n.state = &mtuv1alpha1.NodeMTUState{}
			n.state.Name = n.name
			n.state.Generation = 1
		case !changed:
			step.Specs[n.name] = n.state.Spec
			continue
		case equality.Semantic.DeepEqual(n.state.Spec, spec):
			s.t.Fatalf("%s's spec is listed as changed, and is the same", n.name)
		default:
			n.state.Generation++
		}
		n.state.Spec = spec
	}
	if step.WriteConfig {
		s.checkCarried(in.Target)
		s.config, s.configEnc = in.Target.PodMTU, encOf(in.Target)
		s.writes++
		s.log = append(s.log, fmt.Sprintf("%s: config written: pod MTU %d", s.migration.Phase, s.config))
	}
	for _, name := range step.RestartCNI {
		s.node(name).cni.Deleting = true
	}
	s.now = s.now.Add(time.Second)
	changing := 0
	for _, n := range s.nodes {
		if n.cni.Deleting {
			// The DaemonSet recreates the pod; the agent reads the configuration as it is now.
			n.cni = CNIPod{Created: s.now, Ready: true}
			n.podMTU, n.enc = s.config, s.configEnc
			n.pods = append(n.pods, n.podMTU)
			changing++
			s.log = append(s.log, fmt.Sprintf("%s: CNI agent restarted on %s: pods get %d", s.migration.Phase, n.name, n.podMTU))
		}
		if s.agent(n) {
			changing++
		}
		s.watchTransition(n)
	}
	s.maxChanging = max(s.maxChanging, changing)
	s.checkPaths()
	return step
}

func encOf(t plan.NodeTarget) encap {
	for _, i := range t.Interfaces {
		if i.Name == tunnel {
			return vxlan
		}
	}
	return none
}

// agent acts as the node agent does: apply the spec's changes as a transaction probed with
// the spec's peers, pin, report. It says whether it changed a device.
func (s *sim) agent(n *simNode) bool {
	st := n.state
	if n.silent || st == nil || st.Status.ObservedGeneration >= st.Generation {
		return false
	}
	spec := st.Spec
	changed := false
	last := st.Status.LastTransaction
	retryingFailed := last != nil && last.Outcome != mtuv1alpha1.TransactionCommitted && last.PolicyGeneration == spec.PolicyGeneration && last.Attempt == spec.Attempt
	if spec.Phase == mtuv1alpha1.PhaseConverge && !retryingFailed {
		before := maps.Clone(n.devices)
		underlayBefore := n.underlay
		if spec.UnderlayMTU != nil {
			n.underlay = *spec.UnderlayMTU
		}
		for _, i := range spec.Interfaces {
			if _, ok := n.devices[i.Name]; ok {
				n.devices[i.Name] = i.MTU
			}
		}
		if !maps.Equal(before, n.devices) || n.underlay != underlayBefore {
			changed = true
			outcome, msg := mtuv1alpha1.TransactionCommitted, ""
			if err := s.probe(n, spec.Probe.Peers); err != nil {
				n.devices, n.underlay = before, underlayBefore
				outcome, msg = mtuv1alpha1.TransactionRolledBack, err.Error()
			}
			st.Status.LastTransaction = &mtuv1alpha1.Transaction{PolicyGeneration: spec.PolicyGeneration, Attempt: spec.Attempt, Outcome: outcome, Message: msg}
			s.log = append(s.log, fmt.Sprintf("%s: %s %s: eth0 %d %v %s", s.migration.Phase, n.name, outcome, n.underlay, n.devices, msg))
		}
	}
	if spec.Verify && (st.Status.Verification == nil || st.Status.Verification.PolicyGeneration != spec.PolicyGeneration || st.Status.Verification.Attempt != spec.Attempt) {
		v := &mtuv1alpha1.Verification{PolicyGeneration: spec.PolicyGeneration, Attempt: spec.Attempt, Passed: true}
		if err := s.probe(n, spec.Probe.Peers); err != nil {
			v.Passed, v.Message = false, err.Error()
		}
		st.Status.Verification = v
		s.log = append(s.log, fmt.Sprintf("%s: %s verified: %t %s", s.migration.Phase, n.name, v.Passed, v.Message))
	}
	switch {
	case spec.RouteMTU != nil && mtuv1alpha1.PinReleased(s.pinsReleased, spec.PolicyGeneration):
		// Released by the policy before the agent got to it: nothing to pin, nothing to say.
		n.pin = nil
	case n.unpinnable:
		n.pin = nil
		st.Status.RouteMTU = nil
	default:
		n.pin = spec.RouteMTU
		st.Status.RouteMTU = n.pin
	}
	st.Status.UnderlayMTU = n.underlay
	st.Status.Underlay = []mtuv1alpha1.UnderlayInterface{{Name: "eth0", MTU: n.underlay, DefaultRoute: true}}
	st.Status.UnderlayAddresses = []string{n.name}
	st.Status.Interfaces = nil
	for _, i := range spec.Interfaces {
		m, ok := n.devices[i.Name]
		st.Status.Interfaces = append(st.Status.Interfaces, mtuv1alpha1.InterfaceState{Name: i.Name, MTU: m, Present: ok})
	}
	st.Status.ObservedGeneration = st.Generation
	n.reports++
	return changed
}

// watchTransition acts as the agent does on the transition's release of its spec's pin: it
// drops the pin, and reports nothing.
func (s *sim) watchTransition(n *simNode) {
	if n.silent || n.state == nil || n.pin == nil || !mtuv1alpha1.PinReleased(s.pinsReleased, n.state.Spec.PolicyGeneration) {
		return
	}
	n.pin = nil
	s.log = append(s.log, fmt.Sprintf("%s: %s released its pin (the transition)", s.migration.Phase, n.name))
}

// probe sends a don't-fragment packet of each peer's size both ways, as the agent's probe
// and the peer's answer do.
func (s *sim) probe(n *simNode, peers []mtuv1alpha1.ProbePeer) error {
	if n.refuse {
		return fmt.Errorf("ICMP echo of %d bytes to %s without fragmentation: no reply", peers[0].Size, peers[0].Address)
	}
	for _, p := range peers {
		peer := s.node(p.Address)
		if !n.carries(p.Size) || !peer.carries(p.Size) {
			return fmt.Errorf("ICMP echo of %d bytes to %s without fragmentation: no reply (%s carries %d)", p.Size, p.Address, p.Address, peer.underlay)
		}
	}
	return nil
}

// checkCarried: the configuration is written only when every node's devices carry what it
// hands out.
func (s *sim) checkCarried(t plan.NodeTarget) {
	s.t.Helper()
	enc := encOf(t)
	for _, n := range s.nodes {
		if n.underlay < t.PodMTU+enc.overhead {
			s.t.Errorf("%s: configuration for pod MTU %d written while %s's underlay is %d", s.migration.Phase, t.PodMTU, n.name, n.underlay)
		}
		for _, want := range t.Interfaces {
			if m, ok := n.devices[want.Name]; ok && m < t.PodMTU {
				s.t.Errorf("%s: configuration for pod MTU %d written while %s %s is %d", s.migration.Phase, t.PodMTU, n.name, want.Name, m)
			}
		}
	}
}

// checkPaths checks the invariant on every pair of nodes that worked before.
func (s *sim) checkPaths() {
	s.t.Helper()
	for _, x := range s.nodes {
		for name, m := range x.devices {
			if name == tunnel && m > x.underlay-overhead {
				s.t.Errorf("%s: %s %s is %d over an underlay of %d", s.migration.Phase, x.name, name, m, x.underlay)
			}
		}
	}
	for _, lost := range s.lostPaths() {
		if !s.broken[lost.pair] {
			s.t.Errorf("%s: %s\n%s", s.migration.Phase, lost.why, strings.Join(s.log, "\n"))
		}
	}
}

type lostPath struct {
	pair [2]string
	why  string
}

// lostPaths are the pairs of nodes between which a packet a pod's routes allow is lost. A pod
// of the node's current pod MTU on x sends at most min(its MTU, x's pin, x's first-hop
// device) (larger ones get ICMP fragmentation-needed from x: not lost); it is lost if the
// underlay or y's bridge or pod cannot take it.
func (s *sim) lostPaths() []lostPath {
	var out []lostPath
	for _, x := range s.nodes {
		for _, y := range s.nodes {
			if x == y {
				continue
			}
			size := x.podMTU
			if x.pin != nil {
				size = min(size, *x.pin)
			}
			hop, encapsulated := x.devices[bridge], false
			if t, ok := x.devices[tunnel]; ok && x.enc.tunnel {
				hop, encapsulated = min(hop, t), true
			}
			size = min(size, hop)
			wire := size
			if encapsulated {
				wire += overhead
			}
			if !x.carries(wire) || !y.carries(wire) || size > y.devices[bridge] || size > y.podMTU {
				out = append(out, lostPath{pair: [2]string{x.name, y.name}, why: fmt.Sprintf("a %d-byte packet from a pod on %s (pod %d, pin %v, underlay %d) to a pod on %s (underlay %d, bridge %d, pod %d) is lost",
					size, x.name, x.podMTU, ptr.Deref(x.pin, 0), x.underlay, y.name, y.underlay, y.devices[bridge], y.podMTU)})
			}
		}
	}
	return out
}

// run reconciles until the step says Done or rounds run out.
func (s *sim) run(in func() Input, rounds int) Step {
	s.t.Helper()
	var step Step
	for range rounds {
		step = s.round(in())
		if step.Migration.Phase == mtuv1alpha1.MigrationDone && step.Verdict.Stalled == nil && step.Verdict.Progressing == nil {
			return step
		}
	}
	return step
}

func (s *sim) checkDone(step Step, target plan.NodeTarget) {
	s.t.Helper()
	if step.Migration.Phase != mtuv1alpha1.MigrationDone || step.Verdict.Stalled != nil || step.Verdict.Progressing != nil {
		s.t.Fatalf("not done: phase %s, verdict %+v %+v\n%s", step.Migration.Phase, step.Verdict.Stalled, step.Verdict.Progressing, strings.Join(s.log, "\n"))
	}
	for _, lost := range s.lostPaths() {
		s.t.Errorf("at the end: %s", lost.why)
	}
	for _, n := range s.nodes {
		if n.pin != nil {
			s.t.Errorf("%s still pinned at %d", n.name, *n.pin)
		}
		if n.podMTU != target.PodMTU {
			s.t.Errorf("%s hands pods %d, want %d", n.name, n.podMTU, target.PodMTU)
		}
		for _, i := range target.Interfaces {
			if m, ok := n.devices[i.Name]; ok && m != i.MTU {
				s.t.Errorf("%s %s is %d, want %d", n.name, i.Name, m, i.MTU)
			}
		}
		if target.UnderlayMTU != nil && n.underlay != *target.UnderlayMTU {
			s.t.Errorf("%s underlay %d, want %d", n.name, n.underlay, *target.UnderlayMTU)
		}
	}
}
