package plan

import (
	"fmt"
	"slices"
	"testing"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

func nodeWithPaths(name, address string, paths ...mtuv1alpha1.PathMTU) NodeInput {
	s := &mtuv1alpha1.NodeMTUState{}
	s.Name = name
	s.Status.UnderlayAddresses = []string{address}
	s.Status.Paths = paths
	return NodeInput{Name: name, State: s}
}

// jumboPath is a path between 9000-byte NICs that carries measured.
func jumboPath(peer string, measured int32) mtuv1alpha1.PathMTU {
	return mtuv1alpha1.PathMTU{Peer: peer, Layer: mtuv1alpha1.PathLayerUnderlay, Expected: 9000, Measured: measured}
}

func TestShortPaths(t *testing.T) {
	nodes := []NodeInput{
		nodeWithPaths("node-a", "192.168.100.11", jumboPath("192.168.100.13", 1500), jumboPath("192.168.100.12", 9000)),
		nodeWithPaths("node-b", "192.168.100.12"),
		nodeWithPaths("node-c", "192.168.100.13", jumboPath("192.168.100.11", 1500), jumboPath("198.51.100.7", 0),
			mtuv1alpha1.PathMTU{Peer: "10.244.0.0", Layer: mtuv1alpha1.PathLayerOverlay, Expected: 8950, Measured: 1450}),
		{Name: "node-d"}, // no state yet
	}
	nodes[0].State.Status.OverlayAddresses = []string{"10.244.0.0"}
	// Dual stack: the same pair over IPv6 is a path of its own.
	nodes[0].State.Status.UnderlayAddresses = append(nodes[0].State.Status.UnderlayAddresses, "fd00::11")
	nodes[2].State.Status.Paths = append(nodes[2].State.Status.Paths, jumboPath("fd00::11", 1500))
	got := PathsMessage(ShortPaths(nodes))
	want := "node-c → 198.51.100.7: not even 1280 bytes cross, the NICs 9000; " +
		"node-c → node-a through the tunnel: the path carries 1450, the pod networks 8950; " +
		"node-a → node-c: the path carries 1500, the NICs 9000; " +
		"node-c → node-a: the path carries 1500, the NICs 9000; " +
		"node-c → node-a over IPv6: the path carries 1500, the NICs 9000"
	if got != want {
		t.Errorf("PathsMessage =\n%s\nwant\n%s", got, want)
	}
	if short := ShortPaths(nodes[1:2]); len(short) != 0 {
		t.Errorf("a node that measured nothing short: %v", short)
	}
}

func TestPathsMessageIsBounded(t *testing.T) {
	var nodes []NodeInput
	for i := range 25 {
		nodes = append(nodes, nodeWithPaths(fmt.Sprintf("node-%02d", i), fmt.Sprintf("10.0.0.%d", i), jumboPath("10.0.1.1", 1500)))
	}
	msg := PathsMessage(ShortPaths(nodes))
	if want := "; and 15 more"; len(msg) > 700 || msg[len(msg)-len(want):] != want {
		t.Errorf("PathsMessage of 25 = %q (%d bytes), want 10 named and %q", msg, len(msg), want)
	}
}

func TestProbeSchedule(t *testing.T) {
	withMTU := func(n NodeInput, mtu int32) NodeInput { n.State.Status.UnderlayMTU = mtu; return n }
	nodes := []NodeInput{
		withMTU(nodeWithPaths("node-c", "192.168.100.13"), 1500),
		withMTU(nodeWithPaths("node-a", "192.168.100.11"), 9000),
		nodeWithPaths("node-d", "192.168.100.14"), // no NIC reported yet
		{Name: "node-e"}, // no state yet
		withMTU(nodeWithPaths("node-b", "fd00::12"), 9000),
	}
	// Dual stack, with a pod network: one address per family, the first.
	nodes[1].State.Status.UnderlayAddresses = []string{"192.168.100.11", "fd00::11", "192.168.200.11", "fe80::1%eth0"}
	nodes[1].State.Status.OverlayAddresses, nodes[1].State.Status.OverlayMTU = []string{"10.244.0.0", "fd01::"}, 8950
	// A pod network address without its MTU is not probed.
	nodes[4].State.Status.OverlayAddresses = []string{"10.244.1.0"}
	got := ProbeSchedule(nodes, 3, 30)
	want := []string{"192.168.100.11,fd00::11/9000 10.244.0.0,fd01::/8950", "fd00::12/9000", "192.168.100.13/1500"}
	if got == nil || !slices.Equal(got.Targets, want) || got.PeersPerRound != 3 || got.RoundSeconds != 30 {
		t.Errorf("ProbeSchedule = %+v, want the targets %v by node name", got, want)
	}
	if got := ProbeSchedule(nodes, 0, 30); got != nil {
		t.Errorf("probing off: %+v", got)
	}
	if got := ProbeSchedule(nodes[:1], 3, 30); got != nil {
		t.Errorf("one node has nobody to probe: %+v", got)
	}
}
