// Package routepin pins the MTU of the routes through chosen devices, like `ip route change
// ... mtu 1450`, and later restores each route's exact former MTU metric, including "none".
//
// While the nodes of a cluster disagree on the MTU (some already raised, some not yet), a node
// with the larger MTU would send packets its peers drop. Pinning the routes to the smaller
// value keeps traffic flowing until every node agrees; then Release hands the routes back to
// the device MTU or whatever metric they had.
package routepin

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
)

// Original is what Pin remembers about one route so Release can restore it. It is plain data:
// a node agent can store it (in its per-node status, say) and hand it to New after a restart
// so routes pinned before the restart are still released.
type Original struct {
	// Route is the route's netdev.Route.ID.
	Route string `json:"route"`
	// LinkIndex is a device the route goes through, to find it again.
	LinkIndex int `json:"linkIndex"`
	// MTU is the route's MTU metric before it was pinned; 0 means it had none.
	MTU int `json:"mtu"`
	// Pinned is the MTU Pin set.
	Pinned int `json:"pinned"`
}

// Pinner pins and releases route MTUs in one network namespace. It is safe for concurrent use.
type Pinner struct {
	links netdev.Interfaces
	// record, when set, saves the remembered routes where they outlive the process, before any
	// route is pinned and after routes are released.
	record func([]Original) error

	mu         sync.Mutex
	remembered map[string]Original
}

// New returns a Pinner. remembered are the Originals of routes pinned by an earlier Pinner, as
// returned by its Remembered.
func New(links netdev.Interfaces, remembered ...Original) *Pinner {
	return NewRecorded(links, nil, remembered...)
}

// NewRecorded returns a Pinner that hands every change of what it remembers to record: before
// it pins a route it has not pinned yet (if record fails, it pins nothing), and after it
// releases routes. A process that records, and passes the record to NewRecorded when it starts
// again, can still restore every route it pinned.
func NewRecorded(links netdev.Interfaces, record func([]Original) error, remembered ...Original) *Pinner {
	p := &Pinner{links: links, record: record, remembered: map[string]Original{}}
	for _, o := range remembered {
		p.remembered[o.Route] = o
	}
	return p
}

// Pin sets the MTU metric of every route through the named devices to mtu, remembering each
// route's former metric the first time it pins it. It is idempotent: pinning again changes
// only routes that are not at mtu (new routes, or routes someone changed), and a later Pin with
// another value keeps the first-remembered metric. IPv6 link-local routes are left alone. A
// device that does not exist (netdev.ErrLinkNotFound) or a route the kernel cannot change alone
// (netdev.ErrRouteNotChangeable) is reported after everything else is pinned.
func (p *Pinner) Pin(devices []string, mtu int) error {
	if mtu <= 0 {
		return fmt.Errorf("pinning routes: MTU %d is not positive", mtu)
	}
	p.mu.Lock()
	defer p.mu.Unlock()

	// First every route to pin and its original, recorded; then the kernel.
	type pin struct {
		route    netdev.Route
		original Original
	}
	var pins []pin
	var originals []Original
	found, errs := p.resolve(devices)
	for _, dev := range found {
		idx := dev.Index
		routes, err := p.links.Routes(idx)
		if err != nil {
			errs = append(errs, fmt.Errorf("pinning routes via %s: %w", dev.Name, err))
			continue
		}
		for _, r := range routes {
			if r.Dst.Addr().IsLinkLocalUnicast() {
				// fe80::/64 exists on every IPv6 link and its traffic never leaves the
				// link: nothing to protect, and the kernel cannot change one of them alone.
				continue
			}
			o, known := p.remembered[r.ID()]
			if !known {
				o = Original{Route: r.ID(), LinkIndex: idx, MTU: r.MTU}
			}
			o.Pinned = mtu
			pins = append(pins, pin{route: r, original: o})
			originals = append(originals, o)
		}
	}
	if err := p.saveWith(originals); err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, x := range pins {
		if x.route.MTU != mtu {
			if err := p.links.SetRouteMTU(x.route, mtu); err != nil {
				if !errors.Is(err, netdev.ErrRouteNotFound) {
					errs = append(errs, err)
				}
				continue
			}
		}
		p.remembered[x.original.Route] = x.original
	}
	return errors.Join(errs...)
}

// saveWith records what is remembered together with the originals about to be pinned, unless
// all of them are remembered already as they are.
func (p *Pinner) saveWith(originals []Original) error {
	if p.record == nil {
		return nil
	}
	all := maps.Clone(p.remembered)
	changed := false
	for _, o := range originals {
		if have, ok := all[o.Route]; !ok || have != o {
			all[o.Route], changed = o, true
		}
	}
	if !changed {
		return nil
	}
	if err := p.record(sorted(all)); err != nil {
		return fmt.Errorf("recording the routes to pin before pinning them: %w", err)
	}
	return nil
}

func sorted(m map[string]Original) []Original {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b Original) int { return strings.Compare(a.Route, b.Route) })
	return out
}

// resolve returns the links of the named devices and an error for each missing one.
func (p *Pinner) resolve(devices []string) ([]netdev.Link, []error) {
	links, err := p.links.Links()
	if err != nil {
		return nil, []error{fmt.Errorf("pinning routes: %w", err)}
	}
	var found []netdev.Link
	var errs []error
	for _, name := range devices {
		j := slices.IndexFunc(links, func(l netdev.Link) bool { return l.Name == name })
		if j < 0 {
			errs = append(errs, fmt.Errorf("pinning routes via %s: %w", name, netdev.ErrLinkNotFound))
			continue
		}
		found = append(found, links[j])
	}
	return found, errs
}

// Release restores the former MTU metric of every pinned route and forgets it. A route that
// is gone is forgotten; a route whose MTU is no longer the pinned value was changed by someone
// else since, and is left as it is and forgotten. A route that cannot be restored is kept in
// memory for the next Release. Releasing with nothing pinned does nothing.
func (p *Pinner) Release() error {
	p.mu.Lock()
	defer p.mu.Unlock()

	if len(p.remembered) == 0 {
		return nil
	}
	byLink := map[int][]Original{}
	for _, o := range p.remembered {
		byLink[o.LinkIndex] = append(byLink[o.LinkIndex], o)
	}
	var errs []error
	for idx, originals := range byLink {
		routes, err := p.links.Routes(idx)
		if err != nil {
			errs = append(errs, fmt.Errorf("releasing pinned routes via link %d: %w", idx, err))
			continue
		}
		for _, o := range originals {
			i := slices.IndexFunc(routes, func(r netdev.Route) bool { return r.ID() == o.Route })
			if i < 0 || routes[i].MTU != o.Pinned {
				delete(p.remembered, o.Route)
				continue
			}
			if err := p.links.SetRouteMTU(routes[i], o.MTU); err != nil && !errors.Is(err, netdev.ErrRouteNotFound) {
				errs = append(errs, err)
				continue
			}
			delete(p.remembered, o.Route)
		}
	}
	if p.record != nil {
		if err := p.record(sorted(p.remembered)); err != nil {
			// The record still lists released routes: releasing them again later finds
			// them at their own MTU and forgets them.
			errs = append(errs, fmt.Errorf("recording the released routes: %w", err))
		}
	}
	return errors.Join(errs...)
}

// PinnedMTU is the MTU the Pinner holds routes at now; 0 when it holds none.
func (p *Pinner) PinnedMTU() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pinned := 0
	for _, o := range p.remembered {
		pinned = max(pinned, o.Pinned)
	}
	return pinned
}

// Remembered returns the routes pinned and not yet released, sorted by route.
func (p *Pinner) Remembered() []Original {
	p.mu.Lock()
	defer p.mu.Unlock()
	return sorted(p.remembered)
}
