package migration

import (
	"maps"
	"slices"

	"k8s.io/utils/ptr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// Memo keeps, from one decision of a policy to the next, what each node's own state decided:
// its underlay, whether it reports paths, whether it is at its final target, and in a devices
// phase its class, its want, and which of its specs stays as it is. A wave of maxUnavailable
// nodes then costs a decision the nodes that reported since the last one, not every node's
// interfaces and spec again: with an absolute maxUnavailable a rollout takes N/k decisions,
// and N/k full passes were N²/k.
//
// An entry holds for one state object and one context (the policy's generation and target; in
// a devices phase also the phase, the pin, the verification flag and the release). The same
// object is known without reading it: a controller passes its cache's objects, which are
// replaced, never changed in place, when they change. Another object of the same
// resourceVersion holds the entry too. Only what depends on nothing but those is kept: a spec
// whose probe peers are chosen now (from other nodes' addresses) is decided again each time.
// A decision with a memo equals one without (the simulated rollouts decide both ways and
// compare every step, and so does FuzzMemoDecidesAsWithout).
//
// A Memo serves one policy, one decision at a time (a controller reconciles a policy on one
// worker). The zero value is not ready: use NewMemo.
type Memo struct {
	context memoContext
	// names and entries are the last decision's nodes, in order, and their entries, by value:
	// a decision reads them in order, not each from its own place in memory.
	names   []string
	entries []memoEntry
	// turns is a devices phase's scratch, kept for the next.
	turns []turn
}

// NewMemo returns an empty memo.
func NewMemo() *Memo {
	return &Memo{}
}

// memoContext is what a node's findings depend on besides its own state.
type memoContext struct {
	policy         string
	generation     int64
	target         plan.NodeTarget
	declared       *int32
	enforce        bool
	probeTimeout   int32
	underlayByNode map[string]int32
}

func contextOf(in Input) memoContext {
	return memoContext{
		policy: in.Policy, generation: in.Generation, target: in.Target, declared: in.DeclaredUnderlay,
		enforce: in.Enforce, probeTimeout: in.ProbeTimeoutSeconds, underlayByNode: in.UnderlayByNode,
	}
}

func (c memoContext) equal(o memoContext) bool {
	return c.policy == o.policy && c.generation == o.generation && c.enforce == o.enforce && c.probeTimeout == o.probeTimeout &&
		ptr.Equal(c.declared, o.declared) && maps.Equal(c.underlayByNode, o.underlayByNode) &&
		c.target.PodMTU == o.target.PodMTU && ptr.Equal(c.target.UnderlayMTU, o.target.UnderlayMTU) &&
		slices.Equal(c.target.Interfaces, o.target.Interfaces) && c.target.InterfacePattern == o.target.InterfacePattern &&
		c.target.PodAction == o.target.PodAction
}

// turnKey is what a devices phase adds to the context.
type turnKey struct {
	phase        mtuv1alpha1.MigrationPhase
	pin          int32 // 0: none
	verifyPaths  bool
	pinsReleased int64
}

// nodeClass is where a node stands in a devices phase.
type nodeClass uint8

const (
	classPending     nodeClass = iota // waiting for its turn
	classChanging                     // handed its turn, not at its target yet
	classConfirming                   // at its target, to confirm its turn (pin, paths)
	classDone                         // at its target, turn confirmed
	classFailed                       // its change did not commit
	classPathsFailed                  // its check of its paths failed
)

// specBranch is which spec a devices phase gives a node.
type specBranch int8

const (
	branchNone     specBranch = iota // not known to stay
	branchObserve                    // failed: report only
	branchConverge                   // handed its turn, or at its target
	branchWait                       // waiting, as it was
)

type memoEntry struct {
	// state is the object these were decided for, version its resourceVersion.
	state   *mtuv1alpha1.NodeMTUState
	version string
	// The node's own facts.
	underlayMTU int32
	hasPaths    bool
	// converged: at its final want (convergedKnown says it was computed).
	converged, convergedKnown bool
	// A devices phase's findings, for turn.
	turn    turnKey
	hasTurn bool
	class   nodeClass
	atWant  bool
	want    nodeWant
	// kept is the branch whose spec is the node's own already.
	kept specBranch
}

// entriesFor starts a decision over nodes (sorted by name) in context in, and returns each
// node's entry, in order. A new context forgets every node, and so does a new list of nodes
// for those not on it.
func (m *Memo) entriesFor(in Input, nodes []Node) []memoEntry {
	if c := contextOf(in); !m.context.equal(c) {
		m.context = c
		m.names, m.entries = nil, nil
	}
	if !slices.EqualFunc(m.names, nodes, func(name string, n Node) bool { return name == n.Name }) {
		names, entries := make([]string, len(nodes)), make([]memoEntry, len(nodes))
		for i, n := range nodes {
			names[i] = n.Name
			if j, found := slices.BinarySearch(m.names, n.Name); found {
				entries[i] = m.entries[j]
			}
		}
		m.names, m.entries = names, entries
	}
	return m.entries
}

// entry is the i-th node's entry for its state; nil when it cannot be remembered (no memo, no
// state yet, no version, or a spec of another policy, which the controller blanks in a copy).
func (d *decision) entry(i int) *memoEntry {
	if d.entries == nil {
		return nil
	}
	e, s := &d.entries[i], d.nodes[i].State
	if s != nil && s == e.state {
		return e
	}
	if s == nil || s.ResourceVersion == "" || s.Spec.Policy != d.in.Policy {
		return nil
	}
	if e.version != s.ResourceVersion {
		*e = memoEntry{version: s.ResourceVersion, underlayMTU: s.Status.UnderlayMTU, hasPaths: len(s.Status.Paths) > 0}
	}
	e.state = s
	return e
}
