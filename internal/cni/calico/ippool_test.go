package calico

import (
	"reflect"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

var (
	poolVXLAN = mtu.Calico{PodMTU: 1450, PoolEncapsulation: "VXLAN", IPIPMode: "Never", VXLANMode: "Always", VXLANMTU: 1450}
	poolIPIP  = mtu.Calico{PodMTU: 1480, PoolEncapsulation: "IPIP", IPIPMode: "Always", VXLANMode: "Never", IPIPMTU: 1480}
	poolNone  = mtu.Calico{PodMTU: 1500, PoolEncapsulation: "None", IPIPMode: "Never", VXLANMode: "Never"}
)

func TestEditIPPool(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		want    mtu.Calico
		changes []cni.Change
		edits   map[string]any
	}{{
		name: "IPIP to VXLAN", fixture: "ippool.yaml", want: poolVXLAN,
		changes: []cni.Change{
			{Path: "spec.ipipMode", Old: "Always", New: "Never"},
			{Path: "spec.vxlanMode", Old: "Never", New: "Always"},
		},
		edits: map[string]any{"spec.ipipMode": "Never", "spec.vxlanMode": "Always"},
	}, {
		name: "IPIP stays IPIP", fixture: "ippool.yaml", want: poolIPIP,
	}, {
		name: "IPIP to None", fixture: "ippool.yaml", want: poolNone,
		changes: []cni.Change{{Path: "spec.ipipMode", Old: "Always", New: "Never"}},
		edits:   map[string]any{"spec.ipipMode": "Never"},
	}, {
		name: "IPv6 pool to VXLAN, absent modes counting as Never", fixture: "ippool-v6.yaml", want: poolVXLAN,
		changes: []cni.Change{{Path: "spec.vxlanMode", New: "Always"}},
		edits:   map[string]any{"spec.vxlanMode": "Always"},
	}, {
		name: "IPv6 pool is not given IPIP", fixture: "ippool-v6.yaml", want: poolIPIP,
	}, {
		name: "IPv6 pool to None writes nothing", fixture: "ippool-v6.yaml", want: poolNone,
	}, {
		name: "no opinion", fixture: "ippool.yaml", want: mtu.Calico{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := fixture(t, tt.fixture)
			out, changes := mustEdit(t, withoutMemory(EditIPPool), obj, tt.want)
			checkChanges(t, changes, tt.changes)
			checkObject(t, out, edited(obj, tt.edits))
		})
	}
}

func TestEditIPPoolKeepsCrossSubnet(t *testing.T) {
	obj := edited(fixture(t, "ippool.yaml"), map[string]any{"spec.ipipMode": "CrossSubnet"})
	steps := []struct {
		want    mtu.Calico
		changes []cni.Change
	}{
		{poolVXLAN, []cni.Change{
			{Path: "spec.ipipMode", Old: "CrossSubnet", New: "Never"},
			{Path: "spec.vxlanMode", Old: "Never", New: "CrossSubnet"},
		}},
		{poolIPIP, []cni.Change{
			{Path: "spec.ipipMode", Old: "Never", New: "CrossSubnet"},
			{Path: "spec.vxlanMode", Old: "CrossSubnet", New: "Never"},
		}},
		// None does not remember CrossSubnet: the pool comes back fully encapsulated.
		{poolNone, []cni.Change{{Path: "spec.ipipMode", Old: "CrossSubnet", New: "Never"}}},
		{poolVXLAN, []cni.Change{{Path: "spec.vxlanMode", Old: "Never", New: "Always"}}},
	}
	for i, step := range steps {
		out, changes := mustEdit(t, withoutMemory(EditIPPool), obj, step.want)
		if !reflect.DeepEqual(changes, step.changes) {
			t.Fatalf("step %d, to %s: changes\n got %+v\nwant %+v", i, step.want.PoolEncapsulation, changes, step.changes)
		}
		obj = out
	}
	checkObject(t, obj, edited(fixture(t, "ippool.yaml"), map[string]any{"spec.ipipMode": "Never", "spec.vxlanMode": "Always"}))
}

func TestEditIPPoolOddCases(t *testing.T) {
	tests := []struct {
		name, doc, result string
		want              mtu.Calico
		changes           []cni.Change
	}{{
		name:    "empty modes count as Never",
		doc:     `{"spec":{"cidr":"10.0.0.0/8","ipipMode":"","vxlanMode":""}}`,
		result:  `{"spec":{"cidr":"10.0.0.0/8","ipipMode":"Always","vxlanMode":""}}`,
		want:    poolIPIP,
		changes: []cni.Change{{Path: "spec.ipipMode", New: "Always"}},
	}, {
		name:   "an IPv6 pool's ipipMode is left alone even when wrong",
		doc:    `{"spec":{"cidr":"fd00::/56","ipipMode":"Always"}}`,
		result: `{"spec":{"cidr":"fd00::/56","ipipMode":"Always"}}`,
		want:   poolNone,
	}, {
		name:    "a pool without spec",
		doc:     `{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"p"}}`,
		result:  `{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"p"},"spec":{"vxlanMode":"Always"}}`,
		want:    poolVXLAN,
		changes: []cni.Change{{Path: "spec.vxlanMode", New: "Always"}},
	}, {
		name:    "modes written as given",
		doc:     `{"spec":{"cidr":"10.0.0.0/8"}}`,
		result:  `{"spec":{"cidr":"10.0.0.0/8","vxlanMode":"CrossSubnet"}}`,
		want:    mtu.Calico{IPIPMode: "Never", VXLANMode: "CrossSubnet"},
		changes: []cni.Change{{Path: "spec.vxlanMode", New: "CrossSubnet"}},
	}, {
		// Found by FuzzEditIPPool: the wanted CrossSubnet must count, or a second edit differs.
		name:   "a wanted CrossSubnet makes the pool CrossSubnet",
		doc:    `{}`,
		result: `{"spec":{"ipipMode":"CrossSubnet","vxlanMode":"CrossSubnet"}}`,
		want:   mtu.Calico{IPIPMode: "CrossSubnet", VXLANMode: "Always"},
		changes: []cni.Change{
			{Path: "spec.ipipMode", New: "CrossSubnet"},
			{Path: "spec.vxlanMode", New: "CrossSubnet"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, changes := mustEdit(t, withoutMemory(EditIPPool), decodeObject(t, tt.doc), tt.want)
			checkChanges(t, changes, tt.changes)
			checkObject(t, out, decodeObject(t, tt.result))
		})
	}
}

func TestEditIPPoolRejects(t *testing.T) {
	tests := []struct{ name, doc, message string }{
		{"another kind", `{"kind":"FelixConfiguration","spec":{}}`, "the object's kind is FelixConfiguration, not IPPool"},
		{"a kind that is not a string", `{"kind":7,"spec":{}}`, "the object's kind is the number 7, not IPPool"},
		{"spec a list", `{"spec":[{"cidr":"10.0.0.0/8"}]}`, "spec is a list, not an object"},
		{"cidr a number", `{"spec":{"cidr":10}}`, "spec.cidr is the number 10, not a string"},
		{"ipipMode a boolean", `{"spec":{"cidr":"10.0.0.0/8","ipipMode":true}}`, "spec.ipipMode is the boolean true, not a string"},
		{"vxlanMode an object", `{"spec":{"cidr":"10.0.0.0/8","vxlanMode":{}}}`, "spec.vxlanMode is an object, not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { mustReject(t, withoutMemory(EditIPPool), tt.doc, poolVXLAN, tt.message) })
	}
}
