// Package underlay finds a node's underlay: the interfaces that carry traffic between nodes.
// The smallest of their MTUs bounds every tunnel and pod MTU on the node, so it is the
// calculator's UnderlayMTU.
//
// Detection is a pure function of what netdev reads, so it is table-tested without a kernel.
package underlay

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/mtu-operator/mtu-operator/internal/mtu"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
)

// ErrNotFound is wrapped by the error Detect returns when no interface qualifies.
var ErrNotFound = errors.New("no underlay interface")

// Interface is one underlay interface.
type Interface struct {
	Name  string
	Index int
	MTU   int
	// DefaultRoute is true when the interface carries a default route of either family.
	DefaultRoute bool
}

// Underlay is the result of Detect.
type Underlay struct {
	// Interfaces are sorted by name.
	Interfaces []Interface
	// MTU is the smallest MTU of the Interfaces: the effective underlay MTU.
	MTU int
}

// Detect returns the underlay among links. Candidates are the links that are up, are not the
// loopback, are not ports of a bridge or bond (their master is the interface that carries
// traffic) and whose names match pattern (nil matches every name). If some candidates carry a
// default route of either family (defaultRouteLinks, by link index), those are the underlay:
// the node reaches other nodes through them. Otherwise every candidate is, as on a node whose
// inter-node network has no default route.
func Detect(links []netdev.Link, defaultRouteLinks map[mtu.Family][]int, pattern *regexp.Regexp) (Underlay, error) {
	withDefault := map[int]bool{}
	for _, idxs := range defaultRouteLinks {
		for _, idx := range idxs {
			withDefault[idx] = true
		}
	}

	var candidates []Interface
	var excluded []string
	for _, l := range links {
		if pattern != nil && !pattern.MatchString(l.Name) {
			continue
		}
		switch {
		case l.Kind == netdev.KindLoopback:
			excluded = append(excluded, l.Name+" is the loopback")
		case l.MasterIndex != 0:
			excluded = append(excluded, fmt.Sprintf("%s is a port of link %d", l.Name, l.MasterIndex))
		case !l.Up:
			excluded = append(excluded, l.Name+" is down")
		default:
			candidates = append(candidates, Interface{Name: l.Name, Index: l.Index, MTU: l.MTU, DefaultRoute: withDefault[l.Index]})
		}
	}
	if len(candidates) == 0 {
		if len(excluded) == 0 {
			return Underlay{}, fmt.Errorf("%w: no interface name matches %s", ErrNotFound, describe(pattern))
		}
		return Underlay{}, fmt.Errorf("%w: of the interfaces matching %s, %s", ErrNotFound, describe(pattern), strings.Join(excluded, ", "))
	}

	if slices.ContainsFunc(candidates, func(i Interface) bool { return i.DefaultRoute }) {
		candidates = slices.DeleteFunc(candidates, func(i Interface) bool { return !i.DefaultRoute })
	}
	slices.SortFunc(candidates, func(a, b Interface) int { return strings.Compare(a.Name, b.Name) })
	u := Underlay{Interfaces: candidates, MTU: candidates[0].MTU}
	for _, i := range candidates[1:] {
		u.MTU = min(u.MTU, i.MTU)
	}
	return u, nil
}

func describe(pattern *regexp.Regexp) string {
	if pattern == nil {
		return "any name"
	}
	return fmt.Sprintf("%q", pattern.String())
}
