package calico

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

const (
	installationMTU    = "spec.calicoNetwork.mtu"
	installationV4Pool = "spec.calicoNetwork.ipPools[0].encapsulation"
	installationV6Pool = "spec.calicoNetwork.ipPools[1].encapsulation"
)

// The fixture's pools: IPv4 VXLANCrossSubnet, IPv6 None; no MTU written.
func TestEditInstallation(t *testing.T) {
	tests := []struct {
		name    string
		want    mtu.Calico
		changes []cni.Change
		edits   map[string]any
	}{{
		name: "VXLAN keeps the IPv4 pool's CrossSubnet and tunnels the IPv6 pool",
		want: mtu.Calico{PodMTU: 1430, PoolEncapsulation: "VXLAN", IPIPMode: "Never", VXLANMode: "Always", VXLANMTU: 1450, VXLANMTUV6: 1430},
		changes: []cni.Change{
			{Path: installationMTU, New: "1430"},
			{Path: installationV6Pool, Old: "None", New: "VXLAN"},
		},
		edits: map[string]any{installationMTU: int64(1430), installationV6Pool: "VXLAN"},
	}, {
		name: "None unencapsulates the IPv4 pool",
		want: mtu.Calico{PodMTU: 1500, PoolEncapsulation: "None", IPIPMode: "Never", VXLANMode: "Never"},
		changes: []cni.Change{
			{Path: installationMTU, New: "1500"},
			{Path: installationV4Pool, Old: "VXLANCrossSubnet", New: "None"},
		},
		edits: map[string]any{installationMTU: int64(1500), installationV4Pool: "None"},
	}, {
		name: "IPIP keeps CrossSubnet and is not given to the IPv6 pool",
		want: mtu.Calico{PodMTU: 1480, PoolEncapsulation: "IPIP", IPIPMode: "Always", VXLANMode: "Never", IPIPMTU: 1480},
		changes: []cni.Change{
			{Path: installationMTU, New: "1480"},
			{Path: installationV4Pool, Old: "VXLANCrossSubnet", New: "IPIPCrossSubnet"},
		},
		edits: map[string]any{installationMTU: int64(1480), installationV4Pool: "IPIPCrossSubnet"},
	}, {
		name: "WireGuard is Felix's business: only the MTU and the pools change",
		want: mtu.Calico{PodMTU: 8940, PoolEncapsulation: "None", IPIPMode: "Never", VXLANMode: "Never", WireGuard: true, WireGuardMTU: 8940, WireGuardMTUV6: 8920},
		changes: []cni.Change{
			{Path: installationMTU, New: "8940"},
			{Path: installationV4Pool, Old: "VXLANCrossSubnet", New: "None"},
		},
		edits: map[string]any{installationMTU: int64(8940), installationV4Pool: "None"},
	}, {
		name: "zero values have no opinion",
		want: mtu.Calico{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := fixture(t, "installation.yaml")
			out, changes := mustEdit(t, withoutMemory(EditInstallation), obj, tt.want)
			checkChanges(t, changes, tt.changes)
			checkObject(t, out, edited(obj, tt.edits))
		})
	}
}

func TestEditInstallationTransitions(t *testing.T) {
	vxlan := mtu.Calico{PodMTU: 1430, PoolEncapsulation: "VXLAN", VXLANMode: "Always", IPIPMode: "Never"}
	none := mtu.Calico{PodMTU: 1480, PoolEncapsulation: "None", VXLANMode: "Never", IPIPMode: "Never"}
	ipip := mtu.Calico{PodMTU: 1460, PoolEncapsulation: "IPIP", VXLANMode: "Never", IPIPMode: "Always"}
	steps := []struct {
		want    mtu.Calico
		changes []cni.Change
	}{
		{vxlan, []cni.Change{
			{Path: installationMTU, New: "1430"},
			{Path: installationV6Pool, Old: "None", New: "VXLAN"},
		}},
		{ipip, []cni.Change{
			{Path: installationMTU, Old: "1430", New: "1460"},
			{Path: installationV4Pool, Old: "VXLANCrossSubnet", New: "IPIPCrossSubnet"},
		}},
		{vxlan, []cni.Change{
			{Path: installationMTU, Old: "1460", New: "1430"},
			{Path: installationV4Pool, Old: "IPIPCrossSubnet", New: "VXLANCrossSubnet"},
		}},
		{none, []cni.Change{
			{Path: installationMTU, Old: "1430", New: "1480"},
			{Path: installationV4Pool, Old: "VXLANCrossSubnet", New: "None"},
			{Path: installationV6Pool, Old: "VXLAN", New: "None"},
		}},
		// None does not remember CrossSubnet: the pool comes back fully encapsulated.
		{vxlan, []cni.Change{
			{Path: installationMTU, Old: "1480", New: "1430"},
			{Path: installationV4Pool, Old: "None", New: "VXLAN"},
			{Path: installationV6Pool, Old: "None", New: "VXLAN"},
		}},
	}
	obj := fixture(t, "installation.yaml")
	for i, step := range steps {
		out, changes := mustEdit(t, withoutMemory(EditInstallation), obj, step.want)
		if !reflect.DeepEqual(changes, step.changes) {
			t.Fatalf("step %d, to %s: changes\n got %+v\nwant %+v", i, step.want.PoolEncapsulation, changes, step.changes)
		}
		obj = out
	}
	// Everything but the owned fields is as it was.
	checkObject(t, obj, edited(fixture(t, "installation.yaml"), map[string]any{
		installationMTU: int64(1430), installationV4Pool: "VXLAN", installationV6Pool: "VXLAN",
	}))
}

func TestEditInstallationCreatesWhatIsMissing(t *testing.T) {
	want := mtu.Calico{PodMTU: 1450, PoolEncapsulation: "VXLAN"}
	tests := []struct {
		name, doc, result string
		changes           []cni.Change
	}{{
		name:    "no spec",
		doc:     `{"apiVersion":"operator.tigera.io/v1","kind":"Installation","metadata":{"name":"default"}}`,
		result:  `{"apiVersion":"operator.tigera.io/v1","kind":"Installation","metadata":{"name":"default"},"spec":{"calicoNetwork":{"mtu":1450}}}`,
		changes: []cni.Change{{Path: installationMTU, New: "1450"}},
	}, {
		name:    "null calicoNetwork",
		doc:     `{"kind":"Installation","spec":{"variant":"Calico","calicoNetwork":null}}`,
		result:  `{"kind":"Installation","spec":{"variant":"Calico","calicoNetwork":{"mtu":1450}}}`,
		changes: []cni.Change{{Path: installationMTU, New: "1450"}},
	}, {
		name:   "pools without encapsulation, which Calico reads as IPIP",
		doc:    `{"spec":{"calicoNetwork":{"mtu":1450,"ipPools":[{"cidr":"10.244.0.0/16"},{"cidr":"fd00::/56","encapsulation":null}]}}}`,
		result: `{"spec":{"calicoNetwork":{"mtu":1450,"ipPools":[{"cidr":"10.244.0.0/16","encapsulation":"VXLAN"},{"cidr":"fd00::/56","encapsulation":"VXLAN"}]}}}`,
		changes: []cni.Change{
			{Path: installationV4Pool, New: "VXLAN"},
			{Path: installationV6Pool, New: "VXLAN"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, changes := mustEdit(t, withoutMemory(EditInstallation), decodeObject(t, tt.doc), want)
			checkChanges(t, changes, tt.changes)
			checkObject(t, out, decodeObject(t, tt.result))
		})
	}

	t.Run("absent IPIP on an IPv6 pool stays absent", func(t *testing.T) {
		doc := `{"spec":{"calicoNetwork":{"ipPools":[{"cidr":"fd00::/56"}]}}}`
		out, changes := mustEdit(t, withoutMemory(EditInstallation), decodeObject(t, doc), mtu.Calico{PoolEncapsulation: "IPIP"})
		checkChanges(t, changes, nil)
		checkObject(t, out, decodeObject(t, doc))
	})
}

// Numbers compare by value whatever their Go type; a new value is written as int64.
func TestEditInstallationNumbers(t *testing.T) {
	for _, current := range []any{int64(1450), float64(1450), json.Number("1450"), 1450} {
		obj := map[string]any{"spec": map[string]any{"calicoNetwork": map[string]any{"mtu": current}}}
		out, changes, err := EditInstallation(obj, mtu.Calico{PodMTU: 1450}, nil)
		if err != nil || len(changes) != 0 {
			t.Errorf("mtu %#v, want 1450: changes %v, error %v", current, changes, err)
		}
		checkObject(t, out, obj)
	}
	obj := decodeObject(t, `{"spec":{"calicoNetwork":{"mtu":1450.5}}}`)
	out, changes := mustEdit(t, withoutMemory(EditInstallation), obj, mtu.Calico{PodMTU: 1450})
	checkChanges(t, changes, []cni.Change{{Path: installationMTU, Old: "1450.5", New: "1450"}})
	if got := at(out, installationMTU); got != int64(1450) {
		t.Errorf("mtu written as %#v, want int64(1450)", got)
	}
}

func TestEditInstallationRejects(t *testing.T) {
	want := mtu.Calico{PodMTU: 1450, PoolEncapsulation: "VXLAN"}
	tests := []struct{ name, doc, message string }{
		{"another kind", `{"kind":"FelixConfiguration","spec":{}}`,
			"the object's kind is FelixConfiguration, not Installation"},
		{"spec a list", `{"kind":"Installation","spec":[]}`, "spec is a list, not an object"},
		{"calicoNetwork a string", `{"spec":{"calicoNetwork":"on"}}`,
			`spec.calicoNetwork is the string "on", not an object`},
		{"mtu a string", `{"spec":{"calicoNetwork":{"mtu":"1450"}}}`,
			`spec.calicoNetwork.mtu is the string "1450", not a number`},
		{"mtu a boolean", `{"spec":{"calicoNetwork":{"mtu":true}}}`,
			"spec.calicoNetwork.mtu is the boolean true, not a number"},
		{"ipPools an object", `{"spec":{"calicoNetwork":{"ipPools":{"cidr":"10.0.0.0/8"}}}}`,
			"spec.calicoNetwork.ipPools is an object, not a list"},
		{"a pool a string", `{"spec":{"calicoNetwork":{"ipPools":[{"cidr":"10.0.0.0/8"},"default"]}}}`,
			`spec.calicoNetwork.ipPools[1] is the string "default", not an object`},
		{"a pool null", `{"spec":{"calicoNetwork":{"ipPools":[null]}}}`,
			"spec.calicoNetwork.ipPools[0] is null, not an object"},
		{"encapsulation a number", `{"spec":{"calicoNetwork":{"ipPools":[{"encapsulation":4}]}}}`,
			"spec.calicoNetwork.ipPools[0].encapsulation is the number 4, not a string"},
		{"encapsulation a list", `{"spec":{"calicoNetwork":{"ipPools":[{"encapsulation":["VXLAN"]}]}}}`,
			"spec.calicoNetwork.ipPools[0].encapsulation is a list, not a string"},
		{"cidr a list", `{"spec":{"calicoNetwork":{"ipPools":[{"cidr":["10.0.0.0/8"]}]}}}`,
			"spec.calicoNetwork.ipPools[0].cidr is a list, not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { mustReject(t, withoutMemory(EditInstallation), tt.doc, want, tt.message) })
	}
}
