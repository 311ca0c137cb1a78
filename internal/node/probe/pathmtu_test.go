package probe_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/node/probe"
	"github.com/mtu-operator/mtu-operator/internal/plan/pathmtu"
)

// blackHoleTimeout is what each probe that vanishes costs a measurement.
const blackHoleTimeout = 200 * time.Millisecond

func measurePath(t *testing.T, from *nettest.Namespace, target string, expected, floor int, timeout time.Duration) (probe.PathMeasurement, time.Duration) {
	t.Helper()
	var m probe.PathMeasurement
	start := time.Now()
	err := netdev.InNamespace(from.NS, func() (err error) {
		m, err = probe.PathMTU(t.Context(), netip.MustParseAddr(target), expected, floor, timeout)
		return err
	})
	if err != nil {
		t.Fatalf("PathMTU to %s: %v", target, err)
	}
	return m, time.Since(start)
}

// TestPathMTUFindsASilentSwitchPort: two 9000-byte NICs joined by a switch whose port towards
// b carries 1500, the incident no NIC comparison sees. The switch (a bridge) drops larger
// frames and says nothing; the measurement bisects, each vanished probe costing its timeout.
func TestPathMTUFindsASilentSwitchPort(t *testing.T) {
	a, sw, b := nettest.NewNamespace(t), nettest.NewNamespace(t), nettest.NewNamespace(t)
	a.AddVeth(t, "eth0", "port-a", sw, 9000)
	b.AddVeth(t, "eth0", "port-b", sw, 9000)
	sw.AddLink(t, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0", MTU: 9000}})
	for _, port := range []string{"port-a", "port-b"} {
		if err := sw.NL.LinkSetMaster(sw.Link(t, port), sw.Link(t, "br0")); err != nil {
			t.Fatalf("attaching %s: %v", port, err)
		}
	}
	sw.SetMTU(t, "port-b", 1500)
	sw.SetUp(t, "br0", "port-a", "port-b")
	for ns, addrs := range map[*nettest.Namespace][]string{a: {"10.3.0.1/24", "fd03::1/64"}, b: {"10.3.0.2/24", "fd03::2/64"}} {
		for _, addr := range addrs {
			ns.AddAddr(t, "eth0", addr)
		}
		ns.SetUp(t, "eth0")
		ns.WaitRunning(t, "eth0")
	}
	sw.WaitRunning(t, "port-a", "port-b")
	if got, want := a.MTU(t, "eth0"), 9000; got != want {
		t.Fatalf("a's NIC at %d, want %d: the NICs must agree for the black hole to hide", got, want)
	}
	// Neighbor discovery first, with a packet every path carries.
	for _, target := range []string{"10.3.0.2", "fd03::2"} {
		if err := icmp(a, target, 1280, passTimeout).Probe(t.Context()); err != nil {
			t.Fatalf("1280 bytes to %s: %v", target, err)
		}
	}
	for _, target := range []string{"10.3.0.2", "fd03::2"} {
		m, took := measurePath(t, a, target, 9000, 1280, blackHoleTimeout)
		if m.MTU != 1500 || !m.Exact {
			t.Errorf("%s: measured %+v, want 1500 exactly", target, m)
		}
		if limit := pathmtu.MaxProbes(9000, 1280); m.Probes > limit {
			t.Errorf("%s: %d probes, want at most %d", target, m.Probes, limit)
		}
		t.Logf("%s: %d bytes in %d probes, %s", target, m.MTU, m.Probes, took.Round(time.Millisecond))
	}
}

// TestPathMTUBelievesARouterAndChecksIt: a router that cannot forward 9000 says so with the MTU
// it can: one probe more confirms it, with no timeout spent.
func TestPathMTUBelievesARouterAndChecksIt(t *testing.T) {
	a := behindARouter(t)
	for _, target := range []string{"10.2.0.2", "fd02::2"} {
		if err := icmp(a, target, 1280, passTimeout).Probe(t.Context()); err != nil {
			t.Fatalf("1280 bytes to %s: %v", target, err)
		}
		// A timeout long enough that spending one would show.
		m, took := measurePath(t, a, target, 9000, 1280, 3*time.Second)
		if m != (probe.PathMeasurement{MTU: 1500, Exact: true, Probes: 2}) {
			t.Errorf("%s: measured %+v, want 1500 exactly in 2 probes", target, m)
		}
		if took > 2*time.Second {
			t.Errorf("%s: took %s: the router's report should have spared every timeout", target, took)
		}
	}
}

// TestPathMTUOfAPeerThatIsGone: nothing answers; two probes, and no measurement.
func TestPathMTUOfAPeerThatIsGone(t *testing.T) {
	a, _ := pair(t, 9000, 9000)
	m, _ := measurePath(t, a, "10.0.0.9", 9000, 1280, blackHoleTimeout)
	if m != (probe.PathMeasurement{Probes: 2}) {
		t.Errorf("measured %+v, want nothing in 2 probes", m)
	}
}

func TestPathMTUCannotProbe(t *testing.T) {
	_, err := probe.PathMTU(context.Background(), netip.Addr{}, 9000, 1280, time.Second)
	if !errors.Is(err, probe.ErrCannotProbe) {
		t.Errorf("PathMTU without a target = %v, want ErrCannotProbe", err)
	}
}

// BenchmarkPathMTURound is one node's round of the sampled schedule on healthy paths: three
// peers, each measured at its expected size, which crosses at the first probe.
func BenchmarkPathMTURound(b *testing.B) {
	a, _ := pair(b, 9000, 9000)
	target := netip.MustParseAddr("10.0.0.2")
	err := netdev.InNamespace(a.NS, func() error {
		if err := probe.ICMPDF(target, 1280, passTimeout).Probe(b.Context()); err != nil {
			return err // neighbor discovery first
		}
		for b.Loop() {
			for range 3 {
				if m, err := probe.PathMTU(b.Context(), target, 9000, 1280, blackHoleTimeout); err != nil || m.MTU != 9000 {
					return fmt.Errorf("measured %+v: %w", m, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
