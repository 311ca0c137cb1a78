package calico

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// recordFirst adds changes to originals the way the controller records them.
func recordFirst(originals map[string]string, changes []cni.Change) {
	for _, c := range changes {
		if _, known := originals[c.Path]; !known {
			originals[c.Path] = c.Old
		}
	}
}

// TestRestoreUndoesEveryEdit: for each Calico object, any two edits the calculator can ask
// for, then Restore from the recorded originals, give the object back as it was.
func TestRestoreUndoesEveryEdit(t *testing.T) {
	wants := []mtu.Calico{}
	for _, r := range []mtu.Result{
		{UnderlayMTU: 9000, PodMTU: 8950, Encapsulation: mtu.VXLAN, Families: []mtu.Family{mtu.IPv4}},
		{UnderlayMTU: 1500, PodMTU: 1500, Encapsulation: mtu.None, Families: []mtu.Family{mtu.IPv4, mtu.IPv6}},
		{UnderlayMTU: 1500, PodMTU: 1440, Encapsulation: mtu.WireGuard, Families: []mtu.Family{mtu.IPv4}},
		{UnderlayMTU: 9000, PodMTU: 8980, Encapsulation: mtu.IPIP, Families: []mtu.Family{mtu.IPv4}},
	} {
		r.Encryption = mtu.NoEncryption
		w, err := mtu.ForCalico(r)
		if err != nil {
			t.Fatal(err)
		}
		wants = append(wants, w)
	}
	objects := map[string]func(map[string]any, mtu.Calico) (map[string]any, []cni.Change, error){
		"installation.yaml": func(o map[string]any, w mtu.Calico) (map[string]any, []cni.Change, error) {
			return EditInstallation(o, w, nil)
		},
		"felixconfiguration.yaml": EditFelixConfiguration,
		"ippool.yaml": func(o map[string]any, w mtu.Calico) (map[string]any, []cni.Change, error) {
			return EditIPPool(o, w, nil)
		},
		"ippool-v6.yaml": func(o map[string]any, w mtu.Calico) (map[string]any, []cni.Change, error) {
			return EditIPPool(o, w, nil)
		},
	}
	for name, edit := range objects {
		for i, first := range wants {
			second := wants[(i+1)%len(wants)]
			t.Run(fmt.Sprintf("%s %d", name, i), func(t *testing.T) {
				original := fixture(t, name)
				originals := map[string]string{}
				obj := original
				for _, w := range []mtu.Calico{first, second} {
					out, changes, err := edit(obj, w)
					if err != nil {
						t.Fatal(err)
					}
					recordFirst(originals, changes)
					obj = out
				}
				restored, _, err := Restore(obj, originals)
				if err != nil {
					t.Fatalf("Restore: %v", err)
				}
				if !reflect.DeepEqual(restored, original) {
					t.Errorf("restored %v\nwant     %v\noriginals %v", restored["spec"], original["spec"], originals)
				}
				if again, more, err := Restore(restored, originals); err != nil || len(more) != 0 || !reflect.DeepEqual(again, restored) {
					t.Errorf("restoring twice changed %v (%v)", more, err)
				}
			})
		}
	}
}

func TestRestoreRefusesWhatItCannotPutBack(t *testing.T) {
	inst := fixture(t, "installation.yaml")
	for path, value := range map[string]string{
		"spec.calicoNetwork.ipPools[7].encapsulation": "VXLAN", // the pool is gone
		"spec.calicoNetwork.mtu":                      "auto",
		"spec.registry":                               "example.com/", // not the operator's field
		"spec.calicoNetwork.ipPools[x].encapsulation": "VXLAN",
	} {
		if _, _, err := Restore(inst, map[string]string{path: value}); !errors.Is(err, cni.ErrUnexpectedShape) {
			t.Errorf("%s=%q: %v, want ErrUnexpectedShape", path, value, err)
		}
	}
}

func TestRestoreCalicoConfig(t *testing.T) {
	data := calicoConfigData(t)
	edited, changes, err := EditCalicoConfig(data, mtu.Calico{PodMTU: 8950})
	if err != nil || len(changes) != 1 {
		t.Fatalf("edit: %v %v", changes, err)
	}
	originals := map[string]string{}
	recordFirst(originals, changes)
	restored, back := RestoreCalicoConfig(edited, originals)
	if !reflect.DeepEqual(restored, data) || len(back) != 1 {
		t.Errorf("restored %v (%v), want %v", restored, back, data)
	}
	if out, removed := RestoreCalicoConfig(map[string]string{"veth_mtu": "1440"}, map[string]string{"veth_mtu": ""}); len(out) != 0 || len(removed) != 1 {
		t.Errorf("a key the operator added was not removed: %v", out)
	}
}

func TestReadEncapsulationAndMTU(t *testing.T) {
	pool := func(ipip, vxlan string) map[string]any {
		return map[string]any{"spec": map[string]any{"ipipMode": ipip, "vxlanMode": vxlan}}
	}
	felixOn := map[string]any{"spec": map[string]any{"wireguardEnabled": true}}
	for want, got := range map[string]string{
		"VXLAN":     ManifestEncapsulation(nil, []map[string]any{pool("Never", "CrossSubnet")}),
		"IPIP":      ManifestEncapsulation(nil, []map[string]any{pool("Always", "")}),
		"None":      ManifestEncapsulation(nil, []map[string]any{pool("Never", "Never"), pool("", "")}),
		"WireGuard": ManifestEncapsulation(felixOn, []map[string]any{pool("Never", "Never")}),
	} {
		if got != want {
			t.Errorf("manifest: %s, want %s", got, want)
		}
	}
	inst := fixture(t, "installation.yaml")
	if got := OperatorEncapsulation(inst); got != "VXLAN" {
		t.Errorf("Installation fixture: %s", got)
	}
	if got := InstallationPodMTU(inst); got != 0 {
		t.Errorf("Installation fixture MTU %d, want 0 (from the NIC)", got)
	}
	if ConfigPodMTU(map[string]string{"veth_mtu": "1440"}) != 1440 || ConfigPodMTU(map[string]string{"veth_mtu": "0"}) != 0 || ConfigPodMTU(nil) != 0 {
		t.Error("ConfigPodMTU")
	}
}
