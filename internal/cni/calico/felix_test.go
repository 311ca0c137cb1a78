package calico

import (
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// The fixture has no tunnel MTU and no WireGuard switch.
func TestEditFelixConfiguration(t *testing.T) {
	tests := []struct {
		name    string
		want    mtu.Calico
		changes []cni.Change
		edits   map[string]any
	}{{
		name: "VXLAN dual-stack",
		want: mtu.Calico{PodMTU: 8930, PoolEncapsulation: "VXLAN", VXLANMode: "Always", IPIPMode: "Never", VXLANMTU: 8950, VXLANMTUV6: 8930},
		changes: []cni.Change{
			{Path: "spec.vxlanMTU", New: "8950"},
			{Path: "spec.vxlanMTUV6", New: "8930"},
		},
		edits: map[string]any{"spec.vxlanMTU": int64(8950), "spec.vxlanMTUV6": int64(8930)},
	}, {
		name:    "IPIP",
		want:    mtu.Calico{PodMTU: 1480, PoolEncapsulation: "IPIP", IPIPMode: "Always", VXLANMode: "Never", IPIPMTU: 1480},
		changes: []cni.Change{{Path: "spec.ipipMTU", New: "1480"}},
		edits:   map[string]any{"spec.ipipMTU": int64(1480)},
	}, {
		name: "WireGuard on IPv4 leaves the IPv6 switch alone",
		want: mtu.Calico{PodMTU: 1440, PoolEncapsulation: "None", IPIPMode: "Never", VXLANMode: "Never", WireGuard: true, WireGuardMTU: 1440},
		changes: []cni.Change{
			{Path: "spec.wireguardMTU", New: "1440"},
			{Path: "spec.wireguardEnabled", New: "true"},
		},
		edits: map[string]any{"spec.wireguardMTU": int64(1440), "spec.wireguardEnabled": true},
	}, {
		name: "WireGuard dual-stack",
		want: mtu.Calico{PodMTU: 1420, PoolEncapsulation: "None", IPIPMode: "Never", VXLANMode: "Never", WireGuard: true, WireGuardMTU: 1440, WireGuardMTUV6: 1420},
		changes: []cni.Change{
			{Path: "spec.wireguardMTU", New: "1440"},
			{Path: "spec.wireguardMTUV6", New: "1420"},
			{Path: "spec.wireguardEnabled", New: "true"},
			{Path: "spec.wireguardEnabledV6", New: "true"},
		},
		edits: map[string]any{
			"spec.wireguardMTU": int64(1440), "spec.wireguardMTUV6": int64(1420),
			"spec.wireguardEnabled": true, "spec.wireguardEnabledV6": true,
		},
	}, {
		name: "None writes nothing",
		want: mtu.Calico{PodMTU: 1500, PoolEncapsulation: "None", IPIPMode: "Never", VXLANMode: "Never"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := fixture(t, "felixconfiguration.yaml")
			out, changes := mustEdit(t, EditFelixConfiguration, obj, tt.want)
			checkChanges(t, changes, tt.changes)
			checkObject(t, out, edited(obj, tt.edits))
		})
	}
}

func TestEditFelixConfigurationWireGuardOnAndOff(t *testing.T) {
	wireGuard := mtu.Calico{PodMTU: 1420, PoolEncapsulation: "None", WireGuard: true, WireGuardMTU: 1440, WireGuardMTUV6: 1420}
	vxlan := mtu.Calico{PodMTU: 1430, PoolEncapsulation: "VXLAN", VXLANMTU: 1450, VXLANMTUV6: 1430}
	obj := fixture(t, "felixconfiguration.yaml")

	on, _ := mustEdit(t, EditFelixConfiguration, obj, wireGuard)
	off, changes := mustEdit(t, EditFelixConfiguration, on, vxlan)
	checkChanges(t, changes, []cni.Change{
		{Path: "spec.vxlanMTU", New: "1450"},
		{Path: "spec.vxlanMTUV6", New: "1430"},
		{Path: "spec.wireguardEnabled", Old: "true", New: "false"},
		{Path: "spec.wireguardEnabledV6", Old: "true", New: "false"},
	})
	// The WireGuard MTUs stay: they do nothing while WireGuard is off.
	checkObject(t, off, edited(obj, map[string]any{
		"spec.vxlanMTU": int64(1450), "spec.vxlanMTUV6": int64(1430),
		"spec.wireguardMTU": int64(1440), "spec.wireguardMTUV6": int64(1420),
		"spec.wireguardEnabled": false, "spec.wireguardEnabledV6": false,
	}))

	back, changes := mustEdit(t, EditFelixConfiguration, off, wireGuard)
	checkChanges(t, changes, []cni.Change{
		{Path: "spec.wireguardEnabled", Old: "false", New: "true"},
		{Path: "spec.wireguardEnabledV6", Old: "false", New: "true"},
	})
	checkObject(t, back, edited(off, map[string]any{"spec.wireguardEnabled": true, "spec.wireguardEnabledV6": true}))
}

func TestEditFelixConfigurationLeavesWhatItNeedNotTouch(t *testing.T) {
	tests := []struct {
		name, doc string
		want      mtu.Calico
	}{
		{"switches already off", `{"kind":"FelixConfiguration","spec":{"wireguardEnabled":false,"wireguardEnabledV6":false}}`,
			mtu.Calico{PodMTU: 1500, PoolEncapsulation: "None"}},
		{"IPv6 switch off with WireGuard on IPv4 only", `{"spec":{"wireguardEnabled":true,"wireguardEnabledV6":false,"wireguardMTU":1440}}`,
			mtu.Calico{WireGuard: true, WireGuardMTU: 1440}},
		{"MTUs equal as float64", `{"spec":{"vxlanMTU":1450.0,"vxlanMTUV6":1430}}`,
			mtu.Calico{VXLANMTU: 1450, VXLANMTUV6: 1430}},
		{"zero MTUs leave odd values alone", `{"spec":{"vxlanMTU":"auto","ipipMTU":[1480],"wireguardMTU":0}}`,
			mtu.Calico{}},
		{"no spec and nothing to do", `{"kind":"FelixConfiguration","metadata":{"name":"default"}}`,
			mtu.Calico{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := decodeObject(t, tt.doc)
			out, changes := mustEdit(t, EditFelixConfiguration, obj, tt.want)
			checkChanges(t, changes, nil)
			checkObject(t, out, obj)
		})
	}

	t.Run("a differing float is replaced by an int64", func(t *testing.T) {
		obj := decodeObject(t, `{"spec":{"ipipMTU":1479.5}}`)
		out, changes := mustEdit(t, EditFelixConfiguration, obj, mtu.Calico{IPIPMTU: 1480})
		checkChanges(t, changes, []cni.Change{{Path: "spec.ipipMTU", Old: "1479.5", New: "1480"}})
		checkObject(t, out, decodeObject(t, `{"spec":{"ipipMTU":1480}}`))
	})
	t.Run("a missing spec is created", func(t *testing.T) {
		obj := decodeObject(t, `{"kind":"FelixConfiguration","metadata":{"name":"default"},"spec":null}`)
		out, changes := mustEdit(t, EditFelixConfiguration, obj, mtu.Calico{IPIPMTU: 1480})
		checkChanges(t, changes, []cni.Change{{Path: "spec.ipipMTU", New: "1480"}})
		checkObject(t, out, decodeObject(t, `{"kind":"FelixConfiguration","metadata":{"name":"default"},"spec":{"ipipMTU":1480}}`))
	})
}

func TestEditFelixConfigurationRejects(t *testing.T) {
	everything := mtu.Calico{WireGuard: true, VXLANMTU: 1450, VXLANMTUV6: 1430, IPIPMTU: 1480, WireGuardMTU: 1440, WireGuardMTUV6: 1420}
	tests := []struct {
		name, doc string
		want      mtu.Calico
		message   string
	}{
		{"another kind", `{"kind":"IPPool","spec":{}}`, everything,
			"the object's kind is IPPool, not FelixConfiguration"},
		{"spec a string", `{"spec":"default"}`, everything, `spec is the string "default", not an object`},
		{"vxlanMTU a string", `{"spec":{"vxlanMTU":"1450"}}`, everything,
			`spec.vxlanMTU is the string "1450", not a number`},
		{"wireguardMTUV6 an object", `{"spec":{"wireguardMTUV6":{"value":1420}}}`, everything,
			"spec.wireguardMTUV6 is an object, not a number"},
		{"wireguardEnabled a string", `{"spec":{"wireguardEnabled":"true"}}`, everything,
			`spec.wireguardEnabled is the string "true", not true or false`},
		{"wireguardEnabledV6 a number, turning WireGuard off", `{"spec":{"wireguardEnabledV6":1}}`, mtu.Calico{},
			"spec.wireguardEnabledV6 is the number 1, not true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { mustReject(t, EditFelixConfiguration, tt.doc, tt.want, tt.message) })
	}
}
