package plan

import (
	"time"

	"k8s.io/apimachinery/pkg/labels"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// PolicySelection is what overlap detection needs of a policy.
type PolicySelection struct {
	Name    string
	Created time.Time
	// Selector is nil when the policy selects every node.
	Selector labels.Selector
}

// precedes orders policies: the older one wins, ties broken by name.
func (p PolicySelection) precedes(q PolicySelection) bool {
	if !p.Created.Equal(q.Created) {
		return p.Created.Before(q.Created)
	}
	return p.Name < q.Name
}

func (p PolicySelection) selects(node labels.Set) bool {
	return p.Selector == nil || p.Selector.Matches(node)
}

// EarlierOverlap returns the name of the oldest policy that precedes me and selects a node me
// also selects, or "" when there is none. Two policies that both select every node overlap
// even before any node exists.
func EarlierOverlap(me PolicySelection, others []PolicySelection, nodes []labels.Set) string {
	var winner *PolicySelection
	for i := range others {
		other := others[i]
		if other.Name == me.Name || !other.precedes(me) {
			continue
		}
		if !overlaps(me, other, nodes) {
			continue
		}
		if winner == nil || other.precedes(*winner) {
			winner = &others[i]
		}
	}
	if winner == nil {
		return ""
	}
	return winner.Name
}

func overlaps(a, b PolicySelection, nodes []labels.Set) bool {
	if a.Selector == nil && b.Selector == nil {
		return true
	}
	for _, n := range nodes {
		if a.selects(n) && b.selects(n) {
			return true
		}
	}
	return false
}

// CNIWriter is a policy that would write the cluster-wide CNI configuration.
type CNIWriter struct {
	PolicySelection
	// PodMTU and Encapsulation are what it would configure.
	PodMTU        int32
	Encapsulation mtuv1alpha1.EncapsulationType
}

// CNIOwner is the one policy allowed to write the CNI configuration, which every node shares:
// the oldest of the writers, ties broken by name. Empty when there are none.
func CNIOwner(writers []CNIWriter) *CNIWriter {
	var owner *CNIWriter
	for i := range writers {
		if owner == nil || writers[i].precedes(owner.PolicySelection) {
			owner = &writers[i]
		}
	}
	return owner
}

// Agrees says whether w would configure the CNI as the owner does.
func (w CNIWriter) Agrees(owner CNIWriter) bool {
	return w.PodMTU == owner.PodMTU && w.Encapsulation == owner.Encapsulation
}

// NamedLabels are a node's name and labels.
type NamedLabels struct {
	Name   string
	Labels labels.Set
}

// Unselected returns the nodes p does not select, in the order given. The CNI's configuration
// reaches every node: a policy that leaves some out must not change it, or their CNI agents
// would hand out a pod MTU that no migration prepared their devices and NICs for.
func Unselected(p PolicySelection, nodes []NamedLabels) []string {
	var out []string
	for _, n := range nodes {
		if !p.selects(n.Labels) {
			out = append(out, n.Name)
		}
	}
	return out
}
