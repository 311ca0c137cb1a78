package underlay_test

import (
	"net"
	"os"
	"reflect"
	"regexp"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/node/underlay"
)

func TestMain(m *testing.M) { os.Exit(nettest.Main(m)) }

// TestDetectOnRealLinks finds the underlay of a namespace from what netdev reads.
func TestDetectOnRealLinks(t *testing.T) {
	ns, peers := nettest.NewNamespace(t), nettest.NewNamespace(t)
	ns.AddVeth(t, "eth0", "eth0", peers, 9000)
	ns.AddVeth(t, "eth1", "eth1", peers, 1500)
	ns.AddAddr(t, "eth0", "192.0.2.10/24")
	ns.AddAddr(t, "eth1", "198.51.100.10/24")
	ns.SetUp(t, "lo", "eth0", "eth1")
	peers.SetUp(t, "eth0", "eth1")
	ns.WaitRunning(t, "eth0", "eth1")
	defaultRoute := &netlink.Route{LinkIndex: ns.Link(t, "eth0").Attrs().Index, Gw: net.ParseIP("192.0.2.1")}
	ns.AddRoute(t, defaultRoute)
	dev := ns.Handle(t)
	detect := func() underlay.Underlay {
		t.Helper()
		links, err := dev.Links()
		if err != nil {
			t.Fatal(err)
		}
		defaults, err := dev.DefaultRouteLinks()
		if err != nil {
			t.Fatal(err)
		}
		u, err := underlay.Detect(links, defaults, regexp.MustCompile(`^(eth|lo)`))
		if err != nil {
			t.Fatalf("Detect: %v", err)
		}
		return u
	}
	eth0, eth1 := ns.Link(t, "eth0").Attrs().Index, ns.Link(t, "eth1").Attrs().Index

	want := underlay.Underlay{MTU: 9000, Interfaces: []underlay.Interface{{Name: "eth0", Index: eth0, MTU: 9000, DefaultRoute: true}}}
	if got := detect(); !reflect.DeepEqual(got, want) {
		t.Errorf("with a default route via eth0: %+v, want %+v", got, want)
	}

	if err := ns.NL.RouteDel(defaultRoute); err != nil {
		t.Fatalf("deleting the default route: %v", err)
	}
	want = underlay.Underlay{MTU: 1500, Interfaces: []underlay.Interface{
		{Name: "eth0", Index: eth0, MTU: 9000},
		{Name: "eth1", Index: eth1, MTU: 1500},
	}}
	if got := detect(); !reflect.DeepEqual(got, want) {
		t.Errorf("without a default route: %+v, want %+v", got, want)
	}
}
