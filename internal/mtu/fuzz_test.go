package mtu

import (
	"errors"
	"testing"
)

var (
	fuzzEncaps      = []Encapsulation{VXLAN, Geneve, IPIP, GRE, WireGuard, None, "bogus"}
	fuzzEncryptions = []Encryption{NoEncryption, IPsec, "", "bogus"}
	fuzzFamilySets  = [][]Family{nil, v4, v6, dual, {IPv6, IPv4}, {"bogus"}}
)

// FuzzCompute checks the invariants every result must hold, for any input: an error is one
// of the package's, or the result is self-consistent and above its floor, and every CNI's
// values bring that CNI to a pod MTU no larger than the calculator's and never above the
// underlay.
func FuzzCompute(f *testing.F) {
	f.Add(9000, uint8(0), uint8(0), uint8(1))
	f.Add(1350, uint8(0), uint8(0), uint8(3))
	f.Add(65535, uint8(1), uint8(1), uint8(2))
	f.Add(575, uint8(5), uint8(0), uint8(1))
	f.Fuzz(func(t *testing.T, underlay int, encap, encryption, families uint8) {
		in := Input{
			UnderlayMTU:   underlay,
			Encapsulation: fuzzEncaps[int(encap)%len(fuzzEncaps)],
			Encryption:    fuzzEncryptions[int(encryption)%len(fuzzEncryptions)],
			Families:      fuzzFamilySets[int(families)%len(fuzzFamilySets)],
		}
		r, err := Compute(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrBelowFloor) {
				t.Fatalf("Compute(%+v): error %v is not one of the package's", in, err)
			}
			return
		}
		if r.PodMTU != r.UnderlayMTU-r.Overhead || r.PodMTU < Floor(r.Families) || r.PodMTU > MaxMTU {
			t.Fatalf("Compute(%+v) = %+v: inconsistent pod MTU", in, r)
		}
		if (in.Encapsulation == None) != (len(r.Tunnels) == 0) {
			t.Fatalf("Compute(%+v) = %+v: tunnels do not match the encapsulation", in, r)
		}
		for _, tunnel := range r.Tunnels {
			if tunnel.MTU != r.UnderlayMTU-tunnel.Overhead || tunnel.MTU < r.PodMTU || !r.HasFamily(tunnel.Family) {
				t.Fatalf("Compute(%+v): tunnel %+v inconsistent with %+v", in, tunnel, r)
			}
		}
		if fl, err := ForFlannel(r); err == nil {
			if fl.PodMTU > r.PodMTU || fl.BackendMTU > r.UnderlayMTU {
				t.Fatalf("ForFlannel(%+v) = %+v: pod MTU above %d or Backend.MTU above the underlay", r, fl, r.PodMTU)
			}
		}
		if ca, err := ForCalico(r); err == nil && ca.PodMTU != r.PodMTU {
			t.Fatalf("ForCalico(%+v) = %+v: pod MTU differs", r, ca)
		}
		if an, err := ForAntrea(r); err == nil && (an.PodMTU > r.PodMTU || an.DefaultMTU != an.PodMTU) {
			t.Fatalf("ForAntrea(%+v) = %+v: pod MTU above %d", r, an, r.PodMTU)
		}
	})
}
