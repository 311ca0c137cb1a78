package netdev_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mtu-operator/mtu-operator/internal/mtu"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
)

func TestMain(m *testing.M) { os.Exit(nettest.Main(m)) }

// eventWait bounds how long a test waits for a kernel event.
const eventWait = 2 * time.Second

// newNamespace returns a fresh namespace and the netdev Handle under test on it.
func newNamespace(t *testing.T) (*nettest.Namespace, *netdev.Handle) {
	t.Helper()
	ns := nettest.NewNamespace(t)
	dev := ns.Handle(t)
	return ns, dev
}

func linkByName(t *testing.T, dev netdev.Interfaces, name string) netdev.Link {
	t.Helper()
	links, err := dev.Links()
	if err != nil {
		t.Fatalf("Links: %v", err)
	}
	i := slices.IndexFunc(links, func(l netdev.Link) bool { return l.Name == name })
	if i < 0 {
		t.Fatalf("Links has no %s: %+v", name, links)
	}
	return links[i]
}

func TestLinksReportKindMTUStateAndMaster(t *testing.T) {
	ns, dev := newNamespace(t)
	ns.AddVeth(t, "eth0", "eth0p", ns, 1500)
	ns.AddLink(t, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cni0"}})
	ns.AddVeth(t, "vethpod", "eth0pod", ns, 1450)
	eth0 := linkByName(t, dev, "eth0")
	ns.AddLink(t, &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: "flannel.1", MTU: 1450}, VxlanId: 1, VtepDevIndex: eth0.Index, Port: 8472,
	})
	if err := ns.NL.LinkSetMaster(ns.Link(t, "vethpod"), ns.Link(t, "cni0")); err != nil {
		t.Fatalf("attaching vethpod to cni0: %v", err)
	}
	ns.SetUp(t, "eth0", "eth0p")
	ns.WaitRunning(t, "eth0")
	// A tun device is created through /dev/net/tun, in the namespace of the calling thread.
	if err := netdev.InNamespace(ns.NS, func() error {
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "tun0"}, Mode: netlink.TUNTAP_MODE_TUN})
	}); err != nil {
		t.Fatalf("creating tun0: %v", err)
	}

	want := map[string]netdev.Link{
		"lo":        {Name: "lo", MTU: 65536, Kind: netdev.KindLoopback},
		"eth0":      {Name: "eth0", MTU: 1500, Up: true, Kind: "veth"},
		"cni0":      {Name: "cni0", MTU: 1450, Kind: "bridge"},
		"vethpod":   {Name: "vethpod", MTU: 1450, Kind: "veth", MasterIndex: linkByName(t, dev, "cni0").Index},
		"flannel.1": {Name: "flannel.1", MTU: 1450, Kind: "vxlan"},
		"tun0":      {Name: "tun0", MTU: 1500, Kind: "tun"},
	}
	links, err := dev.Links()
	if err != nil {
		t.Fatalf("Links: %v", err)
	}
	for _, got := range links {
		w, ok := want[got.Name]
		if !ok {
			continue
		}
		delete(want, got.Name)
		if got.Index == 0 {
			t.Errorf("%s has no index", got.Name)
		}
		got.Index = 0
		if got != w {
			t.Errorf("link %s:\n got %+v\nwant %+v", got.Name, got, w)
		}
	}
	for name := range want {
		t.Errorf("Links did not report %s", name)
	}
}

// TestAddresses: the addresses other nodes can reach, of both families, and none of the
// link-local ones the kernel adds by itself.
func TestAddresses(t *testing.T) {
	ns, dev := newNamespace(t)
	ns.AddVeth(t, "eth0", "eth0p", ns, 1500)
	ns.AddAddr(t, "eth0", "10.244.1.0/32")
	ns.AddAddr(t, "eth0", "fd01::1/64")
	ns.AddAddr(t, "eth0", "fe80::99/64")
	ns.SetUp(t, "eth0", "eth0p")
	ns.WaitRunning(t, "eth0")
	got, err := dev.Addresses("eth0")
	if err != nil {
		t.Fatalf("Addresses: %v", err)
	}
	slices.SortFunc(got, netip.Addr.Compare)
	if want := []netip.Addr{netip.MustParseAddr("10.244.1.0"), netip.MustParseAddr("fd01::1")}; !slices.Equal(got, want) {
		t.Errorf("Addresses(eth0) = %v, want %v", got, want)
	}
	if got, err := dev.Addresses("eth0p"); err != nil || len(got) != 0 {
		t.Errorf("Addresses of a link without any = %v, %v", got, err)
	}
	if _, err := dev.Addresses("flannel.1"); !errors.Is(err, netdev.ErrLinkNotFound) {
		t.Errorf("Addresses of a missing link = %v, want ErrLinkNotFound", err)
	}
}

func TestSetMTU(t *testing.T) {
	ns, dev := newNamespace(t)
	ns.AddVeth(t, "eth0", "eth0p", ns, 1500)
	eth0 := linkByName(t, dev, "eth0")
	ns.AddLink(t, &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: "flannel.1", MTU: 1450}, VxlanId: 1, VtepDevIndex: eth0.Index, Port: 8472,
	})

	if err := dev.SetMTU("eth0", 9000); err != nil {
		t.Fatalf("SetMTU: %v", err)
	}
	if got := ns.MTU(t, "eth0"); got != 9000 {
		t.Errorf("eth0 MTU = %d after SetMTU(9000)", got)
	}

	// The kernel keeps a VXLAN device 50 bytes below its parent.
	err := dev.SetMTU("flannel.1", 8960)
	if err == nil || !strings.Contains(err.Error(), "setting flannel.1 MTU to 8960: ") {
		t.Errorf("SetMTU(flannel.1, 8960) over a 9000 parent = %v, want an error naming the link and value", err)
	}

	err = dev.SetMTU("flannel.2", 1450)
	if !errors.Is(err, netdev.ErrLinkNotFound) || !strings.Contains(err.Error(), "flannel.2") {
		t.Errorf("SetMTU of a missing link = %v, want ErrLinkNotFound naming flannel.2", err)
	}

	// LinkByName reads one link as Links reports it.
	if l, err := dev.LinkByName("eth0"); err != nil || l != linkByName(t, dev, "eth0") {
		t.Errorf("LinkByName(eth0) = %+v, %v; want %+v as Links reports it", l, err, linkByName(t, dev, "eth0"))
	}
	if _, err := dev.LinkByName("flannel.2"); !errors.Is(err, netdev.ErrLinkNotFound) || !strings.Contains(err.Error(), "flannel.2") {
		t.Errorf("LinkByName of a missing link = %v, want ErrLinkNotFound naming flannel.2", err)
	}
}

// addRoutedLink creates a veth (peer in the same namespace), brings it up and gives it addresses.
func addRoutedLink(t *testing.T, ns *nettest.Namespace, name string, cidrs ...string) {
	t.Helper()
	ns.AddVeth(t, name, name+"p", ns, 1500)
	ns.SetUp(t, name, name+"p")
	// Running links have their IPv6 link-local routes: none appears later in the test.
	ns.WaitRunning(t, name, name+"p")
	for _, c := range cidrs {
		ns.AddAddr(t, name, c)
	}
}

func TestDefaultRouteLinks(t *testing.T) {
	ns, dev := newNamespace(t)
	addRoutedLink(t, ns, "eth0", "192.0.2.10/24")
	addRoutedLink(t, ns, "eth1", "2001:db8::10/64")
	addRoutedLink(t, ns, "eth2", "198.51.100.10/24")
	eth0, eth1, eth2 := linkByName(t, dev, "eth0"), linkByName(t, dev, "eth1"), linkByName(t, dev, "eth2")

	ns.AddRoute(t, &netlink.Route{LinkIndex: eth0.Index, Gw: net.ParseIP("192.0.2.1")})
	ns.AddRoute(t, &netlink.Route{LinkIndex: eth1.Index, Gw: net.ParseIP("2001:db8::1")})
	// A default route in another table is policy routing, not the node's default.
	ns.AddRoute(t, &netlink.Route{LinkIndex: eth2.Index, Gw: net.ParseIP("198.51.100.1"), Table: 100})

	got, err := dev.DefaultRouteLinks()
	if err != nil {
		t.Fatalf("DefaultRouteLinks: %v", err)
	}
	want := map[mtu.Family][]int{mtu.IPv4: {eth0.Index}, mtu.IPv6: {eth1.Index}}
	if len(got) != len(want) || !slices.Equal(got[mtu.IPv4], want[mtu.IPv4]) || !slices.Equal(got[mtu.IPv6], want[mtu.IPv6]) {
		t.Errorf("DefaultRouteLinks = %v, want %v", got, want)
	}
}

// kernelRoutes lists, with netlink directly, the routes of every table through a link.
func kernelRoutes(t *testing.T, nl *netlink.Handle, linkIndex int) []netlink.Route {
	t.Helper()
	routes, err := nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: linkIndex, Table: unix.RT_TABLE_UNSPEC},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("listing routes: %v", err)
	}
	return slices.DeleteFunc(routes, func(r netlink.Route) bool { return r.Table == unix.RT_TABLE_LOCAL || r.Type != unix.RTN_UNICAST })
}

func TestSetRouteMTUChangesOnlyTheMTU(t *testing.T) {
	ns, dev := newNamespace(t)
	addRoutedLink(t, ns, "eth0", "192.0.2.10/24", "2001:db8::10/64")
	eth0 := linkByName(t, dev, "eth0")
	ns.AddRoute(t, &netlink.Route{
		LinkIndex: eth0.Index, Dst: nettest.CIDR(t, "10.244.0.0/16"), Gw: net.ParseIP("192.0.2.1"),
		Src: net.ParseIP("192.0.2.10"), Priority: 100, Protocol: netlink.RouteProtocol(unix.RTPROT_STATIC),
		AdvMSS: 1400,
	})
	ns.AddRoute(t, &netlink.Route{LinkIndex: eth0.Index, Dst: nettest.CIDR(t, "10.96.0.0/12"), Table: 100, MTU: 1400})
	ns.AddRoute(t, &netlink.Route{LinkIndex: eth0.Index, Dst: nettest.CIDR(t, "fd00:10::/64"), Gw: net.ParseIP("2001:db8::1"), Priority: 50})

	before := kernelRoutes(t, ns.NL, eth0.Index)
	routes, err := dev.Routes(eth0.Index)
	if err != nil {
		t.Fatalf("Routes: %v", err)
	}
	if len(routes) != len(before) {
		t.Fatalf("Routes returned %d routes, the kernel has %d:\n%v\n%v", len(routes), len(before), routes, before)
	}
	var changeable []netdev.Route
	for _, r := range routes {
		err := dev.SetRouteMTU(r, 1280)
		if r.Dst == netip.MustParsePrefix("fe80::/64") {
			// eth0's peer is in the same namespace and has its own fe80::/64.
			if !errors.Is(err, netdev.ErrRouteNotChangeable) {
				t.Errorf("SetRouteMTU(%s) with the peer's fe80::/64 alongside = %v, want ErrRouteNotChangeable", r, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("SetRouteMTU(%s, 1280): %v", r, err)
		}
		changeable = append(changeable, r)
	}
	if len(changeable) != 5 {
		t.Errorf("changed %d routes, want 5 (2 static, 1 in table 100, 2 connected): %v", len(changeable), changeable)
	}
	for _, r := range kernelRoutes(t, ns.NL, eth0.Index) {
		if r.MTU != 1280 && !r.Dst.IP.IsLinkLocalUnicast() {
			t.Errorf("route %s has MTU %d after SetRouteMTU(1280)", r, r.MTU)
		}
	}
	for _, r := range changeable {
		if err := dev.SetRouteMTU(r, r.MTU); err != nil {
			t.Fatalf("SetRouteMTU(%s, %d): %v", r, r.MTU, err)
		}
	}
	after := kernelRoutes(t, ns.NL, eth0.Index)
	if !sameRoutes(before, after) {
		t.Errorf("routes changed by a pin and restore:\nbefore %v\nafter  %v", before, after)
	}

	// A hand-built Route addresses the same kernel route.
	byHand := netdev.Route{
		Family: mtu.IPv4, Table: 100, Dst: netip.MustParsePrefix("10.96.0.0/12"), LinkIndex: eth0.Index,
		Protocol: unix.RTPROT_BOOT, Scope: int(netlink.SCOPE_LINK),
	}
	if err := dev.SetRouteMTU(byHand, 0); err != nil {
		t.Fatalf("SetRouteMTU(hand-built, 0): %v", err)
	}
	for _, r := range kernelRoutes(t, ns.NL, eth0.Index) {
		if r.Table == 100 && r.MTU != 0 {
			t.Errorf("route %s still has MTU %d after SetRouteMTU(0)", r, r.MTU)
		}
	}

	gone := byHand
	gone.Dst = netip.MustParsePrefix("10.97.0.0/16")
	if err := dev.SetRouteMTU(gone, 1400); !errors.Is(err, netdev.ErrRouteNotFound) {
		t.Errorf("SetRouteMTU of a missing route = %v, want ErrRouteNotFound (and no route created)", err)
	}
}

// sameRoutes compares routes by everything netlink reports.
func sameRoutes(a, b []netlink.Route) bool {
	return slices.EqualFunc(a, b, func(x, y netlink.Route) bool {
		return x.String() == y.String() && x.MTU == y.MTU && x.AdvMSS == y.AdvMSS
	})
}

func TestWatchLinksSeesChangesFromOutside(t *testing.T) {
	ns, dev := newNamespace(t)
	ns.AddVeth(t, "eth0", "eth0p", ns, 1500)

	ctx, cancel := context.WithCancel(t.Context())
	updates, err := dev.WatchLinks(ctx)
	if err != nil {
		t.Fatalf("WatchLinks: %v", err)
	}
	// Another program changes the MTU.
	ns.SetMTU(t, "eth0", 9000)
	waitFor(t, updates, "eth0 at MTU 9000", func(u netdev.LinkUpdate) bool { return u.Name == "eth0" && u.MTU == 9000 && !u.Deleted })

	if err := ns.NL.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}}); err != nil {
		t.Fatalf("deleting eth0: %v", err)
	}
	waitFor(t, updates, "eth0 deleted", func(u netdev.LinkUpdate) bool { return u.Name == "eth0" && u.Deleted })

	cancel()
	deadline := time.After(eventWait)
	for {
		select {
		case _, ok := <-updates:
			if !ok {
				return // TestMain checks that no goroutine is left behind.
			}
		case <-deadline:
			t.Fatalf("the update channel is still open %s after its context ended", eventWait)
		}
	}
}

func waitFor(t *testing.T, updates <-chan netdev.LinkUpdate, what string, match func(netdev.LinkUpdate) bool) {
	t.Helper()
	deadline := time.After(eventWait)
	var seen []netdev.LinkUpdate
	for {
		select {
		case u, ok := <-updates:
			if !ok {
				t.Fatalf("the update channel closed while waiting for %s; seen %+v", what, seen)
			}
			if match(u) {
				return
			}
			seen = append(seen, u)
		case <-deadline:
			t.Fatalf("no update with %s within %s; seen %+v", what, eventWait, seen)
		}
	}
}

func TestInNamespaceRunsThereAndComesBack(t *testing.T) {
	ns := nettest.NewNamespace(t)
	home, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(ns.NS), &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("net:[%d]", st.Ino)
	var inside string
	if err := netdev.InNamespace(ns.NS, func() error {
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatalf("InNamespace: %v", err)
	}
	if inside != want {
		t.Errorf("fn ran in namespace %s, want %s (the caller is in %s)", inside, want, home)
	}
	if now, _ := os.Readlink("/proc/thread-self/ns/net"); now != home {
		t.Errorf("the caller's thread is in %s after InNamespace, want %s", now, home)
	}
	sentinel := errors.New("fn failed")
	if err := netdev.InNamespace(ns.NS, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("InNamespace returned %v, want fn's error", err)
	}
}
