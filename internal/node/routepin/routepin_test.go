package routepin_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mtu-operator/mtu-operator/internal/mtu"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev/fake"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/node/routepin"
)

func TestMain(m *testing.M) { os.Exit(nettest.Main(m)) }

// fakeNode has routes via flannel.1 (one without an MTU metric, one with 1400), via eth0, and
// an IPv6 link-local route.
func fakeNode() (*fake.Netdev, map[string]netdev.Route) {
	f := fake.New(
		netdev.Link{Name: "eth0", Index: 2, MTU: 1500, Up: true},
		netdev.Link{Name: "flannel.1", Index: 3, MTU: 1450, Up: true, Kind: "vxlan"},
	)
	routes := map[string]netdev.Route{
		"pods-b":  {Table: netdev.MainTable, Family: mtu.IPv4, Dst: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("10.244.1.0"), LinkIndex: 3},
		"pods-c":  {Table: netdev.MainTable, Family: mtu.IPv4, Dst: netip.MustParsePrefix("10.244.2.0/24"), Gateway: netip.MustParseAddr("10.244.2.0"), LinkIndex: 3, MTU: 1400},
		"ll":      {Table: netdev.MainTable, Family: mtu.IPv6, Dst: netip.MustParsePrefix("fe80::/64"), LinkIndex: 3, Priority: 256},
		"default": {Table: netdev.MainTable, Family: mtu.IPv4, Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("192.0.2.1"), LinkIndex: 2},
	}
	for _, r := range routes {
		f.AddRoute(r)
	}
	return f, routes
}

func routeMTUs(f *fake.Netdev) map[string]int {
	out := map[string]int{}
	for _, r := range f.AllRoutes() {
		out[r.Dst.String()] = r.MTU
	}
	return out
}

func setRouteMTUCalls(f *fake.Netdev) int {
	n := 0
	for _, c := range f.Calls() {
		if c.Method == fake.MethodSetRouteMTU {
			n++
		}
	}
	return n
}

func TestPinAndRelease(t *testing.T) {
	f, _ := fakeNode()
	original := routeMTUs(f)
	p := routepin.New(f)

	if err := p.Pin([]string{"flannel.1"}, 1300); err != nil {
		t.Fatalf("Pin: %v", err)
	}
	want := map[string]int{"10.244.1.0/24": 1300, "10.244.2.0/24": 1300, "fe80::/64": 0, "0.0.0.0/0": 0}
	if got := routeMTUs(f); !reflect.DeepEqual(got, want) {
		t.Errorf("after Pin: %v, want %v (link-local and other devices untouched)", got, want)
	}
	if got := len(p.Remembered()); got != 2 {
		t.Errorf("Remembered %d routes, want 2: %v", got, p.Remembered())
	}

	f.ResetCalls()
	if err := p.Pin([]string{"flannel.1"}, 1300); err != nil {
		t.Fatalf("second Pin: %v", err)
	}
	if n := setRouteMTUCalls(f); n != 0 {
		t.Errorf("pinning again changed %d routes, want none", n)
	}

	// A lower value later keeps the first-remembered originals.
	if err := p.Pin([]string{"flannel.1"}, 1200); err != nil {
		t.Fatalf("Pin 1200: %v", err)
	}
	if err := p.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if got := routeMTUs(f); !reflect.DeepEqual(got, original) {
		t.Errorf("after Release: %v, want the originals %v", got, original)
	}
	if got := p.Remembered(); len(got) != 0 {
		t.Errorf("Remembered after Release = %v", got)
	}

	f.ResetCalls()
	if err := p.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	if n := setRouteMTUCalls(f); n != 0 {
		t.Errorf("releasing again changed %d routes, want none", n)
	}
}

func TestReleaseLeavesRoutesOthersChangedOrRemoved(t *testing.T) {
	f, routes := fakeNode()
	p := routepin.New(f)
	if err := p.Pin([]string{"flannel.1", "eth0"}, 1300); err != nil {
		t.Fatalf("Pin: %v", err)
	}
	// flannel rewrites one route with its own MTU, and another node leaves the cluster.
	changed := routes["pods-c"]
	changed.MTU = 1350
	f.AddRoute(changed)
	f.RemoveRoute(routes["pods-b"].ID())

	p = routepin.New(f, p.Remembered()...) // the agent restarted, with the memory it stored
	if err := p.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	want := map[string]int{"10.244.2.0/24": 1350, "fe80::/64": 0, "0.0.0.0/0": 0}
	if got := routeMTUs(f); !reflect.DeepEqual(got, want) {
		t.Errorf("after Release: %v, want %v", got, want)
	}
	if got := p.Remembered(); len(got) != 0 {
		t.Errorf("Remembered after Release = %v", got)
	}
}

func TestPinReportsMissingDevicesAndFailures(t *testing.T) {
	f, routes := fakeNode()
	f.FailCalls(fake.Call{Method: fake.MethodSetRouteMTU, Route: routes["pods-c"].ID()}, errors.New("device busy"))
	p := routepin.New(f)
	err := p.Pin([]string{"flannel.1", "vxlan.calico"}, 1300)
	if !errors.Is(err, netdev.ErrLinkNotFound) {
		t.Errorf("Pin = %v, want ErrLinkNotFound for vxlan.calico", err)
	}
	if err == nil || !strings.Contains(err.Error(), "device busy") || !strings.Contains(err.Error(), "vxlan.calico") {
		t.Errorf("Pin = %v, want both failures reported", err)
	}
	// The route that could be pinned is pinned and remembered; the failed one is not.
	if got := p.Remembered(); len(got) != 1 || got[0].Route != routes["pods-b"].ID() {
		t.Errorf("Remembered = %v, want only pods-b", got)
	}
}

func TestPinRejectsANonPositiveMTU(t *testing.T) {
	f, _ := fakeNode()
	if err := routepin.New(f).Pin([]string{"flannel.1"}, 0); err == nil {
		t.Error("Pin(0) succeeded")
	}
}

// TestPinAndReleaseOnRealRoutes pins the routes of a real namespace and checks that Release
// gives back exactly what was there, attribute for attribute.
func TestPinAndReleaseOnRealRoutes(t *testing.T) {
	ns := nettest.NewNamespace(t)
	// A veth named flannel.1 stands in for the VXLAN device: this test is about routes.
	ns.AddVeth(t, "flannel.1", "peer", ns, 1450)
	ns.AddVeth(t, "eth0", "eth0peer", ns, 1500)
	ns.AddAddr(t, "flannel.1", "10.244.0.0/32")
	ns.AddAddr(t, "eth0", "192.0.2.10/24")
	ns.AddAddr(t, "eth0", "2001:db8::10/64")
	ns.SetUp(t, "flannel.1", "peer", "eth0", "eth0peer")
	// Running links have their IPv6 link-local routes: none appears between the snapshots.
	ns.WaitRunning(t, "flannel.1", "peer", "eth0", "eth0peer")
	flannel, eth0 := ns.Link(t, "flannel.1").Attrs().Index, ns.Link(t, "eth0").Attrs().Index
	for _, r := range []*netlink.Route{
		{LinkIndex: flannel, Dst: nettest.CIDR(t, "10.244.1.0/24"), Gw: net.ParseIP("10.244.1.0"), Flags: int(netlink.FLAG_ONLINK)},
		{LinkIndex: flannel, Dst: nettest.CIDR(t, "10.244.2.0/24"), Gw: net.ParseIP("10.244.2.0"), Flags: int(netlink.FLAG_ONLINK), MTU: 1400},
		{LinkIndex: eth0, Gw: net.ParseIP("192.0.2.1"), Protocol: unix.RTPROT_DHCP, Priority: 100},
		{LinkIndex: eth0, Dst: nettest.CIDR(t, "2001:db8:1::/48"), Gw: net.ParseIP("2001:db8::1"), Protocol: unix.RTPROT_STATIC},
	} {
		ns.AddRoute(t, r)
	}
	dev := ns.Handle(t)

	before := allRoutes(t, ns)
	p := routepin.New(dev)
	// fe80::/64 on eth0 has twins on the other links: Pin leaves link-local routes alone.
	if err := p.Pin([]string{"flannel.1", "eth0"}, 1300); err != nil {
		t.Fatalf("Pin: %v", err)
	}
	pinned := 0
	for _, r := range allRoutes(t, ns) {
		via := (r.LinkIndex == flannel || r.LinkIndex == eth0) && r.Table != unix.RT_TABLE_LOCAL
		switch {
		case via && !r.Dst.IP.IsLinkLocalUnicast() && r.MTU != 1300:
			t.Errorf("route %s has MTU %d, want it pinned to 1300", r, r.MTU)
		case via && !r.Dst.IP.IsLinkLocalUnicast():
			pinned++
		}
	}
	// flannel's 2 routes; eth0's default, connected IPv4 and IPv6 subnets and the IPv6 static route.
	if pinned != 6 {
		t.Errorf("%d routes pinned, want 6", pinned)
	}
	if err := p.Pin([]string{"flannel.1", "eth0"}, 1300); err != nil {
		t.Fatalf("second Pin: %v", err)
	}
	if err := p.Release(); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if after := allRoutes(t, ns); !reflect.DeepEqual(describe(before), describe(after)) {
		t.Errorf("routes after Release differ:\nbefore %v\nafter  %v", describe(before), describe(after))
	}
}

func allRoutes(t *testing.T, ns *nettest.Namespace) []netlink.Route {
	t.Helper()
	routes, err := ns.NL.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("listing routes: %v", err)
	}
	return routes
}

// describe renders routes with the attributes a change could lose.
func describe(routes []netlink.Route) []string {
	var out []string
	for _, r := range routes {
		out = append(out, fmt.Sprintf("%s proto %s scope %s metric %d mtu %d type %d flags %d advmss %d",
			r, r.Protocol, r.Scope, r.Priority, r.MTU, r.Type, r.Flags, r.AdvMSS))
	}
	slices.Sort(out)
	return out
}

func TestPinsAreRecordedBeforeTheKernelAndSurviveARestart(t *testing.T) {
	f, _ := fakeNode()
	original := routeMTUs(f)
	var saved [][]routepin.Original
	record := func(o []routepin.Original) error {
		if n := setRouteMTUCalls(f); len(saved) == 0 && n > 0 {
			t.Errorf("the first record came after %d route changes", n)
		}
		saved = append(saved, o)
		return nil
	}
	p := routepin.NewRecorded(f, record)
	if err := p.Pin([]string{"flannel.1"}, 1450); err != nil {
		t.Fatal(err)
	}
	if len(saved) != 1 || len(saved[0]) != 2 || saved[0][0].Pinned != 1450 {
		t.Fatalf("records %v, want one with both flannel.1 routes", saved)
	}
	if err := p.Pin([]string{"flannel.1"}, 1450); err != nil || len(saved) != 1 {
		t.Errorf("pinning again recorded again (%d records, %v): nothing new to record", len(saved), err)
	}

	// The process dies; a new one starts from the record and releases.
	restarted := routepin.NewRecorded(f, record, saved[len(saved)-1]...)
	if err := restarted.Release(); err != nil {
		t.Fatal(err)
	}
	if got := routeMTUs(f); !reflect.DeepEqual(got, original) {
		t.Errorf("after a restart and Release: %v, want the originals %v (1400 kept as 1400, none as none)", got, original)
	}
	if last := saved[len(saved)-1]; len(last) != 0 {
		t.Errorf("after Release the record still holds %v", last)
	}
}

func TestNothingIsPinnedWhenTheRecordFails(t *testing.T) {
	f, _ := fakeNode()
	original := routeMTUs(f)
	p := routepin.NewRecorded(f, func([]routepin.Original) error { return errors.New("read-only file system") })
	err := p.Pin([]string{"flannel.1"}, 1300)
	if err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Errorf("Pin with a failing record: %v, want its error", err)
	}
	if got := routeMTUs(f); !reflect.DeepEqual(got, original) || len(p.Remembered()) != 0 {
		t.Errorf("routes %v, remembered %v; want nothing pinned", got, p.Remembered())
	}
}
