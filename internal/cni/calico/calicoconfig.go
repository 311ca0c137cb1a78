package calico

import (
	"maps"
	"strconv"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// EditCalicoConfig sets veth_mtu in the data of a manifest install's calico-config ConfigMap.
// calico-node feeds it to the CNI configuration and to Felix's tunnel MTUs; "0" means detect.
// Every other key, cni_network_config included, is left as it is. The error is there for
// symmetry with the other editors: string data has no shape to get wrong.
func EditCalicoConfig(data map[string]string, want mtu.Calico) (map[string]string, []cni.Change, error) {
	out := maps.Clone(data)
	if out == nil {
		out = map[string]string{}
	}
	if want.PodMTU == 0 {
		return out, nil, nil
	}
	const key = "veth_mtu"
	next := strconv.Itoa(want.PodMTU)
	current, present := out[key]
	if present && current == next {
		return out, nil, nil
	}
	out[key] = next
	return out, []cni.Change{{Path: key, Old: current, New: next}}, nil
}
