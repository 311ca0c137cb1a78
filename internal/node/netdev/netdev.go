// Package netdev is the node agent's only door to the kernel's network devices: one narrow
// interface, Interfaces, over rtnetlink.
//
// Everything the agent decides is computed from the plain Link and Route values this package
// returns, and everything it changes goes through the few methods of Interfaces. Handle
// implements it with a netlink handle bound to one network namespace, so the same code runs on
// the host and in a throwaway namespace in tests; package fake implements it in memory for
// suites that cannot touch the kernel.
package netdev

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// ErrLinkNotFound is wrapped by errors about a link that does not exist (any more).
var ErrLinkNotFound = errors.New("link not found")

// Interfaces reads and changes the network devices and routes of one network namespace.
type Interfaces interface {
	// Links returns every link of the namespace.
	Links() ([]Link, error)
	// LinkByName returns the named link. The error wraps ErrLinkNotFound when there is no
	// such link.
	LinkByName(name string) (Link, error)
	// SetMTU sets the MTU of the named link. The error wraps ErrLinkNotFound when there is
	// no such link.
	SetMTU(name string, mtu int) error
	// Addresses returns the named link's global unicast addresses (not link-local ones). The
	// error wraps ErrLinkNotFound when there is no such link.
	Addresses(name string) ([]netip.Addr, error)
	// DefaultRouteLinks returns, per IP family, the indexes of the links that carry a
	// default route of the main routing table (several for ECMP or multiple default routes).
	// A family without a default route is absent from the map.
	DefaultRouteLinks() (map[mtu.Family][]int, error)
	// Routes returns the unicast routes, of every table but the local one, that send
	// traffic through the link: its own routes and multipath routes with a next hop on it.
	Routes(linkIndex int) ([]Route, error)
	// SetRouteMTU changes the MTU metric of an existing route, like `ip route change ...
	// mtu N`; 0 removes the metric so the route uses the device MTU again. Every other
	// attribute of the route is kept. It does not create a route that has disappeared
	// (ErrRouteNotFound), and refuses a route it cannot change alone without harm
	// (ErrRouteNotChangeable), such as one of several routes with the same destination and
	// metric in a table: the kernel would change whichever comes first.
	SetRouteMTU(r Route, mtu int) error
	// WatchLinks streams link changes (new or changed links, and deletions) until ctx ends,
	// then closes the channel. The channel also closes early when the kernel subscription
	// fails, for instance after the socket overflowed and events were lost; a caller that
	// sees it close while ctx is still live should re-read Links and watch again.
	WatchLinks(ctx context.Context) (<-chan LinkUpdate, error)
}

// Link is a network device as the agent sees it.
type Link struct {
	Name  string
	Index int
	MTU   int
	// Up means administratively up with a working lower layer (IFF_UP and IFF_RUNNING):
	// the link can carry traffic.
	Up bool
	// Kind is the kernel's link kind: "veth", "bridge", "vxlan", "geneve", "ipip",
	// "wireguard", "tun", "tap"... "loopback" for lo, and "device" for a physical device or
	// any other link without a kind.
	Kind string
	// MasterIndex is the index of the bridge or bond the link is a port of; 0 when none.
	MasterIndex int
}

// The Kind of the loopback device and of devices without a kernel link kind (physical NICs).
const (
	KindLoopback = "loopback"
	KindDevice   = "device"
)

// LinkUpdate is one event of WatchLinks: the link as it is now, or as it was when deleted.
type LinkUpdate struct {
	Link
	// Deleted is true when the link has been removed.
	Deleted bool
}

// Route is one kernel route: its identity (ID) and the attributes worth showing. Routes read
// from a Handle also carry the kernel's full description of the route, so SetRouteMTU rewrites
// it with nothing changed but the MTU; for a Route built by hand, SetRouteMTU first looks up the
// kernel route with the same ID.
type Route struct {
	Family mtu.Family
	// Table is the routing table: MainTable (254) for most routes. A hand-built Route with
	// Table 0 means the main table.
	Table int
	// Dst is the destination; a prefix of length 0 is the default route.
	Dst netip.Prefix
	// Gateway is the next hop's address; invalid (the zero Addr) for a directly connected
	// route or a multipath route.
	Gateway netip.Addr
	// Source is the preferred source address; the zero Addr when unset.
	Source netip.Addr
	// LinkIndex is the device the route sends through; 0 for a multipath route, whose next
	// hops are in NextHopLinks.
	LinkIndex    int
	NextHopLinks []int
	Protocol     int
	Scope        int
	// Priority is the route's metric (`ip route ... metric N`).
	Priority int
	// Tos is the type-of-service selector; part of the route's identity in IPv4.
	Tos int
	// MTU is the route's MTU metric, 0 when it has none and uses the device's MTU.
	MTU int

	// kernel is the full route as dumped by netlink; nil for a hand-built Route.
	kernel *netlink.Route
	// unchangeable says why SetRouteMTU must not change this route; empty when it may.
	unchangeable string
}

// ID identifies the route among the routes of its namespace independently of its MTU: two
// Routes with the same ID are the same kernel route.
func (r Route) ID() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Family, r.Dst)
	if r.Gateway.IsValid() {
		fmt.Fprintf(&b, " via %s", r.Gateway)
	}
	if r.LinkIndex != 0 {
		fmt.Fprintf(&b, " dev %d", r.LinkIndex)
	}
	for _, nh := range r.NextHopLinks {
		fmt.Fprintf(&b, " nexthop dev %d", nh)
	}
	fmt.Fprintf(&b, " table %d metric %d", r.Table, r.Priority)
	if r.Tos != 0 {
		fmt.Fprintf(&b, " tos %d", r.Tos)
	}
	return b.String()
}

// String describes the route in the style of `ip route`, with its MTU metric if any.
func (r Route) String() string {
	if r.MTU == 0 {
		return r.ID()
	}
	return fmt.Sprintf("%s mtu %d", r.ID(), r.MTU)
}

// LinkIndexes returns the devices the route sends through: its link, or the links of its
// next hops.
func (r Route) LinkIndexes() []int {
	if len(r.NextHopLinks) > 0 {
		return r.NextHopLinks
	}
	return []int{r.LinkIndex}
}

// IsDefault reports whether the route is a default route.
func (r Route) IsDefault() bool { return r.Dst.IsValid() && r.Dst.Bits() == 0 }

// MainTable is the kernel's main routing table, where default routes normally live.
const MainTable = 254

// DefaultRouteLinksOf returns, per IP family, the indexes of the links that carry the
// main-table default routes among routes, each once.
func DefaultRouteLinksOf(routes []Route) map[mtu.Family][]int {
	out := map[mtu.Family][]int{}
	for _, r := range routes {
		if !r.IsDefault() || r.Table != MainTable {
			continue
		}
		for _, idx := range r.LinkIndexes() {
			if !slices.Contains(out[r.Family], idx) {
				out[r.Family] = append(out[r.Family], idx)
			}
		}
	}
	return out
}
