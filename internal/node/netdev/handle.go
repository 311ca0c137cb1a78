package netdev

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// Errors about routes, for errors.Is.
var (
	// ErrRouteNotFound: the route does not exist (any more).
	ErrRouteNotFound = errors.New("route not found")
	// ErrRouteNotChangeable: the kernel cannot change this route's MTU alone without harm;
	// the error says why.
	ErrRouteNotChangeable = errors.New("route MTU cannot be changed safely")
)

// Handle implements Interfaces with rtnetlink in one network namespace. It is safe for
// concurrent use. Close it when done.
type Handle struct {
	nl *netlink.Handle
	// ns is the handle's own duplicate of the namespace, kept for WatchLinks, which opens a
	// socket of its own; none for the caller's own namespace, whose sockets need no setns
	// (and so no CAP_SYS_ADMIN).
	ns netns.NsHandle
}

var _ Interfaces = (*Handle)(nil)

// NewAt returns a Handle on the network namespace ns. The Handle keeps its own reference to
// the namespace: the caller may close ns afterwards.
func NewAt(ns netns.NsHandle) (*Handle, error) {
	dup, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicating network namespace handle %s: %w", ns, err)
	}
	own := netns.NsHandle(dup)
	h, err := netlink.NewHandleAt(own, unix.NETLINK_ROUTE)
	if err != nil {
		_ = own.Close()
		return nil, fmt.Errorf("opening a netlink socket in network namespace %s: %w", ns, err)
	}
	return &Handle{nl: h, ns: own}, nil
}

// New returns a Handle on the process's own network namespace (the host's, for the agent's
// DaemonSet). Its sockets are opened where the process is, without setns(2), which would need
// CAP_SYS_ADMIN even to enter the namespace it is already in: CAP_NET_ADMIN is enough.
func New() (*Handle, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket: %w", err)
	}
	return &Handle{nl: h, ns: netns.None()}, nil
}

// Close releases the netlink socket and the namespace reference. Watches started with
// WatchLinks end with their own context, not with Close.
func (h *Handle) Close() error {
	h.nl.Close()
	if !h.ns.IsOpen() {
		return nil
	}
	return h.ns.Close()
}

// dumpAttempts bounds the retries of a dump the kernel reports as interrupted (the table
// changed while it was being read).
const dumpAttempts = 5

// RetryInterrupted runs a netlink dump again, a few times, while the kernel reports it
// interrupted.
func RetryInterrupted(dump func() error) error {
	var err error
	for range dumpAttempts {
		if err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

// Links returns every link of the namespace.
func (h *Handle) Links() ([]Link, error) {
	var links []netlink.Link
	err := RetryInterrupted(func() (err error) {
		links, err = h.nl.LinkList()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	out := make([]Link, 0, len(links))
	for _, l := range links {
		out = append(out, linkFrom(l))
	}
	return out, nil
}

func linkFrom(l netlink.Link) Link {
	a := l.Attrs()
	kind := l.Type()
	switch {
	case a.Flags&net.FlagLoopback != 0:
		kind = KindLoopback
	case kind == "tuntap":
		kind = "tun"
		if t, ok := l.(*netlink.Tuntap); ok && t.Mode == netlink.TUNTAP_MODE_TAP {
			kind = "tap"
		}
	case kind == "":
		kind = KindDevice
	}
	return Link{
		Name:        a.Name,
		Index:       a.Index,
		MTU:         a.MTU,
		Up:          a.Flags&net.FlagUp != 0 && a.Flags&net.FlagRunning != 0,
		Kind:        kind,
		MasterIndex: a.MasterIndex,
	}
}

// LinkByName returns the named link.
func (h *Handle) LinkByName(name string) (Link, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return Link{}, fmt.Errorf("finding link %s: %w", name, LinkError(err))
	}
	return linkFrom(l), nil
}

// Addresses returns the named link's global unicast addresses.
func (h *Handle) Addresses(name string) ([]netip.Addr, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("finding link %s: %w", name, LinkError(err))
	}
	var addrs []netlink.Addr
	if err := RetryInterrupted(func() (err error) {
		addrs, err = h.nl.AddrList(l, netlink.FAMILY_ALL)
		return err
	}); err != nil {
		return nil, fmt.Errorf("listing the addresses of %s: %w", name, LinkError(err))
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if ip := addrFrom(a.IP); ip.IsGlobalUnicast() {
			out = append(out, ip)
		}
	}
	return out, nil
}

// SetMTU sets the MTU of the named link.
func (h *Handle) SetMTU(name string, mtu int) error {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("setting %s MTU to %d: %w", name, mtu, LinkError(err))
	}
	if err := h.nl.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("setting %s MTU to %d: %w", name, mtu, LinkError(err))
	}
	return nil
}

// LinkError wraps a netlink error that means "no such link" with ErrLinkNotFound.
func LinkError(err error) error {
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) || errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("%w: %w", ErrLinkNotFound, err)
	}
	return err
}

// DefaultRouteLinks returns, per IP family, the links carrying a main-table default route.
func (h *Handle) DefaultRouteLinks() (map[mtu.Family][]int, error) {
	routes, err := h.listRoutes(netlink.FAMILY_ALL, MainTable)
	if err != nil {
		return nil, err
	}
	return DefaultRouteLinksOf(routes), nil
}

// Routes returns the unicast routes through a link, in every table but the local one.
func (h *Handle) Routes(linkIndex int) ([]Route, error) {
	routes, err := h.listRoutes(netlink.FAMILY_ALL, unix.RT_TABLE_UNSPEC)
	if err != nil {
		return nil, err
	}
	var out []Route
	for _, r := range routes {
		if r.Table != unix.RT_TABLE_LOCAL && slices.Contains(r.LinkIndexes(), linkIndex) {
			out = append(out, r)
		}
	}
	return out, nil
}

// listRoutes dumps the unicast IPv4 and IPv6 routes of a table (RT_TABLE_UNSPEC: all).
func (h *Handle) listRoutes(family, table int) ([]Route, error) {
	var routes []netlink.Route
	err := RetryInterrupted(func() (err error) {
		routes, err = h.nl.RouteListFiltered(family, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	out := make([]Route, 0, len(routes))
	for i := range routes {
		if r, ok := routeFrom(&routes[i]); ok {
			out = append(out, r)
		}
	}
	markShared(out)
	return out, nil
}

// markShared marks the routes the kernel cannot change one at a time: when several routes of a
// table have the same destination, TOS and metric (the same subnet on two links, fe80::/64 on
// every IPv6 link), a change request replaces the first of them, whichever link it is on.
func markShared(routes []Route) {
	type key struct {
		family        mtu.Family
		table         int
		dst           netip.Prefix
		tos, priority int
	}
	count := map[key]int{}
	keyOf := func(r Route) key { return key{r.Family, r.Table, r.Dst, r.Tos, r.Priority} }
	for _, r := range routes {
		count[keyOf(r)]++
	}
	for i := range routes {
		if count[keyOf(routes[i])] > 1 {
			routes[i].unchangeable = "another route of the table has the same destination and metric, " +
				"and the kernel would change that one instead"
		}
	}
}

// routeFrom converts a dumped unicast IPv4 or IPv6 route; other routes are skipped.
func routeFrom(kr *netlink.Route) (Route, bool) {
	if kr.Type != unix.RTN_UNICAST {
		return Route{}, false
	}
	r := Route{
		Table:     kr.Table,
		LinkIndex: kr.LinkIndex,
		Protocol:  int(kr.Protocol),
		Scope:     int(kr.Scope),
		Priority:  kr.Priority,
		Tos:       kr.Tos,
		MTU:       kr.MTU,
		Gateway:   addrFrom(kr.Gw),
		Source:    addrFrom(kr.Src),
		kernel:    kr,
	}
	switch kr.Family {
	case netlink.FAMILY_V4:
		r.Family = mtu.IPv4
	case netlink.FAMILY_V6:
		r.Family = mtu.IPv6
		if kr.Protocol == unix.RTPROT_RA {
			r.unchangeable = "it was learned from a router advertisement, and a changed copy would lose its " +
				"expiry and preference and no longer be updated by the kernel"
		}
	default:
		return Route{}, false
	}
	if kr.Dst != nil {
		bits, _ := kr.Dst.Mask.Size()
		r.Dst = netip.PrefixFrom(addrFrom(kr.Dst.IP), bits)
	}
	for _, nh := range kr.MultiPath {
		r.NextHopLinks = append(r.NextHopLinks, nh.LinkIndex)
	}
	return r, true
}

func addrFrom(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// SetRouteMTU changes the MTU metric of an existing route; 0 removes it.
//
// The route is sent back as netlink read it, with only the MTU changed. netlink does not read
// every attribute the kernel has: a route using a nexthop object (nhid), a source-specific IPv6
// route (from ...), or an IPv6 route's preference and expiry would not survive the change. The
// routes CNIs install for pod networks have none of these; IPv6 routes from router
// advertisements, which have them, are refused.
func (h *Handle) SetRouteMTU(r Route, mtu int) error {
	if r.kernel == nil {
		if r.Table == 0 {
			r.Table = MainTable
		}
		// Find the kernel's own description of the route, to change nothing else.
		current, err := h.listRoutes(netlink.FAMILY_ALL, r.Table)
		if err != nil {
			return fmt.Errorf("setting MTU of route %s to %d: %w", r.ID(), mtu, err)
		}
		i := slices.IndexFunc(current, func(c Route) bool { return c.ID() == r.ID() })
		if i < 0 {
			return fmt.Errorf("setting MTU of route %s to %d: %w", r.ID(), mtu, ErrRouteNotFound)
		}
		r = current[i]
	}
	if r.unchangeable != "" {
		return fmt.Errorf("setting MTU of route %s to %d: %w: %s", r.ID(), mtu, ErrRouteNotChangeable, r.unchangeable)
	}
	kr := *r.kernel
	kr.MTU = mtu
	if mtu == 0 {
		kr.MTULock = false
	}
	// Change, not replace: a route that disappeared meanwhile must stay gone.
	if err := h.nl.RouteChange(&kr); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			err = fmt.Errorf("%w: %w", ErrRouteNotFound, err)
		}
		return fmt.Errorf("setting MTU of route %s to %d: %w", r.ID(), mtu, err)
	}
	return nil
}

// watchBuffer absorbs bursts of link events (a CNI creating many pod veths) while the
// consumer is busy.
const watchBuffer = 64

// WatchLinks streams link changes until ctx ends. Errors the kernel subscription reports are
// logged with the logger of ctx (logr.FromContext).
func (h *Handle) WatchLinks(ctx context.Context) (<-chan LinkUpdate, error) {
	log := logr.FromContextOrDiscard(ctx).WithName("netdev-watch")
	updates := make(chan netlink.LinkUpdate, watchBuffer)
	// Closing done makes netlink close the subscription socket, which ends its reader
	// goroutine and closes updates.
	done := make(chan struct{})
	opts := netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case <-done: // the socket was closed on purpose
			default:
				log.Error(err, "link subscription")
			}
		},
	}
	if h.ns.IsOpen() {
		ns := h.ns
		opts.Namespace = &ns
	}
	err := netlink.LinkSubscribeWithOptions(updates, done, opts)
	if err != nil {
		close(done)
		return nil, fmt.Errorf("subscribing to link changes: %w", err)
	}
	out := make(chan LinkUpdate)
	go func() {
		defer close(out)
		defer func() {
			close(done)
			// netlink's reader blocks on sending to updates: drain it so it can see the
			// closed socket and exit.
			for range updates {
			}
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-updates:
				if !ok {
					log.Info("link subscription ended; re-read links and watch again")
					return
				}
				lu := LinkUpdate{Link: linkFrom(u.Link), Deleted: u.Header.Type == unix.RTM_DELLINK}
				select {
				case out <- lu:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
