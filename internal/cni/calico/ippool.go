package calico

import (
	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// EditIPPool sets the encapsulation of a manifest install's IPPool (crd.projectcalico.org/v1
// or projectcalico.org/v3). obj is the whole object.
//
// It owns spec.ipipMode and spec.vxlanMode (absent counts as Never). A pool that
// encapsulated only across subnets, on either field, keeps CrossSubnet for the tunnel being
// enabled: ipipMode CrossSubnet switched to VXLAN becomes vxlanMode CrossSubnet and ipipMode
// Never. A pool that was CrossSubnet before the operator first changed it (remembered, keyed
// by the change path) counts as CrossSubnet too. An IPv6 pool cannot carry IPIP, so its
// ipipMode is left alone. Changes come in that order: ipipMode, then vxlanMode.
func EditIPPool(obj map[string]any, want mtu.Calico, remembered cni.Remembered) (map[string]any, []cni.Change, error) {
	out, spec, err := editableSpec(obj, "IPPool")
	if err != nil {
		return nil, nil, err
	}
	ipv6, err := isIPv6CIDR(spec, "spec.cidr")
	if err != nil {
		return nil, nil, err
	}
	ipip, _, err := stringField(spec, "ipipMode", "spec.ipipMode")
	if err != nil {
		return nil, nil, err
	}
	vxlan, _, err := stringField(spec, "vxlanMode", "spec.vxlanMode")
	if err != nil {
		return nil, nil, err
	}

	// Counting a wanted CrossSubnet too keeps the edit stable when the want itself mixes modes.
	crossSubnetPool := ipip == crossSubnet || vxlan == crossSubnet ||
		want.IPIPMode == crossSubnet || want.VXLANMode == crossSubnet ||
		remembered["spec.ipipMode"] == crossSubnet || remembered["spec.vxlanMode"] == crossSubnet
	modes := []struct{ key, current, target string }{
		{"ipipMode", ipip, want.IPIPMode},
		{"vxlanMode", vxlan, want.VXLANMode},
	}
	if ipv6 {
		modes[0].target = "" // no opinion: Calico refuses IPIP on IPv6 pools
	}

	var changes []cni.Change
	for _, m := range modes {
		if m.target == "" {
			continue
		}
		next := m.target
		if next == modeAlways && crossSubnetPool {
			next = crossSubnet
		}
		if effectiveMode(m.current) == next {
			continue
		}
		spec = ensureObject(out, "spec", spec)
		spec[m.key] = next
		changes = append(changes, cni.Change{Path: "spec." + m.key, Old: m.current, New: next})
	}
	return out, changes, nil
}

// effectiveMode is the mode Calico applies for a written one: absent or empty is Never.
func effectiveMode(written string) string {
	if written == "" {
		return modeNever
	}
	return written
}
