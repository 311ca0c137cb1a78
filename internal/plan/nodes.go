package plan

import (
	"fmt"
	"iter"
	"slices"

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

// maxNamed bounds the names a condition message lists.
const maxNamed = 10

// Bounded lists at most maxNamed names, for condition messages.
func Bounded(names []string) string {
	if len(names) <= maxNamed {
		return fmt.Sprint(names)
	}
	return fmt.Sprintf("%v and %d more", names[:maxNamed], len(names)-maxNamed)
}

// CompareUnderlay finds the nodes whose underlay MTU differs: from the declared MTU, or, when
// detected, from the most common value (ties go to the larger, the configuration the operator
// was most likely asked to keep).
func CompareUnderlay(source mtuv1alpha1.UnderlaySource, declared *int32, nodes iter.Seq2[string, int32]) UnderlayReport {
	var rep UnderlayReport
	// A cluster has few distinct MTUs: a list, not a map, counts them (a reconcile compares
	// every node's).
	type count struct {
		mtu   int32
		nodes int
	}
	var counts []count
	for _, mtu := range nodes {
		if mtu == 0 {
			continue
		}
		rep.Reported++
		if i := slices.IndexFunc(counts, func(c count) bool { return c.mtu == mtu }); i >= 0 {
			counts[i].nodes++
		} else {
			counts = append(counts, count{mtu, 1})
		}
	}
	if source != mtuv1alpha1.UnderlayAutoDetect && declared != nil {
		rep.Expected = *declared
	} else {
		most := 0
		for _, c := range counts {
			if c.nodes > most || (c.nodes == most && c.mtu > rep.Expected) {
				rep.Expected, most = c.mtu, c.nodes
			}
		}
	}
	for name, mtu := range nodes {
		if mtu != 0 && mtu != rep.Expected {
			rep.Outliers = append(rep.Outliers, fmt.Sprintf("%s (%d)", name, mtu))
		}
	}
	return rep
}
