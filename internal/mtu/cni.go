package mtu

import "fmt"

// Overheads the CNIs hard-code. The calculator writes values that make each CNI arrive at
// the pod MTU computed from header sizes, compensating where a CNI's constant is off.
const (
	// flannelVXLANOverhead is what flannel subtracts from its vxlan Backend.MTU for both
	// flannel.<VNI> and flannel-v6.<VNI>, although VXLAN over IPv6 costs 70.
	flannelVXLANOverhead = 50
	// flannelWireGuardOverhead is what flannel subtracts for flannel-wg and flannel-wg-v6.
	flannelWireGuardOverhead = 80
	// antreaOVSTunnelMaxMTU is the largest MTU Antrea gives interfaces in encap modes.
	antreaOVSTunnelMaxMTU = 65000
)

// Flannel is what to write in flannel's net-conf.json.
type Flannel struct {
	// BackendType is Backend.Type: vxlan, host-gw, ipip or wireguard.
	BackendType string
	// BackendMTU is Backend.MTU, which flannel reads as the underlay MTU and from which it
	// subtracts its own constant. Zero when the backend has no MTU option (host-gw, ipip).
	BackendMTU int
	// PodMTU is the MTU flannel will give pods (FLANNEL_MTU) with these values.
	PodMTU int
}

// ForFlannel returns flannel's settings for a result.
//
// vxlan: flannel always subtracts 50, so with IPv6 in play Backend.MTU is lowered by 20 to
// leave room for the 70 bytes VXLAN over IPv6 needs. wireguard: flannel subtracts 80 for
// both families; Backend.MTU is never raised above the underlay to compensate, so pods get
// flannel's (safe) 80-byte margin. host-gw and ipip take the MTU from the external interface.
func ForFlannel(r Result) (Flannel, error) {
	if r.Encryption != NoEncryption {
		return Flannel{}, fmt.Errorf("%w: flannel has no %s on top of a tunnel", ErrUnsupported, r.Encryption)
	}
	switch r.Encapsulation {
	case VXLAN:
		return Flannel{BackendType: "vxlan", BackendMTU: r.PodMTU + flannelVXLANOverhead, PodMTU: r.PodMTU}, nil
	case WireGuard:
		// flannel sizes flannel-wg (and pods) at Backend.MTU less 80 for either family; the
		// device's packets then cross the underlay with 60 bytes more over IPv4, 80 over IPv6.
		// So an IPv4 cluster writes 20 above the underlay, and pods get the full 60-byte budget.
		return Flannel{BackendType: "wireguard", BackendMTU: r.PodMTU + flannelWireGuardOverhead, PodMTU: r.PodMTU}, nil
	case IPIP:
		return Flannel{BackendType: "ipip", PodMTU: r.PodMTU}, nil
	case None:
		return Flannel{BackendType: "host-gw", PodMTU: r.PodMTU}, nil
	default:
		return Flannel{}, fmt.Errorf("%w: flannel has no %s backend (it offers VXLAN, IPIP, WireGuard and None as host-gw)", ErrUnsupported, r.Encapsulation)
	}
}

// Calico is what to write in Calico's configuration, for operator and manifest installs.
type Calico struct {
	// PodMTU goes to Installation spec.calicoNetwork.mtu (operator installs) and to the
	// calico-config veth_mtu (manifest installs).
	PodMTU int
	// PoolEncapsulation is the Installation ipPools[].encapsulation: VXLAN, IPIP or None.
	PoolEncapsulation string
	// IPIPMode and VXLANMode are the IPPool modes: Always or Never.
	IPIPMode, VXLANMode string
	// WireGuard says whether FelixConfiguration wireguardEnabled should be on.
	WireGuard bool
	// The FelixConfiguration tunnel MTUs of every mode, used or not, for the underlay: a
	// switch of encapsulation must not leave an old mode's MTU behind, sized for another
	// underlay, to be used when that mode comes back. Zero leaves a field alone (a family the
	// cluster does not have; Felix treats 0 as auto).
	VXLANMTU, VXLANMTUV6, IPIPMTU, WireGuardMTU, WireGuardMTUV6 int
}

// tunnelMTU is the tunnel MTU of family f for encapsulation e over r's underlay; 0 when the
// cluster has no such family or e does not carry it.
func tunnelMTU(r Result, e Encapsulation, f Family) int {
	if !r.HasFamily(f) {
		return 0
	}
	other, err := Compute(Input{UnderlayMTU: r.UnderlayMTU, Encapsulation: e, Families: []Family{f}})
	if err != nil {
		return 0
	}
	t, _ := other.Tunnel(f)
	return t.MTU
}

// ForCalico returns Calico's settings for a result. Felix gives pods the smallest MTU among
// the enabled tunnels, which is the calculator's pod MTU.
func ForCalico(r Result) (Calico, error) {
	if r.Encryption != NoEncryption {
		return Calico{}, fmt.Errorf("%w: Calico open source has no %s", ErrUnsupported, r.Encryption)
	}
	c := Calico{
		PodMTU: r.PodMTU, PoolEncapsulation: "None", IPIPMode: "Never", VXLANMode: "Never",
		VXLANMTU: tunnelMTU(r, VXLAN, IPv4), VXLANMTUV6: tunnelMTU(r, VXLAN, IPv6), IPIPMTU: tunnelMTU(r, IPIP, IPv4),
		WireGuardMTU: tunnelMTU(r, WireGuard, IPv4), WireGuardMTUV6: tunnelMTU(r, WireGuard, IPv6),
	}
	switch r.Encapsulation {
	case VXLAN:
		c.PoolEncapsulation, c.VXLANMode = "VXLAN", "Always"
	case IPIP:
		c.PoolEncapsulation, c.IPIPMode = "IPIP", "Always"
	case WireGuard:
		c.WireGuard = true
	case None:
	default:
		return Calico{}, fmt.Errorf("%w: Calico has no %s encapsulation (it offers VXLAN, IPIP, WireGuard and None)", ErrUnsupported, r.Encapsulation)
	}
	return c, nil
}

// Antrea is what to write in antrea-agent.conf.
type Antrea struct {
	// TrafficEncapMode is encap or noEncap.
	TrafficEncapMode string
	// TunnelType is geneve, vxlan or gre; empty leaves the field alone (WireGuard, None).
	TunnelType string
	// TrafficEncryptionMode is none, ipsec or wireGuard (Antrea matches it ignoring case).
	TrafficEncryptionMode string
	// DefaultMTU is written explicitly (Antrea uses a non-zero value as it is).
	DefaultMTU int
	// PodMTU is the MTU Antrea gives antrea-gw0 and pods with these values.
	PodMTU int
}

// ForAntrea returns Antrea's settings for a result. Antrea's own deduction (node_config.go)
// agrees with the calculator's header sums: geneve and vxlan 50, gre 42, IPv6 +20,
// WireGuard 60 in place of the tunnel, IPsec +38. Antrea caps interfaces at 65000 in encap
// modes, so the pod MTU is capped the same way.
func ForAntrea(r Result) (Antrea, error) {
	a := Antrea{TrafficEncapMode: "encap", TrafficEncryptionMode: "none", PodMTU: r.PodMTU}
	switch r.Encapsulation {
	case Geneve:
		a.TunnelType = "geneve"
	case VXLAN:
		a.TunnelType = "vxlan"
	case GRE:
		if r.HasFamily(IPv6) {
			return Antrea{}, fmt.Errorf("%w: Antrea's GRE tunnels do not support IPv6; use Geneve or VXLAN", ErrUnsupported)
		}
		a.TunnelType = "gre"
	case WireGuard:
		// Antrea encrypts only in encap mode; WireGuard then replaces the tunnel.
		a.TrafficEncryptionMode = "wireGuard"
	case None:
		a.TrafficEncapMode = "noEncap"
	default:
		return Antrea{}, fmt.Errorf("%w: Antrea has no %s tunnel (it offers Geneve, VXLAN, GRE, WireGuard and None)", ErrUnsupported, r.Encapsulation)
	}
	if r.Encryption == IPsec {
		a.TrafficEncryptionMode = "ipsec"
	}
	if a.TrafficEncapMode == "encap" {
		a.PodMTU = min(a.PodMTU, antreaOVSTunnelMaxMTU)
	}
	a.DefaultMTU = a.PodMTU
	return a, nil
}
