package calico

import (
	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// felixTunnelMTUs are the FelixConfiguration tunnel MTU fields, in the order changes report them.
var felixTunnelMTUs = []struct {
	key  string
	want func(mtu.Calico) int
}{
	{"vxlanMTU", func(c mtu.Calico) int { return c.VXLANMTU }},
	{"vxlanMTUV6", func(c mtu.Calico) int { return c.VXLANMTUV6 }},
	{"ipipMTU", func(c mtu.Calico) int { return c.IPIPMTU }},
	{"wireguardMTU", func(c mtu.Calico) int { return c.WireGuardMTU }},
	{"wireguardMTUV6", func(c mtu.Calico) int { return c.WireGuardMTUV6 }},
}

// EditFelixConfiguration sets the tunnel MTUs and WireGuard in a manifest install's
// FelixConfiguration (normally named default). obj is the whole object.
//
// Each of spec.vxlanMTU, vxlanMTUV6, ipipMTU, wireguardMTU and wireguardMTUV6 is written when
// its wanted value is non-zero and left alone otherwise (Felix reads 0 or absent as "detect").
// With want.WireGuard, spec.wireguardEnabled is turned on, and spec.wireguardEnabledV6 too when
// an IPv6 WireGuard MTU is wanted. Without it, whichever of the two is on is turned off, since
// the policy's encapsulation is then something other than WireGuard. Changes come in that
// order: the MTUs, then the two switches.
func EditFelixConfiguration(obj map[string]any, want mtu.Calico) (map[string]any, []cni.Change, error) {
	out, spec, err := editableSpec(obj, "FelixConfiguration")
	if err != nil {
		return nil, nil, err
	}

	var changes []cni.Change
	set := func(key string, old, value any) {
		spec = ensureObject(out, "spec", spec)
		spec[key] = value
		changes = append(changes, cni.Change{Path: "spec." + key, Old: scalarText(old), New: scalarText(value)})
	}

	for _, field := range felixTunnelMTUs {
		wantMTU := field.want(want)
		if wantMTU == 0 {
			continue
		}
		current, err := numberField(spec, field.key, "spec."+field.key)
		if err != nil {
			return nil, nil, err
		}
		if !sameNumber(current, wantMTU) {
			set(field.key, current, int64(wantMTU))
		}
	}

	switches := []struct {
		key   string
		owned bool // whether this edit has an opinion on the switch
		on    bool
	}{
		{"wireguardEnabled", true, want.WireGuard},
		{"wireguardEnabledV6", !want.WireGuard || want.WireGuardMTUV6 != 0, want.WireGuard},
	}
	for _, s := range switches {
		if !s.owned {
			continue
		}
		current, present, err := boolField(spec, s.key, "spec."+s.key)
		if err != nil {
			return nil, nil, err
		}
		// An absent switch is off, so turning off touches only a switch that is on.
		if current != s.on {
			var old any
			if present {
				old = current
			}
			set(s.key, old, s.on)
		}
	}
	return out, changes, nil
}
