package plan

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/plan/pathmtu"
)

// ShortPath is a path between two nodes that carries less than both NICs do: a black hole for
// every packet in between, which no comparison of NICs sees.
type ShortPath struct {
	// From is the node that measured; To the peer, by name when a node reported its address.
	From, To string
	Layer    mtuv1alpha1.PathLayer
	// Expected is what the NICs carry; Measured what crosses (0: not even 1280 bytes).
	Expected, Measured int32
}

func (p ShortPath) String() string {
	carries := fmt.Sprintf("the path carries %d", p.Measured)
	if p.Measured == 0 {
		carries = "not even 1280 bytes cross"
	}
	return fmt.Sprintf("%s → %s: %s, the NICs %d", p.From, p.To, carries, p.Expected)
}

// ShortPaths gathers the paths the nodes' agents measured short, worst first (the least that
// crosses, then by name).
func ShortPaths(nodes []NodeInput) []ShortPath {
	// A healthy cluster reports none: one scan, and the address map only when there are some.
	if !slices.ContainsFunc(nodes, func(n NodeInput) bool { return n.State != nil && len(n.State.Status.Paths) > 0 }) {
		return nil
	}
	byAddress := map[string]string{}
	for _, n := range nodes {
		if n.State == nil {
			continue
		}
		for _, a := range n.State.Status.UnderlayAddresses {
			byAddress[a] = n.Name
		}
	}
	var short []ShortPath
	for _, n := range nodes {
		if n.State == nil {
			continue
		}
		for _, p := range n.State.Status.Paths {
			if p.Measured >= p.Expected {
				continue
			}
			short = append(short, ShortPath{From: n.Name, To: cmp.Or(byAddress[p.Peer], p.Peer), Layer: p.Layer, Expected: p.Expected, Measured: p.Measured})
		}
	}
	slices.SortFunc(short, func(a, b ShortPath) int {
		return cmp.Or(cmp.Compare(a.Measured, b.Measured), strings.Compare(a.From, b.From), strings.Compare(a.To, b.To))
	})
	return short
}

// ProbeSchedule is the schedule the agents probe between rollouts: the nodes by name, each as
// the address it is probed at and its NIC's MTU. A node that has not reported both is left
// out; nil when no two nodes can probe each other, or peersPerRound is 0.
func ProbeSchedule(nodes []NodeInput, peersPerRound, roundSeconds int32) *mtuv1alpha1.PathProbingSchedule {
	if peersPerRound <= 0 {
		return nil
	}
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b NodeInput) int { return strings.Compare(a.Name, b.Name) })
	var targets []string
	for _, n := range sorted {
		if n.State == nil || len(n.State.Status.UnderlayAddresses) == 0 || n.State.Status.UnderlayMTU < 68 {
			continue
		}
		address, err := netip.ParseAddr(n.State.Status.UnderlayAddresses[0])
		if err != nil {
			continue
		}
		targets = append(targets, pathmtu.FormatTarget(address, int(n.State.Status.UnderlayMTU)))
	}
	if len(targets) < 2 {
		return nil
	}
	return &mtuv1alpha1.PathProbingSchedule{PeersPerRound: peersPerRound, RoundSeconds: max(roundSeconds, 1), Targets: targets}
}

// PathsMessage says which paths fall short, the worst few by name.
func PathsMessage(short []ShortPath) string {
	named := make([]string, 0, min(len(short), maxNamed))
	for _, p := range short[:min(len(short), maxNamed)] {
		named = append(named, p.String())
	}
	msg := strings.Join(named, "; ")
	if len(short) > maxNamed {
		msg += fmt.Sprintf("; and %d more", len(short)-maxNamed)
	}
	return msg
}
