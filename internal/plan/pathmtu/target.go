package pathmtu

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Target is a node as the probing schedule lists it: where each layer is probed, and how large
// a packet its side of that layer carries.
type Target struct {
	// Underlay is the node itself: its addresses and its NIC's MTU.
	Underlay Layer
	// Overlay is its pod network device (the tunnel's, or the gateway's); no addresses when
	// it has none.
	Overlay Layer
}

// Layer is where one layer of a node is probed: at most one address per IP family, and the MTU
// of the device they are on.
type Layer struct {
	Addresses []netip.Addr
	MTU       int
}

// String writes the target as the schedule lists it: "addresses/mtu", then, with an overlay,
// a space and its "addresses/mtu"; addresses are joined by commas.
func (t Target) String() string {
	s := t.Underlay.String()
	if len(t.Overlay.Addresses) > 0 {
		s += " " + t.Overlay.String()
	}
	return s
}

func (l Layer) String() string {
	parts := make([]string, len(l.Addresses))
	for i, a := range l.Addresses {
		parts[i] = a.String()
	}
	return strings.Join(parts, ",") + "/" + strconv.Itoa(l.MTU)
}

// Of is the layer's address of one IP family (IPv4 when v4), if it has one.
func (l Layer) Of(v4 bool) (netip.Addr, bool) {
	for _, a := range l.Addresses {
		if a.Is4() == v4 {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// OnePerFamily is the first plain address of each IP family among addrs, in their order: at
// most one IPv4 and one IPv6 address, as a Layer holds them.
func OnePerFamily(addrs []netip.Addr) []netip.Addr {
	var l Layer
	for _, a := range addrs {
		if _, taken := l.Of(a.Is4()); plain(a) && !taken {
			l.Addresses = append(l.Addresses, a)
		}
	}
	return l.Addresses
}

// plain: an address a node can be probed at, without a zone and not IPv4 mapped into IPv6.
func plain(a netip.Addr) bool { return a.IsValid() && a.Zone() == "" && !a.Is4In6() }

// ParseTarget reads a node of the probing schedule.
func ParseTarget(s string) (Target, error) {
	underlay, overlay, hasOverlay := strings.Cut(s, " ")
	var t Target
	var err error
	if t.Underlay, err = parseLayer(underlay); err != nil {
		return Target{}, fmt.Errorf("probe target %q: %w", s, err)
	}
	if hasOverlay {
		if t.Overlay, err = parseLayer(overlay); err != nil {
			return Target{}, fmt.Errorf("probe target %q, overlay: %w", s, err)
		}
	}
	return t, nil
}

func parseLayer(s string) (Layer, error) {
	list, mtu, ok := strings.Cut(s, "/")
	if !ok {
		return Layer{}, errors.New("want addresses/mtu")
	}
	var l Layer
	for part := range strings.SplitSeq(list, ",") {
		a, err := netip.ParseAddr(part)
		if err != nil {
			return Layer{}, err
		}
		if !plain(a) {
			return Layer{}, fmt.Errorf("address %s: want a plain IPv4 or IPv6 address", a)
		}
		if _, taken := l.Of(a.Is4()); taken {
			return Layer{}, errors.New("want at most one address per IP family")
		}
		l.Addresses = append(l.Addresses, a)
	}
	m, err := strconv.Atoi(mtu)
	if err != nil || m < 68 || m > 65535 {
		return Layer{}, errors.New("the MTU must be a number from 68 to 65535")
	}
	l.MTU = m
	return l, nil
}

// Path is a path a node probes to a peer: on the underlay or through the tunnel (Overlay), to
// the peer's address there, which must carry Expected bytes.
type Path struct {
	Overlay  bool
	Peer     netip.Addr
	Expected int
}

// PathsTo are the paths from the node t to peer: on each layer both have, for each IP family
// both have an address of there, the smaller of their MTUs. The underlay comes first, IPv4
// before IPv6.
func (t Target) PathsTo(peer Target) []Path {
	var out []Path
	for _, layer := range []struct {
		overlay    bool
		self, peer Layer
	}{{false, t.Underlay, peer.Underlay}, {true, t.Overlay, peer.Overlay}} {
		for _, v4 := range []bool{true, false} {
			_, mine := layer.self.Of(v4)
			theirs, ok := layer.peer.Of(v4)
			if mine && ok {
				out = append(out, Path{Overlay: layer.overlay, Peer: theirs, Expected: min(layer.self.MTU, layer.peer.MTU)})
			}
		}
	}
	return out
}
