package calico

import (
	"maps"
	"reflect"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

func TestEditCalicoConfig(t *testing.T) {
	withMTU := func(data map[string]string, mtu string) map[string]string {
		out := maps.Clone(data)
		out["veth_mtu"] = mtu
		return out
	}
	fixtureData := calicoConfigData(t)
	withoutMTU := maps.Clone(fixtureData)
	delete(withoutMTU, "veth_mtu")

	tests := []struct {
		name    string
		data    map[string]string
		want    mtu.Calico
		result  map[string]string
		changes []cni.Change
	}{
		{"detection replaced", fixtureData, mtu.Calico{PodMTU: 1450},
			withMTU(fixtureData, "1450"), []cni.Change{{Path: "veth_mtu", Old: "0", New: "1450"}}},
		{"absent key added", withoutMTU, mtu.Calico{PodMTU: 8950},
			withMTU(fixtureData, "8950"), []cni.Change{{Path: "veth_mtu", New: "8950"}}},
		{"already right", withMTU(fixtureData, "1450"), mtu.Calico{PodMTU: 1450},
			withMTU(fixtureData, "1450"), nil},
		{"not a number", withMTU(fixtureData, "auto"), mtu.Calico{PodMTU: 1450},
			withMTU(fixtureData, "1450"), []cni.Change{{Path: "veth_mtu", Old: "auto", New: "1450"}}},
		{"no opinion", fixtureData, mtu.Calico{}, fixtureData, nil},
		{"no data", nil, mtu.Calico{PodMTU: 1450}, map[string]string{"veth_mtu": "1450"},
			[]cni.Change{{Path: "veth_mtu", New: "1450"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := maps.Clone(tt.data)
			out, changes, err := EditCalicoConfig(tt.data, tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(tt.data, before) {
				t.Errorf("input modified: %v", tt.data)
			}
			checkChanges(t, changes, tt.changes)
			if !reflect.DeepEqual(out, tt.result) {
				t.Errorf("data:\n got %v\nwant %v", out, tt.result)
			}
			again, more, err := EditCalicoConfig(out, tt.want)
			if err != nil || len(more) != 0 || !maps.Equal(again, out) {
				t.Errorf("editing again: changes %v, error %v", more, err)
			}
		})
	}
}
