package mtu

import (
	"errors"
	"fmt"
	"testing"
)

var (
	v4   = []Family{IPv4}
	v6   = []Family{IPv6}
	dual = []Family{IPv4, IPv6}
)

// TestCompute covers every encapsulation × {IPv4, IPv6, dual-stack} × {no encryption, IPsec
// where it applies}. The overhead column is written as its header sum.
func TestCompute(t *testing.T) {
	tests := []struct {
		encap      Encapsulation
		encryption Encryption
		families   []Family
		// tunnelV4 and tunnelV6 are the overheads of each family's tunnel (0: no tunnel).
		tunnelV4, tunnelV6 int
		// overhead is what the pod interface gives up: the larger tunnel overhead.
		overhead int
	}{
		// VXLAN: outer IP + UDP 8 + VXLAN 8 + inner Ethernet 14.
		{VXLAN, NoEncryption, v4, 20 + 8 + 8 + 14, 0, 50},
		{VXLAN, NoEncryption, v6, 0, 40 + 8 + 8 + 14, 70},
		{VXLAN, NoEncryption, dual, 20 + 8 + 8 + 14, 40 + 8 + 8 + 14, 70},
		// IPsec adds ESP 38 (SPI 4 + seq 4 + IV 8 + ICV 16 + trailer 2 + padding 4).
		{VXLAN, IPsec, v4, 20 + 8 + 8 + 14 + 38, 0, 88},
		{VXLAN, IPsec, v6, 0, 40 + 8 + 8 + 14 + 38, 108},
		{VXLAN, IPsec, dual, 20 + 8 + 8 + 14 + 38, 40 + 8 + 8 + 14 + 38, 108},
		// Geneve without options: outer IP + UDP 8 + Geneve 8 + inner Ethernet 14.
		{Geneve, NoEncryption, v4, 20 + 8 + 8 + 14, 0, 50},
		{Geneve, NoEncryption, v6, 0, 40 + 8 + 8 + 14, 70},
		{Geneve, NoEncryption, dual, 20 + 8 + 8 + 14, 40 + 8 + 8 + 14, 70},
		{Geneve, IPsec, v4, 20 + 8 + 8 + 14 + 38, 0, 88},
		{Geneve, IPsec, v6, 0, 40 + 8 + 8 + 14 + 38, 108},
		{Geneve, IPsec, dual, 20 + 8 + 8 + 14 + 38, 40 + 8 + 8 + 14 + 38, 108},
		// GRE as OVS builds it: outer IP + GRE 4 + key 4 + inner Ethernet 14.
		{GRE, NoEncryption, v4, 20 + 4 + 4 + 14, 0, 42},
		{GRE, NoEncryption, v6, 0, 40 + 4 + 4 + 14, 62},
		{GRE, NoEncryption, dual, 20 + 4 + 4 + 14, 40 + 4 + 4 + 14, 62},
		{GRE, IPsec, v4, 20 + 4 + 4 + 14 + 38, 0, 80},
		{GRE, IPsec, v6, 0, 40 + 4 + 4 + 14 + 38, 100},
		{GRE, IPsec, dual, 20 + 4 + 4 + 14 + 38, 40 + 4 + 4 + 14 + 38, 100},
		// IPIP: the outer IPv4 header alone, no inner Ethernet.
		{IPIP, NoEncryption, v4, 20, 0, 20},
		// WireGuard: outer IP + UDP 8 + WireGuard header 16 + Poly1305 tag 16.
		{WireGuard, NoEncryption, v4, 20 + 8 + 16 + 16, 0, 60},
		{WireGuard, NoEncryption, v6, 0, 40 + 8 + 16 + 16, 80},
		{WireGuard, NoEncryption, dual, 20 + 8 + 16 + 16, 40 + 8 + 16 + 16, 80},
		// None: native routing, no tunnel.
		{None, NoEncryption, v4, 0, 0, 0},
		{None, NoEncryption, v6, 0, 0, 0},
		{None, NoEncryption, dual, 0, 0, 0},
	}
	for _, underlay := range []int{1500, 9000} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%d/%s/%s/%v", underlay, tc.encap, tc.encryption, tc.families), func(t *testing.T) {
				got, err := Compute(Input{UnderlayMTU: underlay, Encapsulation: tc.encap, Encryption: tc.encryption, Families: tc.families})
				if err != nil {
					t.Fatalf("Compute: %v", err)
				}
				if got.Overhead != tc.overhead || got.PodMTU != underlay-tc.overhead {
					t.Errorf("overhead %d, pod MTU %d; want %d, %d", got.Overhead, got.PodMTU, tc.overhead, underlay-tc.overhead)
				}
				for _, want := range []struct {
					family   Family
					overhead int
				}{{IPv4, tc.tunnelV4}, {IPv6, tc.tunnelV6}} {
					tunnel, ok := got.Tunnel(want.family)
					if want.overhead == 0 {
						if ok {
							t.Errorf("unexpected %s tunnel %+v", want.family, tunnel)
						}
						continue
					}
					if !ok || tunnel.Overhead != want.overhead || tunnel.MTU != underlay-want.overhead {
						t.Errorf("%s tunnel = %+v (present %v); want overhead %d, MTU %d", want.family, tunnel, ok, want.overhead, underlay-want.overhead)
					}
				}
			})
		}
	}
}

func TestComputeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want error
	}{
		{"underlay below IPv4 floor", Input{UnderlayMTU: 575, Encapsulation: None, Families: v4}, ErrInvalidInput},
		{"underlay above 65535", Input{UnderlayMTU: 65536, Encapsulation: None, Families: v4}, ErrInvalidInput},
		{"no family", Input{UnderlayMTU: 1500, Encapsulation: VXLAN}, ErrInvalidInput},
		{"unknown family", Input{UnderlayMTU: 1500, Encapsulation: VXLAN, Families: []Family{"IPX"}}, ErrInvalidInput},
		{"unknown encapsulation", Input{UnderlayMTU: 1500, Encapsulation: "STT", Families: v4}, ErrInvalidInput},
		{"unknown encryption", Input{UnderlayMTU: 1500, Encapsulation: VXLAN, Encryption: "MACsec", Families: v4}, ErrInvalidInput},
		{"IPIP over IPv6", Input{UnderlayMTU: 1500, Encapsulation: IPIP, Families: v6}, ErrUnsupported},
		{"IPIP dual-stack", Input{UnderlayMTU: 1500, Encapsulation: IPIP, Families: dual}, ErrUnsupported},
		{"IPsec without a tunnel", Input{UnderlayMTU: 1500, Encapsulation: None, Encryption: IPsec, Families: v4}, ErrUnsupported},
		{"IPsec on WireGuard", Input{UnderlayMTU: 1500, Encapsulation: WireGuard, Encryption: IPsec, Families: v4}, ErrUnsupported},
		{"IPsec on IPIP", Input{UnderlayMTU: 1500, Encapsulation: IPIP, Encryption: IPsec, Families: v4}, ErrUnsupported},
		// 1279 < 1280: IPv6 needs 1280 on the underlay link itself.
		{"IPv6 underlay below 1280", Input{UnderlayMTU: 1279, Encapsulation: None, Families: v6}, ErrBelowFloor},
		// 1349 − 70 = 1279 < 1280.
		{"IPv6 pod below 1280", Input{UnderlayMTU: 1349, Encapsulation: VXLAN, Families: dual}, ErrBelowFloor},
		// 625 − 50 = 575 < 576.
		{"IPv4 pod below 576", Input{UnderlayMTU: 625, Encapsulation: VXLAN, Families: v4}, ErrBelowFloor},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Compute(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Compute(%+v) = %+v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestComputeAtTheFloor(t *testing.T) {
	// 1350 − 70 = 1280: exactly the IPv6 floor is allowed.
	got, err := Compute(Input{UnderlayMTU: 1350, Encapsulation: VXLAN, Families: dual})
	if err != nil || got.PodMTU != MinIPv6MTU {
		t.Fatalf("got %+v, %v; want pod MTU %d", got, err, MinIPv6MTU)
	}
	// 626 − 50 = 576: exactly the IPv4 floor is allowed.
	got, err = Compute(Input{UnderlayMTU: 626, Encapsulation: VXLAN, Families: v4})
	if err != nil || got.PodMTU != MinIPv4MTU {
		t.Fatalf("got %+v, %v; want pod MTU %d", got, err, MinIPv4MTU)
	}
}

func TestComputeNormalisesFamilies(t *testing.T) {
	got, err := Compute(Input{UnderlayMTU: 1500, Encapsulation: VXLAN, Families: []Family{IPv6, IPv4, IPv6}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Families) != "[IPv4 IPv6]" || got.Tunnels[0].Family != IPv4 || got.Tunnels[1].Family != IPv6 {
		t.Fatalf("families %v, tunnels %+v; want IPv4 then IPv6", got.Families, got.Tunnels)
	}
	if got.Encryption != NoEncryption {
		t.Errorf("encryption %q; want it normalised to %q", got.Encryption, NoEncryption)
	}
}
