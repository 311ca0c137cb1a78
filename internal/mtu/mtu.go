// Package mtu is the operator's MTU arithmetic. It is pure: no Kubernetes, no netlink.
//
// Given the underlay MTU, the encapsulation, the encryption and the cluster's IP families it
// computes the MTU of the tunnel devices (one per family), the pod MTU, and the value each
// CNI wants written in its own configuration so that the CNI arrives at that same pod MTU.
//
// Every overhead is built from header sizes, so each number can be checked by hand:
// VXLAN over IPv4 is outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 = 50 bytes.
package mtu

import (
	"errors"
	"fmt"
	"slices"
)

// Family is an IP family of the cluster's underlay and pod network.
type Family string

// The IP families.
const (
	IPv4 Family = "IPv4"
	IPv6 Family = "IPv6"
)

// Encapsulation is how pod traffic crosses the underlay between nodes.
type Encapsulation string

// The encapsulations the operator knows.
const (
	VXLAN     Encapsulation = "VXLAN"
	Geneve    Encapsulation = "Geneve"
	IPIP      Encapsulation = "IPIP"
	GRE       Encapsulation = "GRE"
	WireGuard Encapsulation = "WireGuard"
	// None is native routing (flannel host-gw, Calico without encapsulation, Antrea noEncap).
	None Encapsulation = "None"
)

// Encryption is an encryption layered on top of the encapsulation.
type Encryption string

// The encryptions the operator knows. WireGuard is an Encapsulation, not an Encryption: it
// replaces the tunnel rather than adding to it (Antrea, Calico and flannel all treat it so).
const (
	NoEncryption Encryption = "None"
	IPsec        Encryption = "IPsec"
)

// Bounds on MTU values.
const (
	// MinIPv4MTU is the practical IPv4 floor: every IPv4 host must accept 576-byte datagrams
	// (RFC 791). The hard minimum, 68, leaves nothing useful for a pod.
	MinIPv4MTU = 576
	// MinIPv6MTU is the minimum link MTU IPv6 requires (RFC 8200, section 5).
	MinIPv6MTU = 1280
	// MaxMTU is the largest MTU an IP packet's 16-bit length field allows.
	MaxMTU = 65535
)

// Header sizes in bytes.
const (
	ipv4Header     = 20
	ipv6Header     = 40
	udpHeader      = 8
	vxlanHeader    = 8
	geneveHeader   = 8 // without options
	ethernetHeader = 14
	// greKeyedHeader is the 4-byte GRE header plus the 4-byte key OVS sets on its GRE ports.
	greKeyedHeader = 8
	// wireGuardHeader is the data message header (type 4, receiver 4, counter 8) plus the
	// 16-byte Poly1305 tag.
	wireGuardHeader = 32
	// espOverhead is the ESP cost Antrea budgets for IPsec (IPSecESPOverhead): SPI 4 +
	// sequence 4 + IV 8 + ICV 16 + pad length 1 + next header 1 + up to 4 bytes of padding.
	espOverhead = 38
)

// Errors callers can test for with errors.Is.
var (
	ErrInvalidInput = errors.New("invalid MTU input")
	ErrUnsupported  = errors.New("combination not supported")
	ErrBelowFloor   = errors.New("MTU below the floor")
)

// Input is what the calculator needs to know.
type Input struct {
	// UnderlayMTU is the MTU of the physical network between nodes.
	UnderlayMTU int
	// Encapsulation of pod traffic between nodes.
	Encapsulation Encapsulation
	// Encryption on top of the encapsulation; the zero value means none.
	Encryption Encryption
	// Families are the IP families in use. A dual-stack cluster lists both.
	Families []Family
}

// Tunnel is the tunnel device of one IP family.
type Tunnel struct {
	// Family of the outer (underlay) header this tunnel sends.
	Family Family
	// Overhead is the bytes the encapsulation adds, header by header.
	Overhead int
	// MTU of the tunnel device: the underlay MTU less the overhead.
	MTU int
}

// Result is what the calculator decided.
type Result struct {
	// UnderlayMTU echoes the input.
	UnderlayMTU int
	// Families in use, IPv4 first, without duplicates.
	Families []Family
	// Encapsulation and Encryption echo the input (Encryption normalised to NoEncryption).
	Encapsulation Encapsulation
	Encryption    Encryption
	// Tunnels has one entry per family, in the order of Families; empty when Encapsulation
	// is None.
	Tunnels []Tunnel
	// Overhead is the largest tunnel overhead: a pod interface carries every family, so
	// dual-stack pays for the larger one.
	Overhead int
	// PodMTU is the MTU every pod interface should have.
	PodMTU int
}

// Tunnel returns the tunnel of a family.
func (r Result) Tunnel(f Family) (Tunnel, bool) {
	for _, t := range r.Tunnels {
		if t.Family == f {
			return t, true
		}
	}
	return Tunnel{}, false
}

// HasFamily reports whether the result covers an IP family.
func (r Result) HasFamily(f Family) bool { return slices.Contains(r.Families, f) }

// Floor is the smallest MTU a pod interface may have for these families.
func Floor(families []Family) int {
	if slices.Contains(families, IPv6) {
		return MinIPv6MTU
	}
	return MinIPv4MTU
}

// Overhead returns the bytes an encapsulation (plus encryption) adds to a packet whose outer
// header is of the given family.
func Overhead(encap Encapsulation, encryption Encryption, family Family) (int, error) {
	var outer int
	switch family {
	case IPv4:
		outer = ipv4Header
	case IPv6:
		outer = ipv6Header
	default:
		return 0, fmt.Errorf("%w: unknown IP family %q", ErrInvalidInput, family)
	}

	var overhead int
	switch encap {
	case VXLAN:
		overhead = outer + udpHeader + vxlanHeader + ethernetHeader
	case Geneve:
		overhead = outer + udpHeader + geneveHeader + ethernetHeader
	case GRE:
		overhead = outer + greKeyedHeader + ethernetHeader
	case IPIP:
		if family == IPv6 {
			return 0, fmt.Errorf("%w: IPIP carries only IPv4; use VXLAN or None with IPv6", ErrUnsupported)
		}
		overhead = outer
	case WireGuard:
		overhead = outer + udpHeader + wireGuardHeader
	case None:
		overhead = 0
	default:
		return 0, fmt.Errorf("%w: unknown encapsulation %q", ErrInvalidInput, encap)
	}

	switch encryption {
	case NoEncryption, "":
	case IPsec:
		switch encap {
		case VXLAN, Geneve, GRE:
			overhead += espOverhead
		default:
			return 0, fmt.Errorf("%w: IPsec encrypts VXLAN, Geneve or GRE tunnels, not %s", ErrUnsupported, encap)
		}
	default:
		return 0, fmt.Errorf("%w: unknown encryption %q", ErrInvalidInput, encryption)
	}
	return overhead, nil
}

// Compute returns the tunnel and pod MTUs for an input, or an error saying why the input
// cannot work (unknown values, an unsupported combination, or a pod MTU below its floor).
func Compute(in Input) (Result, error) {
	if in.UnderlayMTU < MinIPv4MTU || in.UnderlayMTU > MaxMTU {
		return Result{}, fmt.Errorf("%w: underlay MTU %d is outside [%d, %d]", ErrInvalidInput, in.UnderlayMTU, MinIPv4MTU, MaxMTU)
	}
	families, err := normaliseFamilies(in.Families)
	if err != nil {
		return Result{}, err
	}
	encryption := in.Encryption
	if encryption == "" {
		encryption = NoEncryption
	}
	if floor := Floor(families); in.UnderlayMTU < floor {
		return Result{}, fmt.Errorf("%w: underlay MTU %d is below the IPv6 minimum of %d", ErrBelowFloor, in.UnderlayMTU, floor)
	}

	res := Result{UnderlayMTU: in.UnderlayMTU, Families: families, Encapsulation: in.Encapsulation, Encryption: encryption}
	for _, f := range families {
		overhead, err := Overhead(in.Encapsulation, encryption, f)
		if err != nil {
			return Result{}, err
		}
		res.Overhead = max(res.Overhead, overhead)
		if in.Encapsulation != None {
			res.Tunnels = append(res.Tunnels, Tunnel{Family: f, Overhead: overhead, MTU: in.UnderlayMTU - overhead})
		}
	}
	res.PodMTU = in.UnderlayMTU - res.Overhead
	if floor := Floor(families); res.PodMTU < floor {
		return Result{}, fmt.Errorf("%w: pod MTU would be %d (underlay %d − %s overhead %d), below the %s floor of %d",
			ErrBelowFloor, res.PodMTU, in.UnderlayMTU, in.Encapsulation, res.Overhead, floorFamily(families), floor)
	}
	return res, nil
}

func floorFamily(families []Family) Family {
	if slices.Contains(families, IPv6) {
		return IPv6
	}
	return IPv4
}

// normaliseFamilies validates the families and returns them IPv4 first, without duplicates.
func normaliseFamilies(in []Family) ([]Family, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("%w: at least one IP family is required", ErrInvalidInput)
	}
	var out []Family
	for _, want := range []Family{IPv4, IPv6} {
		if slices.Contains(in, want) {
			out = append(out, want)
		}
	}
	for _, f := range in {
		if f != IPv4 && f != IPv6 {
			return nil, fmt.Errorf("%w: unknown IP family %q", ErrInvalidInput, f)
		}
	}
	return out, nil
}
