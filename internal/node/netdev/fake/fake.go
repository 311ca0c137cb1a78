// Package fake is an in-memory netdev.Interfaces for tests that cannot touch the kernel, such
// as the node agent's envtest suites. It records every call, can be told to fail chosen calls,
// and streams link changes to watchers like the kernel does.
package fake

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/mtu-operator/mtu-operator/internal/mtu"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
)

// The method names a Call records.
const (
	MethodLinks             = "Links"
	MethodSetMTU            = "SetMTU"
	MethodAddresses         = "Addresses"
	MethodLinkByName        = "LinkByName"
	MethodDefaultRouteLinks = "DefaultRouteLinks"
	MethodRoutes            = "Routes"
	MethodSetRouteMTU       = "SetRouteMTU"
	MethodWatchLinks        = "WatchLinks"
)

// Call is one call made to the fake. Only the fields the method takes are set.
type Call struct {
	Method string
	// Link is the link name of SetMTU, LinkByName and Addresses.
	Link string
	// LinkIndex is the argument of Routes.
	LinkIndex int
	// Route is the ID of the route given to SetRouteMTU.
	Route string
	// MTU is the value given to SetMTU or SetRouteMTU.
	MTU int
}

func (c Call) String() string {
	switch c.Method {
	case MethodSetMTU:
		return fmt.Sprintf("SetMTU %s %d", c.Link, c.MTU)
	case MethodLinkByName, MethodAddresses:
		return c.Method + " " + c.Link
	case MethodRoutes:
		return fmt.Sprintf("Routes %d", c.LinkIndex)
	case MethodSetRouteMTU:
		return fmt.Sprintf("SetRouteMTU %s %d", c.Route, c.MTU)
	default:
		return c.Method
	}
}

// matches reports whether c matches the pattern p: every non-zero field of p is equal in c.
func (c Call) matches(p Call) bool {
	return (p.Method == "" || p.Method == c.Method) &&
		(p.Link == "" || p.Link == c.Link) &&
		(p.LinkIndex == 0 || p.LinkIndex == c.LinkIndex) &&
		(p.Route == "" || p.Route == c.Route) &&
		(p.MTU == 0 || p.MTU == c.MTU)
}

type failure struct {
	match Call
	err   error
}

// Netdev is an in-memory set of links and routes. The zero value is not usable: call New.
// It is safe for concurrent use.
type Netdev struct {
	mu       sync.Mutex
	links    []netdev.Link
	routes   []netdev.Route
	addrs    map[string][]netip.Addr
	calls    []Call
	failures []failure
	watchers map[*watcher]struct{}
}

var _ netdev.Interfaces = (*Netdev)(nil)

// New returns a fake holding the given links. A link with Index 0 gets the next free index.
func New(links ...netdev.Link) *Netdev {
	f := &Netdev{watchers: map[*watcher]struct{}{}}
	for _, l := range links {
		f.PutLink(l)
	}
	return f
}

// PutLink adds a link, or replaces the link of the same name, as another program on the node
// would (it is not recorded as a call), and tells the watchers.
func (f *Netdev) PutLink(l netdev.Link) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := f.indexOf(l.Name); i >= 0 {
		if l.Index == 0 {
			l.Index = f.links[i].Index
		}
		f.links[i] = l
	} else {
		if l.Index == 0 {
			l.Index = f.nextIndex()
		}
		f.links = append(f.links, l)
	}
	f.notify(netdev.LinkUpdate{Link: l})
}

// RemoveLink deletes a link and the routes through it, as the kernel would, and tells the
// watchers. It does nothing when there is no such link.
func (f *Netdev) RemoveLink(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.indexOf(name)
	if i < 0 {
		return
	}
	l := f.links[i]
	f.links = slices.Delete(f.links, i, i+1)
	delete(f.addrs, name)
	f.routes = slices.DeleteFunc(f.routes, func(r netdev.Route) bool {
		return r.LinkIndex == l.Index || slices.Contains(r.NextHopLinks, l.Index)
	})
	f.notify(netdev.LinkUpdate{Link: l, Deleted: true})
}

// Link returns the named link as it is now.
func (f *Netdev) Link(name string) (netdev.Link, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := f.indexOf(name); i >= 0 {
		return f.links[i], true
	}
	return netdev.Link{}, false
}

// AddRoute adds a route, or replaces the route with the same ID (not recorded as a call). A
// Table of 0 means the main table.
func (f *Netdev) AddRoute(r netdev.Route) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Table == 0 {
		r.Table = netdev.MainTable
	}
	if i := f.routeIndex(r.ID()); i >= 0 {
		f.routes[i] = r
		return
	}
	f.routes = append(f.routes, r)
}

// RemoveRoute deletes the route with the given ID (not recorded as a call).
func (f *Netdev) RemoveRoute(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := f.routeIndex(id); i >= 0 {
		f.routes = slices.Delete(f.routes, i, i+1)
	}
}

// AllRoutes returns every route as it is now.
func (f *Netdev) AllRoutes() []netdev.Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.routes)
}

// Calls returns the calls made so far, in order.
func (f *Netdev) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// ResetCalls forgets the calls made so far.
func (f *Netdev) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// FailCalls makes every later call matching the pattern return err, without effect. A pattern
// matches a call when each of its non-zero fields equals the call's:
// Call{Method: MethodSetMTU, Link: "cni0", MTU: 9000} fails raising cni0 to 9000 but not
// restoring it. The failing calls are still recorded.
func (f *Netdev) FailCalls(pattern Call, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, failure{match: pattern, err: err})
}

// ClearFailures removes every failure FailCalls set up.
func (f *Netdev) ClearFailures() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = nil
}

// record records a call and returns the error injected for it, if any. Callers hold f.mu.
func (f *Netdev) record(c Call) error {
	f.calls = append(f.calls, c)
	for _, fl := range f.failures {
		if c.matches(fl.match) {
			return fl.err
		}
	}
	return nil
}

// Links returns every link.
func (f *Netdev) Links() ([]netdev.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Method: MethodLinks}); err != nil {
		return nil, err
	}
	return slices.Clone(f.links), nil
}

// LinkByName returns the named link.
func (f *Netdev) LinkByName(name string) (netdev.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Method: MethodLinkByName, Link: name}); err != nil {
		return netdev.Link{}, err
	}
	i := f.indexOf(name)
	if i < 0 {
		return netdev.Link{}, fmt.Errorf("finding link %s: %w", name, netdev.ErrLinkNotFound)
	}
	return f.links[i], nil
}

// SetAddresses gives a link its addresses, as another program on the node would.
func (f *Netdev) SetAddresses(name string, addrs ...netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addrs == nil {
		f.addrs = map[string][]netip.Addr{}
	}
	f.addrs[name] = addrs
}

// Addresses returns a link's addresses.
func (f *Netdev) Addresses(name string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Method: MethodAddresses, Link: name}); err != nil {
		return nil, err
	}
	if f.indexOf(name) < 0 {
		return nil, fmt.Errorf("finding link %s: %w", name, netdev.ErrLinkNotFound)
	}
	return slices.Clone(f.addrs[name]), nil
}

// SetMTU sets the MTU of a link and tells the watchers.
func (f *Netdev) SetMTU(name string, mtu int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Method: MethodSetMTU, Link: name, MTU: mtu}); err != nil {
		return err
	}
	i := f.indexOf(name)
	if i < 0 {
		return fmt.Errorf("setting %s MTU to %d: %w", name, mtu, netdev.ErrLinkNotFound)
	}
	if mtu < minMTU || mtu > maxMTU {
		return fmt.Errorf("setting %s MTU to %d: invalid argument", name, mtu)
	}
	f.links[i].MTU = mtu
	f.notify(netdev.LinkUpdate{Link: f.links[i]})
	return nil
}

// The MTU range the fake accepts, as the kernel does for an Ethernet device.
const (
	minMTU = 68
	maxMTU = 65535
)

// DefaultRouteLinks returns the links of the main-table default routes.
func (f *Netdev) DefaultRouteLinks() (map[mtu.Family][]int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Method: MethodDefaultRouteLinks}); err != nil {
		return nil, err
	}
	return netdev.DefaultRouteLinksOf(f.routes), nil
}

// Routes returns the routes through a link.
func (f *Netdev) Routes(linkIndex int) ([]netdev.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Method: MethodRoutes, LinkIndex: linkIndex}); err != nil {
		return nil, err
	}
	var out []netdev.Route
	for _, r := range f.routes {
		if slices.Contains(r.LinkIndexes(), linkIndex) {
			out = append(out, r)
		}
	}
	return out, nil
}

// SetRouteMTU sets the MTU metric of the route with r's ID.
func (f *Netdev) SetRouteMTU(r netdev.Route, mtu int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(Call{Method: MethodSetRouteMTU, Route: r.ID(), MTU: mtu}); err != nil {
		return err
	}
	i := f.routeIndex(r.ID())
	if i < 0 {
		return fmt.Errorf("setting MTU of route %s to %d: %w", r.ID(), mtu, netdev.ErrRouteNotFound)
	}
	f.routes[i].MTU = mtu
	return nil
}

// WatchLinks streams every later PutLink, RemoveLink and SetMTU until ctx ends. Updates queue
// without bound, so a slow reader never blocks the fake.
func (f *Netdev) WatchLinks(ctx context.Context) (<-chan netdev.LinkUpdate, error) {
	f.mu.Lock()
	if err := f.record(Call{Method: MethodWatchLinks}); err != nil {
		f.mu.Unlock()
		return nil, err
	}
	w := &watcher{wake: make(chan struct{}, 1)}
	f.watchers[w] = struct{}{}
	f.mu.Unlock()

	out := make(chan netdev.LinkUpdate)
	go func() {
		defer close(out)
		defer func() {
			f.mu.Lock()
			delete(f.watchers, w)
			f.mu.Unlock()
		}()
		for {
			if u, ok := w.pop(); ok {
				select {
				case out <- u:
				case <-ctx.Done():
					return
				}
				continue
			}
			select {
			case <-w.wake:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// notify queues an update for every watcher. Callers hold f.mu.
func (f *Netdev) notify(u netdev.LinkUpdate) {
	for w := range f.watchers {
		w.push(u)
	}
}

type watcher struct {
	mu    sync.Mutex
	queue []netdev.LinkUpdate
	wake  chan struct{}
}

func (w *watcher) push(u netdev.LinkUpdate) {
	w.mu.Lock()
	w.queue = append(w.queue, u)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) pop() (netdev.LinkUpdate, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return netdev.LinkUpdate{}, false
	}
	u := w.queue[0]
	w.queue = w.queue[1:]
	return u, true
}

func (f *Netdev) indexOf(name string) int {
	return slices.IndexFunc(f.links, func(l netdev.Link) bool { return l.Name == name })
}

func (f *Netdev) routeIndex(id string) int {
	return slices.IndexFunc(f.routes, func(r netdev.Route) bool { return r.ID() == id })
}

func (f *Netdev) nextIndex() int {
	next := 1
	for _, l := range f.links {
		next = max(next, l.Index+1)
	}
	return next
}
