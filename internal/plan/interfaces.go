package plan

import (
	"fmt"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// CNITarget is what the nodes must reach for a CNI: the pod MTU that CNI will give pods and
// the MTU of each of its host interfaces.
type CNITarget struct {
	PodMTU     int32
	Interfaces []mtuv1alpha1.ManagedInterface
	// The CNI's own settings, which its configuration must hold: the one of the provider.
	Flannel mtu.Flannel
	Calico  mtu.Calico
	Antrea  mtu.Antrea
	// UnderlayByNode gives nodes a NIC target of their own under Enforce: a restore puts each
	// NIC back to its own original MTU.
	UnderlayByNode map[string]int32
}

// The CNIs' host interface names (from their sources; flannel's carry the VNI).
const (
	flannelBridge      = "cni0"
	flannelIPIP        = "flannel.ipip"
	flannelWireGuard   = "flannel-wg"
	flannelWireGuardV6 = "flannel-wg-v6"
	calicoVXLAN        = "vxlan.calico"
	calicoVXLANV6      = "vxlan-v6.calico"
	calicoIPIP         = "tunl0"
	calicoWireGuard    = "wireguard.cali"
	calicoWireGuardV6  = "wg-v6.cali"
	antreaGateway      = "antrea-gw0"
)

// TargetFor returns the host interfaces of a CNI and their MTUs, as that CNI itself sets
// them from the values the operator writes; the agent keeps them there. vni is flannel's
// VXLAN VNI (flannel.<VNI>).
func TargetFor(provider mtuv1alpha1.CNIProvider, r mtu.Result, vni int) (CNITarget, error) {
	iface := func(name string, role mtuv1alpha1.InterfaceRole, m int) mtuv1alpha1.ManagedInterface {
		return mtuv1alpha1.ManagedInterface{Name: name, Role: role, MTU: int32(m)}
	}
	v4, v6 := r.HasFamily(mtu.IPv4), r.HasFamily(mtu.IPv6)
	var t CNITarget
	switch provider {
	case mtuv1alpha1.CNIFlannel:
		f, err := mtu.ForFlannel(r)
		if err != nil {
			return t, err
		}
		t.Flannel = f
		t.PodMTU = int32(f.PodMTU)
		// flannel gives every tunnel device the same MTU as pods (Backend.MTU less its constant).
		switch f.BackendType {
		case "vxlan":
			if v4 {
				t.Interfaces = append(t.Interfaces, iface(fmt.Sprintf("flannel.%d", vni), mtuv1alpha1.RoleTunnel, f.PodMTU))
			}
			if v6 {
				t.Interfaces = append(t.Interfaces, iface(fmt.Sprintf("flannel-v6.%d", vni), mtuv1alpha1.RoleTunnel, f.PodMTU))
			}
		case "wireguard":
			if v4 {
				t.Interfaces = append(t.Interfaces, iface(flannelWireGuard, mtuv1alpha1.RoleTunnel, f.PodMTU))
			}
			if v6 {
				t.Interfaces = append(t.Interfaces, iface(flannelWireGuardV6, mtuv1alpha1.RoleTunnel, f.PodMTU))
			}
		case "ipip":
			t.Interfaces = append(t.Interfaces, iface(flannelIPIP, mtuv1alpha1.RoleTunnel, f.PodMTU))
		}
		t.Interfaces = append(t.Interfaces, iface(flannelBridge, mtuv1alpha1.RoleBridge, f.PodMTU))
	case mtuv1alpha1.CNICalico:
		c, err := mtu.ForCalico(r)
		if err != nil {
			return t, err
		}
		t.Calico = c
		t.PodMTU = int32(c.PodMTU)
		// The devices of the mode in use: Felix writes every mode's MTU, but removes the
		// devices of the modes it does not use.
		for _, d := range []struct {
			name string
			mtu  int
			used bool
		}{
			{calicoVXLAN, c.VXLANMTU, c.VXLANMode == "Always"}, {calicoVXLANV6, c.VXLANMTUV6, c.VXLANMode == "Always"},
			{calicoIPIP, c.IPIPMTU, c.IPIPMode == "Always"},
			{calicoWireGuard, c.WireGuardMTU, c.WireGuard}, {calicoWireGuardV6, c.WireGuardMTUV6, c.WireGuard},
		} {
			if d.used && d.mtu > 0 {
				t.Interfaces = append(t.Interfaces, iface(d.name, mtuv1alpha1.RoleTunnel, d.mtu))
			}
		}
	case mtuv1alpha1.CNIAntrea:
		a, err := mtu.ForAntrea(r)
		if err != nil {
			return t, err
		}
		t.Antrea = a
		t.PodMTU = int32(a.PodMTU)
		// Antrea's tunnel is an OVS port whose kernel device OVS sizes itself.
		t.Interfaces = append(t.Interfaces, iface(antreaGateway, mtuv1alpha1.RoleGateway, a.PodMTU))
	default:
		return t, fmt.Errorf("no host interfaces known for CNI %q", provider)
	}
	return t, nil
}
