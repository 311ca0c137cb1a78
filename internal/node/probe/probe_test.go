package probe_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/node/probe"
)

func TestMain(m *testing.M) { os.Exit(nettest.Main(m)) }

func TestAllRunsInOrderAndStopsAtTheFirstFailure(t *testing.T) {
	var ran []string
	step := func(name string, err error) probe.Prober {
		return probe.Func(func(context.Context) error { ran = append(ran, name); return err })
	}
	boom := errors.New("api server unreachable")
	err := probe.All(step("a", nil), step("b", boom), step("c", nil)).Probe(t.Context())
	if !errors.Is(err, boom) {
		t.Errorf("All = %v, want the failure of b", err)
	}
	if !slices.Equal(ran, []string{"a", "b"}) {
		t.Errorf("ran %v, want a then b and not c", ran)
	}
	if err := probe.All().Probe(t.Context()); err != nil {
		t.Errorf("All() = %v, want nil", err)
	}
}

// pair joins namespaces a and b with a veth pair (eth0 on both sides) at the given MTUs:
// 10.0.0.1/24 and fd00::1/64 in a, 10.0.0.2/24 and fd00::2/64 in b.
func pair(t testing.TB, mtuA, mtuB int) (a, b *nettest.Namespace) {
	t.Helper()
	a, b = nettest.NewNamespace(t), nettest.NewNamespace(t)
	a.AddVeth(t, "eth0", "eth0", b, 1500)
	a.SetMTU(t, "eth0", mtuA)
	b.SetMTU(t, "eth0", mtuB)
	for ns, addrs := range map[*nettest.Namespace][]string{a: {"10.0.0.1/24", "fd00::1/64"}, b: {"10.0.0.2/24", "fd00::2/64"}} {
		for _, addr := range addrs {
			ns.AddAddr(t, "eth0", addr)
		}
		ns.SetUp(t, "eth0")
	}
	a.WaitRunning(t, "eth0")
	b.WaitRunning(t, "eth0")
	return a, b
}

// Probes expected to pass get a generous timeout: they end at the first reply, and the first
// reply over IPv6 can wait a second for neighbor discovery on links that just came up. Probes
// expected to fail get a short one, since they last until it.
const (
	passTimeout = 5 * time.Second
	failTimeout = time.Second
)

func icmp(ns *nettest.Namespace, target string, size int, timeout time.Duration) probe.Prober {
	return probe.InNamespace(ns.NS, probe.ICMPDF(netip.MustParseAddr(target), size, timeout))
}

func TestICMPDF(t *testing.T) {
	a, _ := pair(t, 9000, 1500)
	tests := []struct {
		name    string
		target  string
		size    int
		wantErr string
	}{
		{"IPv4 at the peer's MTU", "10.0.0.2", 1500, ""},
		{"IPv6 at the peer's MTU", "fd00::2", 1500, ""},
		{"IPv4 larger than the peer's MTU", "10.0.0.2", 9000, "ICMP echo of 9000 bytes to 10.0.0.2 without fragmentation: no reply within 1s"},
		// veth lets 4 bytes more than the MTU through, room for a VLAN tag.
		{"IPv6 larger than the peer's MTU", "fd00::2", 1600, "no reply within 1s"},
		{"IPv4 larger than the local device", "10.0.0.2", 9001, "the outgoing device's MTU is smaller"},
		{"IPv6 larger than the local device", "fd00::2", 9001, "the outgoing device's MTU is smaller"},
		{"smaller than its headers", "10.0.0.2", 27, "the size must be between 28"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := passTimeout
			if tt.wantErr != "" {
				timeout = failTimeout
			}
			err := icmp(a, tt.target, tt.size, timeout).Probe(t.Context())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Probe: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Probe = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// behindARouter builds a (9000) -- r -- b (1500) and returns a: a router r between a's network
// (10.1.0.0/24, fd01::/64) and b's (10.2.0.2, fd02::2), which cannot forward to b what b's link
// does not carry, and says so.
func behindARouter(t *testing.T) *nettest.Namespace {
	t.Helper()
	a, r, b := nettest.NewNamespace(t), nettest.NewNamespace(t), nettest.NewNamespace(t)
	a.AddVeth(t, "eth0", "eth0", r, 9000)
	r.AddVeth(t, "eth1", "eth0", b, 1500)
	for _, step := range []struct {
		ns    *nettest.Namespace
		link  string
		addrs []string
	}{
		{a, "eth0", []string{"10.1.0.1/24", "fd01::1/64"}},
		{r, "eth0", []string{"10.1.0.254/24", "fd01::254/64"}},
		{r, "eth1", []string{"10.2.0.254/24", "fd02::254/64"}},
		{b, "eth0", []string{"10.2.0.2/24", "fd02::2/64"}},
	} {
		for _, addr := range step.addrs {
			step.ns.AddAddr(t, step.link, addr)
		}
		step.ns.SetUp(t, step.link)
	}
	a.WaitRunning(t, "eth0")
	r.WaitRunning(t, "eth0", "eth1")
	b.WaitRunning(t, "eth0")
	for ns, gws := range map[*nettest.Namespace][]string{a: {"10.1.0.254", "fd01::254"}, b: {"10.2.0.254", "fd02::254"}} {
		for _, gw := range gws {
			ns.AddRoute(t, &netlink.Route{LinkIndex: ns.Link(t, "eth0").Attrs().Index, Gw: net.ParseIP(gw)})
		}
	}
	if err := netdev.InNamespace(r.NS, func() error {
		// /proc/sys/net belongs to the namespace of the thread that opens it.
		return errors.Join(
			os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644),
			os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0o644))
	}); err != nil {
		t.Fatalf("enabling forwarding in the router: %v", err)
	}
	return a
}

func TestICMPDFReportsTheRouterThatCannotForward(t *testing.T) {
	a := behindARouter(t)
	if err := icmp(a, "10.2.0.2", 1500, passTimeout).Probe(t.Context()); err != nil {
		t.Fatalf("1500 bytes through the router: %v", err)
	}
	if err := icmp(a, "fd02::2", 1500, passTimeout).Probe(t.Context()); err != nil {
		t.Fatalf("1500 bytes through the router over IPv6: %v", err)
	}
	start := time.Now()
	err := icmp(a, "10.2.0.2", 9000, failTimeout).Probe(t.Context())
	if err == nil || !strings.Contains(err.Error(), "10.1.0.254 reports fragmentation needed, next-hop MTU 1500") {
		t.Errorf("9000 bytes through the router = %v, want the router's fragmentation-needed report", err)
	}
	err = icmp(a, "fd02::2", 9000, failTimeout).Probe(t.Context())
	if err == nil || !strings.Contains(err.Error(), "fd01::254 reports packet too big, MTU 1500") {
		t.Errorf("9000 bytes through the router over IPv6 = %v, want the router's packet-too-big report", err)
	}
	if elapsed := time.Since(start); elapsed > 900*time.Millisecond {
		t.Errorf("the reports took %s: they should end the probes at once, not at the timeout", elapsed)
	}
}

func TestICMPDFMeasuresTheWireNotTheRouteMTU(t *testing.T) {
	a, _ := pair(t, 1500, 1500)
	// Pin the route to the peer's subnet below the probe's size, as routepin would.
	routes, err := a.NL.RouteList(a.Link(t, "eth0"), netlink.FAMILY_V4)
	if err != nil || len(routes) != 1 {
		t.Fatalf("routes of eth0: %v %v", routes, err)
	}
	routes[0].MTU = 1400
	if err := a.NL.RouteChange(&routes[0]); err != nil {
		t.Fatalf("pinning the route MTU: %v", err)
	}
	if err := icmp(a, "10.0.0.2", 1500, passTimeout).Probe(t.Context()); err != nil {
		t.Errorf("Probe over a route pinned to 1400 on a 1500 wire: %v", err)
	}
}

func TestTCP(t *testing.T) {
	a, b := pair(t, 1500, 1500)
	var ln net.Listener
	if err := netdev.InNamespace(b.NS, func() (err error) {
		ln, err = net.Listen("tcp", "10.0.0.2:0")
		return err
	}); err != nil {
		t.Fatalf("listening in b: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })

	if err := probe.InNamespace(a.NS, probe.TCP(ln.Addr().String(), time.Second)).Probe(t.Context()); err != nil {
		t.Errorf("TCP to a listening port: %v", err)
	}
	// A closed port answers with a reset: the host is reached, which is what the probe checks
	// (an API server restarting must not roll a node's change back).
	if err := probe.InNamespace(a.NS, probe.TCP("10.0.0.2:1", time.Second)).Probe(t.Context()); err != nil {
		t.Errorf("TCP to a closed port of a host that answers = %v, want a pass", err)
	}
	// Nobody answers for 10.0.0.3: no reset, no connection.
	err := probe.InNamespace(a.NS, probe.TCP("10.0.0.3:443", 300*time.Millisecond)).Probe(t.Context())
	if err == nil || !strings.Contains(err.Error(), "TCP connect to 10.0.0.3:443") {
		t.Errorf("TCP to a host that does not answer = %v, want a failure naming the address", err)
	}
	// From the host namespace the test network does not exist.
	if err := probe.TCP(ln.Addr().String(), 200*time.Millisecond).Probe(t.Context()); err == nil {
		t.Error("TCP from outside the namespace passed; InNamespace is not what made the other probes pass")
	}
}
