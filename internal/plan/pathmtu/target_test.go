package pathmtu

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestTargets(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, tt := range []struct {
		s    string
		want Target
		err  string
	}{
		{s: "192.168.100.11/9000", want: Target{Underlay: Layer{addrs("192.168.100.11"), 9000}}},
		{s: "fd00::1/1500", want: Target{Underlay: Layer{addrs("fd00::1"), 1500}}},
		{s: "192.168.100.11,fd00::1/9000 10.244.1.0,fd01::/8950", want: Target{
			Underlay: Layer{addrs("192.168.100.11", "fd00::1"), 9000},
			Overlay:  Layer{addrs("10.244.1.0", "fd01::"), 8950}}},
		{s: "fd00::1/9000 10.244.1.0/8950", want: Target{Underlay: Layer{addrs("fd00::1"), 9000}, Overlay: Layer{addrs("10.244.1.0"), 8950}}},
		{s: "192.168.100.11", err: "want addresses/mtu"},
		{s: "192.168.100.11/", err: "MTU must be a number"},
		{s: "192.168.100.11/67", err: "MTU must be a number"},
		{s: "192.168.100.11/65536", err: "MTU must be a number"},
		{s: "node-a/9000", err: "ParseAddr"},
		{s: "10.0.0.1,10.0.0.2/9000", err: "one address per IP family"},
		{s: "fd00::1,fd00::2/9000", err: "one address per IP family"},
		{s: "10.0.0.1,fd00::1,10.0.0.2/9000", err: "one address per IP family"},
		{s: "fe80::1%eth0/9000", err: "plain IPv4 or IPv6"},
		{s: "::ffff:10.0.0.1/9000", err: "plain IPv4 or IPv6"},
		{s: "10.0.0.1/9000 ", err: "overlay"},
		{s: "10.0.0.1/9000 10.244.0.0/x", err: "overlay"},
		{s: ",10.0.0.1/9000", err: "ParseAddr"},
	} {
		got, err := ParseTarget(tt.s)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseTarget(%q) = %v, %v; want an error with %q", tt.s, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", tt.s, got, err, tt.want)
			continue
		}
		if back := got.String(); back != tt.s {
			t.Errorf("ParseTarget(%q).String() = %q", tt.s, back)
		}
	}
}

func TestLayerOf(t *testing.T) {
	l := Layer{Addresses: []netip.Addr{netip.MustParseAddr("fd00::1"), netip.MustParseAddr("10.0.0.1")}}
	if a, ok := l.Of(true); !ok || a.String() != "10.0.0.1" {
		t.Errorf("Of(IPv4) = %s, %t", a, ok)
	}
	if a, ok := l.Of(false); !ok || a.String() != "fd00::1" {
		t.Errorf("Of(IPv6) = %s, %t", a, ok)
	}
	if _, ok := (Layer{}).Of(true); ok {
		t.Errorf("an empty layer has an IPv4 address")
	}
}

func FuzzParseTarget(f *testing.F) {
	f.Add("192.168.100.11/9000")
	f.Add("fd00::1/1500")
	f.Add("192.168.100.11,fd00::1/9000 10.244.1.0,fd01::/8950")
	f.Fuzz(func(t *testing.T, s string) {
		target, err := ParseTarget(s)
		if err != nil {
			return
		}
		if len(target.String()) > 180 {
			t.Errorf("%q: written as %d characters, more than the API allows", s, len(target.String()))
		}
		if again, err := ParseTarget(target.String()); err != nil || !reflect.DeepEqual(again, target) {
			t.Errorf("%q: %+v does not read back: %+v %v", s, target, again, err)
		}
	})
}

func TestPathsTo(t *testing.T) {
	target := func(s string) Target {
		t.Helper()
		tt, err := ParseTarget(s)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	path := func(overlay bool, peer string, expected int) Path {
		return Path{Overlay: overlay, Peer: netip.MustParseAddr(peer), Expected: expected}
	}
	for _, tt := range []struct {
		name       string
		self, peer string
		want       []Path
	}{
		{"single stack, no tunnel", "10.0.0.1/9000", "10.0.0.2/1500", []Path{path(false, "10.0.0.2", 1500)}},
		{"with tunnels, the smaller of each layer", "10.0.0.1/9000 10.244.1.0/8950", "10.0.0.2/9000 10.244.2.0/1450",
			[]Path{path(false, "10.0.0.2", 9000), path(true, "10.244.2.0", 1450)}},
		{"dual stack both", "10.0.0.1,fd00::1/9000 10.244.1.0,fd01:1::/8950", "fd00::2,10.0.0.2/9000 fd01:2::,10.244.2.0/8950",
			[]Path{path(false, "10.0.0.2", 9000), path(false, "fd00::2", 9000), path(true, "10.244.2.0", 8950), path(true, "fd01:2::", 8950)}},
		{"only the families both have", "10.0.0.1,fd00::1/9000 fd01:1::/8950", "fd00::2/9000 10.244.2.0/8950",
			[]Path{path(false, "fd00::2", 9000)}},
		{"a peer without a tunnel address: the underlay only", "10.0.0.1/9000 10.244.1.0/8950", "10.0.0.2/9000",
			[]Path{path(false, "10.0.0.2", 9000)}},
		{"nothing in common", "10.0.0.1/9000", "fd00::2/9000", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := target(tt.self).PathsTo(target(tt.peer)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PathsTo = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOnePerFamily(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, tt := range []struct{ in, want []netip.Addr }{
		{nil, nil},
		{addrs("10.0.0.1", "10.0.0.2"), addrs("10.0.0.1")},
		{addrs("fe80::1%eth0", "fd00::1", "10.0.0.1", "fd00::2"), addrs("fd00::1", "10.0.0.1")},
		{addrs("::ffff:10.0.0.1", "10.0.0.2"), addrs("10.0.0.2")},
	} {
		if got := OnePerFamily(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("OnePerFamily(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
