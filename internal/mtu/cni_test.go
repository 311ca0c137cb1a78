package mtu

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// The CNIs' own constants, as their code has them. Each test checks that what the
// calculator writes makes the CNI arrive at the calculator's pod MTU by the CNI's own rule.
const (
	flannelVXLANSubtracts     = 50 // pkg/backend/vxlan: encapOverhead
	flannelWireGuardSubtracts = 80 // pkg/backend/wireguard: overhead
	felixIPIP                 = 20 // ConfigureDefaultMTUs
	felixVXLAN                = 50
	felixVXLANV6              = 70
	felixWireGuard            = 60
	felixWireGuardV6          = 80
	antreaGeneve              = 50 // pkg/agent/config/node_config.go
	antreaVXLAN               = 50
	antreaGRE                 = 42
	antreaIPv6Extra           = 20
	antreaWireGuard           = 60
	antreaIPsec               = 38
)

func mustCompute(t *testing.T, underlay int, encap Encapsulation, encryption Encryption, families []Family) Result {
	t.Helper()
	r, err := Compute(Input{UnderlayMTU: underlay, Encapsulation: encap, Encryption: encryption, Families: families})
	if err != nil {
		t.Fatalf("Compute: %v", err)
	}
	return r
}

func TestForFlannel(t *testing.T) {
	tests := []struct {
		encap    Encapsulation
		families []Family
		want     Flannel
	}{
		// IPv4: Backend.MTU is the underlay and flannel's 50 is exact: 9000 − 50 = 8950.
		{VXLAN, v4, Flannel{BackendType: "vxlan", BackendMTU: 9000, PodMTU: 8950}},
		// IPv6 needs 70, flannel subtracts 50: write 9000 − 20 = 8980 so 8980 − 50 = 8930.
		{VXLAN, v6, Flannel{BackendType: "vxlan", BackendMTU: 8980, PodMTU: 8930}},
		{VXLAN, dual, Flannel{BackendType: "vxlan", BackendMTU: 8980, PodMTU: 8930}},
		// WireGuard: flannel subtracts 80 for either family; IPv4 needs 60, so Backend.MTU is
		// 20 above the underlay for pods to get 8940.
		{WireGuard, v4, Flannel{BackendType: "wireguard", BackendMTU: 9020, PodMTU: 8940}},
		{WireGuard, v6, Flannel{BackendType: "wireguard", BackendMTU: 9000, PodMTU: 8920}},
		{WireGuard, dual, Flannel{BackendType: "wireguard", BackendMTU: 9000, PodMTU: 8920}},
		// ipip: flannel.ipip = external − 20, no MTU option.
		{IPIP, v4, Flannel{BackendType: "ipip", PodMTU: 8980}},
		// host-gw: pods get the external interface MTU.
		{None, v4, Flannel{BackendType: "host-gw", PodMTU: 9000}},
		{None, dual, Flannel{BackendType: "host-gw", PodMTU: 9000}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%v", tc.encap, tc.families), func(t *testing.T) {
			got, err := ForFlannel(mustCompute(t, 9000, tc.encap, NoEncryption, tc.families))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v; want %+v", got, tc.want)
			}
			switch got.BackendType {
			case "vxlan":
				if got.BackendMTU-flannelVXLANSubtracts != got.PodMTU {
					t.Errorf("flannel would give pods %d, not %d", got.BackendMTU-flannelVXLANSubtracts, got.PodMTU)
				}
			case "wireguard":
				if got.BackendMTU-flannelWireGuardSubtracts != got.PodMTU {
					t.Errorf("flannel would give pods %d, not %d", got.BackendMTU-flannelWireGuardSubtracts, got.PodMTU)
				}
			}
			// What crosses the underlay: flannel-wg's packets plus WireGuard's outer headers.
			if got.BackendType == "wireguard" {
				outer := 60
				if slices.Contains(tc.families, IPv6) {
					outer = 80
				}
				if wg := got.BackendMTU - flannelWireGuardSubtracts; wg+outer > 9000 {
					t.Errorf("flannel-wg at %d sends %d-byte packets over a 9000 underlay", wg, wg+outer)
				}
			} else if got.BackendMTU > 9000 {
				t.Errorf("Backend.MTU %d exceeds the underlay", got.BackendMTU)
			}
		})
	}
	for _, encap := range []Encapsulation{Geneve, GRE} {
		if _, err := ForFlannel(mustCompute(t, 9000, encap, NoEncryption, v4)); !errors.Is(err, ErrUnsupported) {
			t.Errorf("ForFlannel(%s) error %v; want ErrUnsupported", encap, err)
		}
	}
	if _, err := ForFlannel(mustCompute(t, 9000, VXLAN, IPsec, v4)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ForFlannel(VXLAN+IPsec) error %v; want ErrUnsupported", err)
	}
}

func TestForCalico(t *testing.T) {
	tests := []struct {
		encap    Encapsulation
		families []Family
		want     Calico
	}{
		// Every mode's tunnel MTU is written for the underlay, used or not: a switch leaves
		// nothing stale behind. IPIP has no IPv6.
		{VXLAN, v4, Calico{PodMTU: 9000 - felixVXLAN, PoolEncapsulation: "VXLAN", VXLANMode: "Always", IPIPMode: "Never", VXLANMTU: 9000 - felixVXLAN, IPIPMTU: 9000 - felixIPIP, WireGuardMTU: 9000 - felixWireGuard}},
		{VXLAN, v6, Calico{PodMTU: 9000 - felixVXLANV6, PoolEncapsulation: "VXLAN", VXLANMode: "Always", IPIPMode: "Never", VXLANMTUV6: 9000 - felixVXLANV6, WireGuardMTUV6: 9000 - felixWireGuardV6}},
		// Felix takes the smaller of the enabled tunnels: min(8950, 8930).
		{VXLAN, dual, Calico{PodMTU: 9000 - felixVXLANV6, PoolEncapsulation: "VXLAN", VXLANMode: "Always", IPIPMode: "Never", VXLANMTU: 9000 - felixVXLAN, IPIPMTU: 9000 - felixIPIP, WireGuardMTU: 9000 - felixWireGuard, VXLANMTUV6: 9000 - felixVXLANV6, WireGuardMTUV6: 9000 - felixWireGuardV6}},
		{IPIP, v4, Calico{PodMTU: 9000 - felixIPIP, PoolEncapsulation: "IPIP", IPIPMode: "Always", VXLANMode: "Never", VXLANMTU: 9000 - felixVXLAN, IPIPMTU: 9000 - felixIPIP, WireGuardMTU: 9000 - felixWireGuard}},
		{WireGuard, v4, Calico{PodMTU: 9000 - felixWireGuard, PoolEncapsulation: "None", IPIPMode: "Never", VXLANMode: "Never", WireGuard: true, VXLANMTU: 9000 - felixVXLAN, IPIPMTU: 9000 - felixIPIP, WireGuardMTU: 9000 - felixWireGuard}},
		{WireGuard, v6, Calico{PodMTU: 9000 - felixWireGuardV6, PoolEncapsulation: "None", IPIPMode: "Never", VXLANMode: "Never", WireGuard: true, VXLANMTUV6: 9000 - felixVXLANV6, WireGuardMTUV6: 9000 - felixWireGuardV6}},
		{WireGuard, dual, Calico{PodMTU: 9000 - felixWireGuardV6, PoolEncapsulation: "None", IPIPMode: "Never", VXLANMode: "Never", WireGuard: true, VXLANMTU: 9000 - felixVXLAN, IPIPMTU: 9000 - felixIPIP, WireGuardMTU: 9000 - felixWireGuard, VXLANMTUV6: 9000 - felixVXLANV6, WireGuardMTUV6: 9000 - felixWireGuardV6}},
		{None, dual, Calico{PodMTU: 9000, PoolEncapsulation: "None", IPIPMode: "Never", VXLANMode: "Never", VXLANMTU: 9000 - felixVXLAN, IPIPMTU: 9000 - felixIPIP, WireGuardMTU: 9000 - felixWireGuard, VXLANMTUV6: 9000 - felixVXLANV6, WireGuardMTUV6: 9000 - felixWireGuardV6}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%v", tc.encap, tc.families), func(t *testing.T) {
			got, err := ForCalico(mustCompute(t, 9000, tc.encap, NoEncryption, tc.families))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v; want %+v", got, tc.want)
			}
		})
	}
	for _, encap := range []Encapsulation{Geneve, GRE} {
		if _, err := ForCalico(mustCompute(t, 9000, encap, NoEncryption, v4)); !errors.Is(err, ErrUnsupported) {
			t.Errorf("ForCalico(%s) error %v; want ErrUnsupported", encap, err)
		}
	}
	if _, err := ForCalico(mustCompute(t, 9000, VXLAN, IPsec, v4)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ForCalico(VXLAN+IPsec) error %v; want ErrUnsupported", err)
	}
}

func TestForAntrea(t *testing.T) {
	tests := []struct {
		encap      Encapsulation
		encryption Encryption
		families   []Family
		want       Antrea
	}{
		{Geneve, NoEncryption, v4, Antrea{"encap", "geneve", "none", 9000 - antreaGeneve, 9000 - antreaGeneve}},
		{Geneve, NoEncryption, v6, Antrea{"encap", "geneve", "none", 9000 - antreaGeneve - antreaIPv6Extra, 9000 - antreaGeneve - antreaIPv6Extra}},
		{Geneve, NoEncryption, dual, Antrea{"encap", "geneve", "none", 9000 - antreaGeneve - antreaIPv6Extra, 9000 - antreaGeneve - antreaIPv6Extra}},
		{Geneve, IPsec, v4, Antrea{"encap", "geneve", "ipsec", 9000 - antreaGeneve - antreaIPsec, 9000 - antreaGeneve - antreaIPsec}},
		{Geneve, IPsec, dual, Antrea{"encap", "geneve", "ipsec", 9000 - antreaGeneve - antreaIPv6Extra - antreaIPsec, 9000 - antreaGeneve - antreaIPv6Extra - antreaIPsec}},
		{VXLAN, NoEncryption, v4, Antrea{"encap", "vxlan", "none", 9000 - antreaVXLAN, 9000 - antreaVXLAN}},
		{VXLAN, IPsec, v6, Antrea{"encap", "vxlan", "ipsec", 9000 - antreaVXLAN - antreaIPv6Extra - antreaIPsec, 9000 - antreaVXLAN - antreaIPv6Extra - antreaIPsec}},
		{GRE, NoEncryption, v4, Antrea{"encap", "gre", "none", 9000 - antreaGRE, 9000 - antreaGRE}},
		{GRE, IPsec, v4, Antrea{"encap", "gre", "ipsec", 9000 - antreaGRE - antreaIPsec, 9000 - antreaGRE - antreaIPsec}},
		{WireGuard, NoEncryption, v4, Antrea{"encap", "", "wireGuard", 9000 - antreaWireGuard, 9000 - antreaWireGuard}},
		{WireGuard, NoEncryption, dual, Antrea{"encap", "", "wireGuard", 9000 - antreaWireGuard - antreaIPv6Extra, 9000 - antreaWireGuard - antreaIPv6Extra}},
		{None, NoEncryption, dual, Antrea{"noEncap", "", "none", 9000, 9000}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%s/%v", tc.encap, tc.encryption, tc.families), func(t *testing.T) {
			got, err := ForAntrea(mustCompute(t, 9000, tc.encap, tc.encryption, tc.families))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v; want %+v", got, tc.want)
			}
		})
	}
	if _, err := ForAntrea(mustCompute(t, 9000, IPIP, NoEncryption, v4)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ForAntrea(IPIP) error %v; want ErrUnsupported", err)
	}
	if _, err := ForAntrea(mustCompute(t, 9000, GRE, NoEncryption, dual)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ForAntrea(GRE, dual-stack) error %v; want ErrUnsupported", err)
	}
	// Antrea caps interfaces at 65000 in encap modes (ovsTunnelMaxMTU): 65535 − 50 = 65485 → 65000.
	got, err := ForAntrea(mustCompute(t, 65535, Geneve, NoEncryption, v4))
	if err != nil || got.PodMTU != 65000 || got.DefaultMTU != 65000 {
		t.Errorf("ForAntrea(65535 Geneve) = %+v, %v; want pod MTU 65000", got, err)
	}
	// noEncap has no such cap.
	got, err = ForAntrea(mustCompute(t, 65535, None, NoEncryption, v4))
	if err != nil || got.PodMTU != 65535 {
		t.Errorf("ForAntrea(65535 None) = %+v, %v; want pod MTU 65535", got, err)
	}
}
