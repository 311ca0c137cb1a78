package txn_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/node/probe"
	"github.com/mtu-operator/mtu-operator/internal/node/txn"
)

// The tests below run against the kernel, each in namespaces of its own.

// stack builds a node's links in ns: underlay eth0 (1500), VXLAN flannel.1 on it (1450),
// bridge cni0 (1450) with the pod veth vethpod (1450) as a port.
func stack(t *testing.T, ns *nettest.Namespace) {
	t.Helper()
	ns.AddVeth(t, "eth0", "eth0peer", ns, 1500)
	ns.AddLink(t, &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: "flannel.1", MTU: 1450},
		VxlanId:   1, VtepDevIndex: ns.Link(t, "eth0").Attrs().Index, Port: 8472,
	})
	ns.AddLink(t, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cni0", MTU: 1450}})
	ns.AddVeth(t, "vethpod", "podeth0", ns, 1450)
	if err := ns.NL.LinkSetMaster(ns.Link(t, "vethpod"), ns.Link(t, "cni0")); err != nil {
		t.Fatalf("attaching vethpod to cni0: %v", err)
	}
}

// appliedOrder watches links while run runs, and returns the order in which the links reached
// their target MTU, as the kernel announced it.
func appliedOrder(t *testing.T, dev netdev.Interfaces, targets map[string]int, run func()) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	updates, err := dev.WatchLinks(ctx)
	if err != nil {
		t.Fatalf("WatchLinks: %v", err)
	}
	run()
	var order []string
	deadline := time.After(2 * time.Second)
	for len(order) < len(targets) {
		select {
		case u, ok := <-updates:
			if !ok {
				t.Fatal("the watch ended early")
			}
			if want, ok := targets[u.Name]; ok && u.MTU == want && !slices.Contains(order, u.Name) {
				order = append(order, u.Name)
			}
		case <-deadline:
			t.Fatalf("only %v reached their target MTU within 2s", order)
		}
	}
	return order
}

func TestOrderObservedOnRealLinks(t *testing.T) {
	ns := nettest.NewNamespace(t)
	dev := ns.Handle(t)
	stack(t, ns)

	grow := []txn.Change{
		{Link: "vethpod", From: 1450, To: 8950, Role: txn.Pod},
		{Link: "cni0", From: 1450, To: 8950, Role: txn.Bridge},
		{Link: "flannel.1", From: 1450, To: 8950, Role: txn.Tunnel},
		{Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay},
	}
	var res txn.Result
	order := appliedOrder(t, dev, map[string]int{"eth0": 9000, "flannel.1": 8950, "cni0": 8950, "vethpod": 8950}, func() {
		res = txn.Transaction{Links: dev}.Run(t.Context(), grow)
	})
	if res.Outcome != txn.Committed {
		t.Fatalf("growing: %s: %s", res.Outcome, res.Reason)
	}
	if want := []string{"eth0", "flannel.1", "cni0", "vethpod"}; !slices.Equal(order, want) {
		t.Errorf("growing, the kernel saw %v, want %v", order, want)
	}

	shrink := []txn.Change{
		{Link: "eth0", From: 9000, To: 1500, Role: txn.Underlay},
		{Link: "flannel.1", From: 8950, To: 1450, Role: txn.Tunnel},
		{Link: "cni0", From: 8950, To: 1450, Role: txn.Bridge},
		{Link: "vethpod", From: 8950, To: 1450, Role: txn.Pod},
	}
	order = appliedOrder(t, dev, map[string]int{"eth0": 1500, "flannel.1": 1450, "cni0": 1450, "vethpod": 1450}, func() {
		res = txn.Transaction{Links: dev}.Run(t.Context(), shrink)
	})
	if res.Outcome != txn.Committed {
		t.Fatalf("shrinking: %s: %s", res.Outcome, res.Reason)
	}
	if want := []string{"vethpod", "cni0", "flannel.1", "eth0"}; !slices.Equal(order, want) {
		t.Errorf("shrinking, the kernel saw %v, want %v", order, want)
	}
}

func TestKernelRefusalMidwayRollsBack(t *testing.T) {
	ns := nettest.NewNamespace(t)
	dev := ns.Handle(t)
	stack(t, ns)

	// The kernel refuses a VXLAN device more than 50 bytes below its parent's MTU.
	res := txn.Transaction{Links: dev}.Run(t.Context(), []txn.Change{
		{Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay},
		{Link: "flannel.1", From: 1450, To: 8960, Role: txn.Tunnel},
	})
	t.Logf("%s: %s", res.Outcome, res.Reason)
	if res.Outcome != txn.RolledBack || !strings.Contains(res.Reason, "setting flannel.1 MTU to 8960") {
		t.Fatalf("Result = %+v, want RolledBack naming flannel.1", res)
	}
	if got := ns.MTU(t, "eth0"); got != 1500 {
		t.Errorf("eth0 MTU = %d after rollback, want 1500", got)
	}
}

// pair joins two namespaces with a veth pair, eth0 on both sides, 10.0.0.1/24 and
// fd00::1/64 in a, 10.0.0.2/24 and fd00::2/64 in b, at MTU 1500, running.
func pair(t *testing.T) (a, b *nettest.Namespace) {
	t.Helper()
	a, b = nettest.NewNamespace(t), nettest.NewNamespace(t)
	a.AddVeth(t, "eth0", "eth0", b, 1500)
	a.AddAddr(t, "eth0", "10.0.0.1/24")
	a.AddAddr(t, "eth0", "fd00::1/64")
	b.AddAddr(t, "eth0", "10.0.0.2/24")
	b.AddAddr(t, "eth0", "fd00::2/64")
	a.SetUp(t, "eth0")
	b.SetUp(t, "eth0")
	a.WaitRunning(t, "eth0")
	b.WaitRunning(t, "eth0")
	return a, b
}

func TestFailingProbeRollsBackOnRealLinks(t *testing.T) {
	a, b := pair(t)
	dev := a.Handle(t)

	// b stays at 1500: a 9000-byte packet from a cannot reach it.
	jumboToB := probe.InNamespace(a.NS, probe.ICMPDF(netip.MustParseAddr("10.0.0.2"), 9000, time.Second))
	res := txn.Transaction{Links: dev, Probe: jumboToB, ProbeTimeout: 3 * time.Second}.Run(t.Context(),
		[]txn.Change{{Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay}})
	t.Logf("%s: %s", res.Outcome, res.Reason)

	if res.Outcome != txn.RolledBack {
		t.Fatalf("Outcome = %s (%s), want RolledBack", res.Outcome, res.Reason)
	}
	if !strings.Contains(res.Reason, "no reply within") {
		t.Errorf("Reason %q does not say the jumbo echo went unanswered", res.Reason)
	}
	if got := a.MTU(t, "eth0"); got != 1500 {
		t.Errorf("eth0 MTU in a = %d after rollback, want 1500", got)
	}
	if got := b.MTU(t, "eth0"); got != 1500 {
		t.Errorf("eth0 MTU in b = %d, want it untouched at 1500", got)
	}
}

func TestPassingProbeCommitsOnRealLinks(t *testing.T) {
	a, b := pair(t)
	dev := a.Handle(t)
	b.SetMTU(t, "eth0", 9000) // the peer is already raised

	// Generous timeouts: a passing probe ends at the first reply, which over IPv6 may wait a
	// second for neighbor discovery on links that just came up.
	jumboToB := probe.InNamespace(a.NS, probe.All(
		probe.ICMPDF(netip.MustParseAddr("10.0.0.2"), 9000, 5*time.Second),
		probe.ICMPDF(netip.MustParseAddr("fd00::2"), 9000, 5*time.Second),
	))
	res := txn.Transaction{Links: dev, Probe: jumboToB, ProbeTimeout: 15 * time.Second}.Run(t.Context(),
		[]txn.Change{{Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay}})
	t.Logf("%s: %s", res.Outcome, res.Reason)

	if res.Outcome != txn.Committed {
		t.Fatalf("Outcome = %s (%s), want Committed", res.Outcome, res.Reason)
	}
	if got := a.MTU(t, "eth0"); got != 9000 {
		t.Errorf("eth0 MTU in a = %d, want 9000", got)
	}
}
