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

// ShortPath is a path between two nodes that carries less than both ends do: a black hole for
// every packet in between, which no comparison of NICs sees.
type ShortPath struct {
	// From is the node that measured; To the peer, by name when a node reported its address.
	From, To string
	Layer    mtuv1alpha1.PathLayer
	// IPv6: the path was probed over IPv6, which the name says (a dual-stack pair has two).
	IPv6 bool
	// Expected is what both ends carry; Measured what crosses (0: not even 1280 bytes).
	Expected, Measured int32
}

func (p ShortPath) String() string {
	carries := fmt.Sprintf("the path carries %d", p.Measured)
	if p.Measured == 0 {
		carries = "not even 1280 bytes cross"
	}
	via, ends := "", "the NICs"
	if p.Layer == mtuv1alpha1.PathLayerOverlay {
		via, ends = " through the tunnel", "the pod networks"
	}
	if p.IPv6 {
		via += " over IPv6"
	}
	return fmt.Sprintf("%s → %s%s: %s, %s %d", p.From, p.To, via, carries, ends, p.Expected)
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
		for _, a := range slices.Concat(n.State.Status.UnderlayAddresses, n.State.Status.OverlayAddresses) {
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
			peer, err := netip.ParseAddr(p.Peer)
			short = append(short, ShortPath{From: n.Name, To: cmp.Or(byAddress[p.Peer], p.Peer), Layer: p.Layer, IPv6: err == nil && peer.Is6(),
				Expected: p.Expected, Measured: p.Measured})
		}
	}
	slices.SortFunc(short, func(a, b ShortPath) int {
		return cmp.Or(cmp.Compare(a.Measured, b.Measured), strings.Compare(a.From, b.From), strings.Compare(a.To, b.To),
			strings.Compare(string(a.Layer), string(b.Layer)), compareBool(a.IPv6, b.IPv6))
	})
	return short
}

// ProbeSchedule is the schedule the agents probe between rollouts: the nodes by name, each
// with where its layers are probed (ProbeTarget). A node that has not reported its underlay is
// left out; nil when no two nodes can probe each other, or peersPerRound is 0.
func ProbeSchedule(nodes []NodeInput, peersPerRound, roundSeconds int32) *mtuv1alpha1.PathProbingSchedule {
	if peersPerRound <= 0 {
		return nil
	}
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b NodeInput) int { return strings.Compare(a.Name, b.Name) })
	var targets []string
	for _, n := range sorted {
		if n.State == nil {
			continue
		}
		if t, ok := ProbeTarget(n.State.Status); ok {
			targets = append(targets, t.String())
		}
	}
	if len(targets) < 2 {
		return nil
	}
	return &mtuv1alpha1.PathProbingSchedule{PeersPerRound: peersPerRound, RoundSeconds: max(roundSeconds, 1), Targets: targets}
}

// ProbeTarget is where a node's layers are probed, from what its agent reported: its first
// address of each IP family on each layer. ok is false without an underlay address and MTU;
// the overlay is left empty without its own.
func ProbeTarget(s mtuv1alpha1.NodeMTUStateStatus) (t pathmtu.Target, ok bool) {
	t.Underlay = probeLayer(s.UnderlayAddresses, s.UnderlayMTU)
	if len(t.Underlay.Addresses) == 0 {
		return pathmtu.Target{}, false
	}
	t.Overlay = probeLayer(s.OverlayAddresses, s.OverlayMTU)
	return t, true
}

// probeLayer is a layer's first address of each family, or nothing when its MTU is unknown.
func probeLayer(addresses []string, mtu int32) pathmtu.Layer {
	if mtu < 68 {
		return pathmtu.Layer{}
	}
	var parsed []netip.Addr
	for _, s := range addresses {
		if a, err := netip.ParseAddr(s); err == nil {
			parsed = append(parsed, a)
		}
	}
	return pathmtu.Layer{Addresses: pathmtu.OnePerFamily(parsed), MTU: int(mtu)}
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

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
