package calico

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/mtu-operator/mtu-operator/internal/cni"
)

// The kinds of the fields the editors own, by their key: what a recorded original's text is
// read back as.
var (
	numberKeys = []string{"mtu", "vxlanMTU", "vxlanMTUV6", "ipipMTU", "wireguardMTU", "wireguardMTUV6"}
	boolKeys   = []string{"wireguardEnabled", "wireguardEnabledV6"}
	stringKeys = []string{"encapsulation", "ipipMode", "vxlanMode"}
)

// Restore puts the fields of a Calico object (Installation, FelixConfiguration, IPPool) back to
// the values recorded before the operator first changed them. originals maps a change's path
// ("spec.vxlanMTU", "spec.calicoNetwork.ipPools[0].encapsulation") to its value as the editors
// report it, "" for a field that was absent (and is removed). A path that no longer leads to
// a field (a pool removed since) or a value of the wrong kind is refused with an error wrapping
// cni.ErrUnexpectedShape, and obj is left untouched.
func Restore(obj map[string]any, originals map[string]string) (map[string]any, []cni.Change, error) {
	out := copyObject(obj)
	var changes []cni.Change
	for _, path := range slices.Sorted(maps.Keys(originals)) {
		original := originals[path]
		parent, key, err := walk(out, path, original != "")
		if err != nil {
			return nil, nil, err
		}
		if parent == nil {
			continue // absent on the way, and to be absent
		}
		current, present := parent[key]
		switch {
		case original == "" && present:
			delete(parent, key)
			changes = append(changes, cni.Change{Path: path, Old: scalarText(current)})
		case original != "" && (!present || scalarText(current) != original):
			value, err := typed(key, path, original)
			if err != nil {
				return nil, nil, err
			}
			parent[key] = value
			changes = append(changes, cni.Change{Path: path, Old: scalarText(current), New: original})
		}
	}
	return out, changes, nil
}

// walk follows path in obj to the map holding its last key. Maps on the way are created when
// create is set; a missing one is otherwise nil, nil. A list index must exist.
func walk(obj map[string]any, path string, create bool) (map[string]any, string, error) {
	parts := strings.Split(path, ".")
	current := obj
	for i, part := range parts[:len(parts)-1] {
		name, index, hasIndex, err := splitIndex(part)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %s: %w", cni.ErrUnexpectedShape, path, err)
		}
		where := strings.Join(parts[:i+1], ".")
		next, ok := current[name]
		if !ok || next == nil {
			if hasIndex || !create {
				if hasIndex {
					return nil, "", fmt.Errorf("%w: %s is gone", cni.ErrUnexpectedShape, where)
				}
				return nil, "", nil
			}
			next = map[string]any{}
			current[name] = next
		}
		if hasIndex {
			list, ok := next.([]any)
			if !ok || index >= len(list) {
				return nil, "", fmt.Errorf("%w: %s is gone", cni.ErrUnexpectedShape, where)
			}
			next = list[index]
		}
		m, ok := next.(map[string]any)
		if !ok {
			return nil, "", shapeError(where, next, "an object")
		}
		current = m
	}
	return current, parts[len(parts)-1], nil
}

// splitIndex reads "ipPools[2]" as ipPools, 2.
func splitIndex(part string) (name string, index int, hasIndex bool, err error) {
	open := strings.IndexByte(part, '[')
	if open < 0 {
		return part, 0, false, nil
	}
	if !strings.HasSuffix(part, "]") {
		return "", 0, false, fmt.Errorf("%q is not a field", part)
	}
	index, err = strconv.Atoi(part[open+1 : len(part)-1])
	if err != nil || index < 0 {
		return "", 0, false, fmt.Errorf("%q is not a field", part)
	}
	return part[:open], index, true, nil
}

// typed reads an original's text as the kind of value its key holds.
func typed(key, path, text string) (any, error) {
	switch {
	case slices.Contains(numberKeys, key):
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: the original %s %q is not a whole number", cni.ErrUnexpectedShape, path, text)
		}
		return n, nil
	case slices.Contains(boolKeys, key):
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, fmt.Errorf("%w: the original %s %q is not true or false", cni.ErrUnexpectedShape, path, text)
		}
		return b, nil
	case slices.Contains(stringKeys, key):
		return text, nil
	}
	return nil, fmt.Errorf("%w: %s is not a field the operator edits", cni.ErrUnexpectedShape, path)
}

// RestoreCalicoConfig puts the calico-config keys the operator changed (veth_mtu) back to their
// originals; "" removes a key the operator added.
func RestoreCalicoConfig(data map[string]string, originals map[string]string) (map[string]string, []cni.Change) {
	out := maps.Clone(data)
	if out == nil {
		out = map[string]string{}
	}
	var changes []cni.Change
	for _, key := range slices.Sorted(maps.Keys(originals)) {
		original := originals[key]
		current, present := out[key]
		switch {
		case original == "" && present:
			delete(out, key)
			changes = append(changes, cni.Change{Path: key, Old: current})
		case original != "" && current != original:
			out[key] = original
			changes = append(changes, cni.Change{Path: key, Old: current, New: original})
		}
	}
	return out, changes
}

// Encapsulation names, as the API spells them.
const (
	EncapVXLAN     = "VXLAN"
	EncapIPIP      = "IPIP"
	EncapWireGuard = "WireGuard"
	EncapNone      = "None"
)

// ManifestEncapsulation is what a manifest install's objects wrap pods' traffic between nodes
// in: WireGuard when Felix has it on, else the tunnel any IPv4 pool enables (always or across
// subnets), else nothing.
func ManifestEncapsulation(felix map[string]any, pools []map[string]any) string {
	if spec, ok := felix["spec"].(map[string]any); ok {
		if on, _ := spec["wireguardEnabled"].(bool); on {
			return EncapWireGuard
		}
	}
	found := EncapNone
	for _, pool := range pools {
		spec, _ := pool["spec"].(map[string]any)
		vxlan, _ := spec["vxlanMode"].(string)
		ipip, _ := spec["ipipMode"].(string)
		switch {
		case effectiveMode(vxlan) != modeNever:
			return EncapVXLAN
		case effectiveMode(ipip) != modeNever:
			found = EncapIPIP
		}
	}
	return found
}

// OperatorEncapsulation is what an Installation's first pool wraps pods' traffic in.
func OperatorEncapsulation(installation map[string]any) string {
	spec, _ := installation["spec"].(map[string]any)
	network, _ := spec["calicoNetwork"].(map[string]any)
	pools, _ := network["ipPools"].([]any)
	for _, p := range pools {
		pool, _ := p.(map[string]any)
		e, present := pool["encapsulation"].(string)
		switch {
		case !present:
			return EncapIPIP // the Tigera operator's default
		case strings.HasPrefix(e, encapVXLAN):
			return EncapVXLAN
		case strings.HasPrefix(e, encapIPIP):
			return EncapIPIP
		default:
			return EncapNone
		}
	}
	return EncapNone
}

// InstallationPodMTU is spec.calicoNetwork.mtu; 0 when Calico takes it from the node's NIC.
func InstallationPodMTU(installation map[string]any) int {
	spec, _ := installation["spec"].(map[string]any)
	network, _ := spec["calicoNetwork"].(map[string]any)
	if f, ok := asFloat(network["mtu"]); ok && f > 0 {
		return int(f)
	}
	return 0
}

// ConfigPodMTU is calico-config's veth_mtu; 0 when Calico takes it from the node's NIC.
func ConfigPodMTU(data map[string]string) int {
	n, err := strconv.Atoi(strings.TrimSpace(data["veth_mtu"]))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
