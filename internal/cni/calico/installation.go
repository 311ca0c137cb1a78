package calico

import (
	"fmt"
	"strings"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// EditInstallation sets the pod MTU and the pool encapsulation in an operator install's
// Installation (operator.tigera.io/v1, normally named default). obj is the whole object.
//
// It owns spec.calicoNetwork.mtu, created with spec.calicoNetwork when absent, and the
// encapsulation of each spec.calicoNetwork.ipPools entry. A CrossSubnet pool stays
// CrossSubnet when the target is IPIP or VXLAN. IPv6 pools are not given IPIP, which the Tigera
// operator rejects; their encapsulation is left as it is. A pool that was CrossSubnet before
// the operator first changed it (remembered, keyed by the change path) gets CrossSubnet back
// when a tunnel returns, so VXLANCrossSubnet → None → VXLAN ends where it started. Changes
// come in that order: the MTU, then the pools by index.
func EditInstallation(obj map[string]any, want mtu.Calico, remembered cni.Remembered) (map[string]any, []cni.Change, error) {
	out, spec, err := editableSpec(obj, "Installation")
	if err != nil {
		return nil, nil, err
	}
	network, err := objectField(spec, "calicoNetwork", "spec.calicoNetwork")
	if err != nil {
		return nil, nil, err
	}

	var changes []cni.Change
	if want.PodMTU != 0 {
		const path = "spec.calicoNetwork.mtu"
		current, err := numberField(network, "mtu", path)
		if err != nil {
			return nil, nil, err
		}
		if !sameNumber(current, want.PodMTU) {
			spec = ensureObject(out, "spec", spec)
			network = ensureObject(spec, "calicoNetwork", network)
			network["mtu"] = int64(want.PodMTU)
			changes = append(changes, cni.Change{Path: path, Old: scalarText(current), New: scalarText(network["mtu"])})
		}
	}

	if want.PoolEncapsulation != "" {
		pools, err := listField(network, "ipPools", "spec.calicoNetwork.ipPools")
		if err != nil {
			return nil, nil, err
		}
		for i, entry := range pools {
			poolPath := fmt.Sprintf("spec.calicoNetwork.ipPools[%d]", i)
			pool, ok := entry.(map[string]any)
			if !ok {
				return nil, nil, shapeError(poolPath, entry, "an object")
			}
			change, err := editPoolEncapsulation(pool, poolPath, want.PoolEncapsulation, remembered)
			if err != nil {
				return nil, nil, err
			}
			if change != nil {
				changes = append(changes, *change)
			}
		}
	}
	return out, changes, nil
}

// editPoolEncapsulation points one Installation pool at target, returning the change if any.
func editPoolEncapsulation(pool map[string]any, poolPath, target string, remembered cni.Remembered) (*cni.Change, error) {
	path := poolPath + ".encapsulation"
	current, present, err := stringField(pool, "encapsulation", path)
	if err != nil {
		return nil, err
	}
	ipv6, err := isIPv6CIDR(pool, poolPath+".cidr")
	if err != nil {
		return nil, err
	}
	next := poolEncapsulation(current, target, remembered[path])
	if (ipv6 && strings.HasPrefix(next, encapIPIP)) || (present && current == next) {
		return nil, nil
	}
	pool["encapsulation"] = next
	// An absent encapsulation is IPIP to Calico, but Old records what was written: nothing.
	return &cni.Change{Path: path, Old: current, New: next}, nil
}

// poolEncapsulation is the encapsulation a pool currently at current (originally at
// original, when the operator changed it before) should get for target: a pool that
// encapsulated only across subnets keeps doing so with the new tunnel.
func poolEncapsulation(current, target, original string) string {
	isCrossSubnet := func(e string) bool { return e == encapIPIP+crossSubnet || e == encapVXLAN+crossSubnet }
	wasCrossSubnet := isCrossSubnet(current) || isCrossSubnet(original)
	if wasCrossSubnet && (target == encapIPIP || target == encapVXLAN) {
		return target + crossSubnet
	}
	return target
}
