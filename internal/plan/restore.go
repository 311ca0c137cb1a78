package plan

import (
	"fmt"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/cni/antrea"
)

// FlannelEncapsulation is the encapsulation a flannel backend type gives pods.
func FlannelEncapsulation(backendType string) (mtuv1alpha1.EncapsulationType, error) {
	switch backendType {
	case "vxlan":
		return mtuv1alpha1.EncapsulationVXLAN, nil
	case "host-gw":
		return mtuv1alpha1.EncapsulationNone, nil
	case "wireguard":
		return mtuv1alpha1.EncapsulationWireGuard, nil
	case "ipip":
		return mtuv1alpha1.EncapsulationIPIP, nil
	}
	return "", fmt.Errorf("flannel backend %q has no encapsulation the operator knows", backendType)
}

// AntreaEncapsulation is the encapsulation and encryption Antrea's settings give pods.
func AntreaEncapsulation(s antrea.Settings) (mtuv1alpha1.EncapsulationType, mtuv1alpha1.EncryptionType, error) {
	encryption := mtuv1alpha1.EncryptionNone
	switch s.TrafficEncryptionMode {
	case "none", "":
	case "wireguard":
		return mtuv1alpha1.EncapsulationWireGuard, encryption, nil
	case "ipsec":
		encryption = mtuv1alpha1.EncryptionIPsec
	default:
		return "", "", fmt.Errorf("antrea trafficEncryptionMode %q is not one the operator knows", s.TrafficEncryptionMode)
	}
	switch s.TrafficEncapMode {
	case "noEncap":
		return mtuv1alpha1.EncapsulationNone, encryption, nil
	case "encap":
	default:
		return "", "", fmt.Errorf("antrea trafficEncapMode %q is not one the operator restores", s.TrafficEncapMode)
	}
	switch s.TunnelType {
	case "geneve", "":
		return mtuv1alpha1.EncapsulationGeneve, encryption, nil
	case "vxlan":
		return mtuv1alpha1.EncapsulationVXLAN, encryption, nil
	case "gre":
		return mtuv1alpha1.EncapsulationGRE, encryption, nil
	}
	return "", "", fmt.Errorf("antrea tunnelType %q is not one the operator knows", s.TunnelType)
}

// OriginalUnderlays are the MTUs each node's NIC had before the operator first changed it (its
// agent's record), or has now when the operator never changed it, and the smallest of them.
// A node that has not reported its underlay yet is left out.
func OriginalUnderlays(nodes []NodeInput) (byNode map[string]int32, smallest int32) {
	byNode = map[string]int32{}
	for _, n := range nodes {
		if n.State == nil || n.State.Status.UnderlayMTU == 0 {
			continue
		}
		var u int32
		for _, i := range n.State.Status.Underlay {
			m := i.MTU
			for _, o := range n.State.Status.OriginalUnderlay {
				if o.Name == i.Name {
					m = o.MTU
				}
			}
			if u == 0 || m < u {
				u = m
			}
		}
		if u == 0 {
			continue
		}
		byNode[n.Name] = u
		if smallest == 0 || u < smallest {
			smallest = u
		}
	}
	return byNode, smallest
}
