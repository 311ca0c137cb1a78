package plan

import (
	"time"

	"k8s.io/apimachinery/pkg/labels"
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
