package calico

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// fuzzWant turns the fuzzer's choice into a want: each field from a few values, zero and
// empty (no opinion) and values outside Calico's enums included.
func fuzzWant(choice uint16) mtu.Calico {
	pick := func(values []string, shift uint) string { return values[int(choice>>shift)&3] }
	tunnel := func(bit uint, value int) int {
		if choice&(1<<bit) != 0 {
			return value
		}
		return 0
	}
	podMTUs := []int{1450, 0, 1280, 8950}
	return mtu.Calico{
		PodMTU:            podMTUs[choice&3],
		PoolEncapsulation: pick([]string{"VXLAN", "IPIP", "None", ""}, 2),
		IPIPMode:          pick([]string{"Always", "Never", "", "CrossSubnet"}, 4),
		VXLANMode:         pick([]string{"Never", "Always", "", "CrossSubnet"}, 6),
		WireGuard:         choice&(1<<8) != 0,
		VXLANMTU:          tunnel(9, 1450),
		VXLANMTUV6:        tunnel(10, 1430),
		IPIPMTU:           tunnel(11, 1480),
		WireGuardMTU:      tunnel(12, 1440),
		WireGuardMTUV6:    tunnel(13, 1420),
	}
}

// fuzzDecode decodes doc as an object, twice so that one copy can show the input was left
// alone. The top bit of choice picks the decoder: encoding/json gives float64 numbers,
// apimachinery's gives int64 for whole ones as a client does.
func fuzzDecode(doc []byte, choice uint16) (obj, pristine map[string]any, ok bool) {
	decode := json.Unmarshal
	if choice&(1<<15) != 0 {
		decode = utiljson.Unmarshal
	}
	if decode(doc, &obj) != nil || obj == nil || decode(doc, &pristine) != nil {
		return nil, nil, false
	}
	return obj, pristine, true
}

// fuzzSeeds adds the fixtures, as JSON, and a few odd documents.
func fuzzSeeds(f *testing.F, fixtures []string, odd ...string) {
	for _, name := range fixtures {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		doc, err := yaml.YAMLToJSON(raw)
		if err != nil {
			f.Fatal(err)
		}
		for _, choice := range []uint16{0, 0x8000 | 0x3f05, 0x0155, 0x82aa, 0x3fff} {
			f.Add(doc, choice)
		}
	}
	for _, doc := range odd {
		f.Add([]byte(doc), uint16(0x8105))
	}
}

// ownedFields describes one editor for fuzzing: which paths it may change and what they
// must hold afterwards.
type ownedFields struct {
	edit editor
	// paths matches every path the editor may report.
	paths *regexp.Regexp
	// strip deletes from obj the fields want has an opinion on, so that what is left must
	// be the same before and after the edit.
	strip func(obj map[string]any, want mtu.Calico)
	// check reports how out's owned fields differ from what want asks, given the input in.
	check func(in, out map[string]any, want mtu.Calico) error
}

// fuzzEdit checks the properties every edit must have, whatever the document.
func fuzzEdit(t *testing.T, owned ownedFields, doc []byte, choice uint16) {
	obj, pristine, ok := fuzzDecode(doc, choice)
	if !ok {
		t.Skip("not a JSON object")
	}
	want := fuzzWant(choice)
	out, changes, err := owned.edit(obj, want)
	if !reflect.DeepEqual(obj, pristine) {
		t.Fatalf("input modified (error %v):\n got %s\nwant %s", err, asJSON(obj), asJSON(pristine))
	}
	if err != nil {
		if !errors.Is(err, cni.ErrUnexpectedShape) && !errors.Is(err, cni.ErrUnparseable) {
			t.Fatalf("error %v wraps neither sentinel", err)
		}
		return
	}

	for _, c := range changes {
		old := at(pristine, c.Path)
		now := at(out, c.Path)
		if !owned.paths.MatchString(c.Path) || c.Old != scalarText(old) || c.New != scalarText(now) || c.Old == c.New {
			t.Fatalf("change %+v: not owned, or not what the documents hold (%#v, %#v)", c, old, now)
		}
	}
	if (len(changes) == 0) != reflect.DeepEqual(out, pristine) {
		t.Fatalf("%d changes, but the object changed: %t\n%s", len(changes), !reflect.DeepEqual(out, pristine), asJSON(out))
	}

	strippedIn, strippedOut := copyObject(pristine), copyObject(out)
	owned.strip(strippedIn, want)
	owned.strip(strippedOut, want)
	if !reflect.DeepEqual(strippedIn, strippedOut) {
		t.Fatalf("changed beyond the owned fields for %+v:\n in %s\nout %s", want, asJSON(pristine), asJSON(out))
	}

	if err := owned.check(pristine, out, want); err != nil {
		t.Fatalf("owned fields wrong for %+v: %v\n in %s\nout %s", want, err, asJSON(pristine), asJSON(out))
	}

	again, more, err := owned.edit(out, want)
	if err != nil || len(more) != 0 || !reflect.DeepEqual(again, out) {
		t.Fatalf("editing again with %+v: changes %+v, error %v\n%s", want, more, err, asJSON(out))
	}
}

// objectAt returns the object at path, or nil.
func objectAt(obj map[string]any, path string) map[string]any {
	v := at(obj, path)
	m, _ := v.(map[string]any)
	return m
}

// pruneEmpty deletes parent[key] when it is null or an empty object, as an editor may have
// created it to hold an owned field.
func pruneEmpty(parent map[string]any, key string) {
	if parent == nil {
		return
	}
	if v, present := parent[key]; present && (v == nil || reflect.DeepEqual(v, map[string]any{})) {
		delete(parent, key)
	}
}

func isIPv6Pool(pool map[string]any) bool {
	cidr, _ := pool["cidr"].(string)
	return strings.Contains(cidr, ":")
}

// numberIs says whether v is the number n, whatever its Go type.
func numberIs(v any, n int) bool {
	return v != nil && fmt.Sprint(v) == strconv.Itoa(n)
}

var installationFields = ownedFields{
	edit:  withoutMemory(EditInstallation),
	paths: regexp.MustCompile(`^spec\.calicoNetwork\.(mtu|ipPools\[\d+\]\.encapsulation)$`),
	strip: func(obj map[string]any, want mtu.Calico) {
		network := objectAt(obj, "spec.calicoNetwork")
		if want.PodMTU != 0 && network != nil {
			delete(network, "mtu")
		}
		if want.PoolEncapsulation != "" && network != nil {
			pools, _ := network["ipPools"].([]any)
			for _, pool := range pools {
				if pool, ok := pool.(map[string]any); ok {
					delete(pool, "encapsulation")
				}
			}
		}
		pruneEmpty(objectAt(obj, "spec"), "calicoNetwork")
		pruneEmpty(obj, "spec")
	},
	check: func(in, out map[string]any, want mtu.Calico) error {
		if mtuNow := at(out, "spec.calicoNetwork.mtu"); want.PodMTU != 0 && !numberIs(mtuNow, want.PodMTU) {
			return fmt.Errorf("mtu is %#v", mtuNow)
		}
		if want.PoolEncapsulation == "" {
			return nil
		}
		pools := at(out, "spec.calicoNetwork.ipPools")
		poolList, _ := pools.([]any)
		for i := range poolList {
			path := fmt.Sprintf("spec.calicoNetwork.ipPools[%d].encapsulation", i)
			before := at(in, path)
			after := at(out, path)
			expected := want.PoolEncapsulation
			if (before == "IPIPCrossSubnet" || before == "VXLANCrossSubnet") && (expected == "IPIP" || expected == "VXLAN") {
				expected += "CrossSubnet"
			}
			pool, _ := poolList[i].(map[string]any)
			if isIPv6Pool(pool) && strings.HasPrefix(expected, "IPIP") {
				if !reflect.DeepEqual(before, after) {
					return fmt.Errorf("IPv6 pool %d went from %#v to %#v", i, before, after)
				}
			} else if after != expected {
				return fmt.Errorf("pool %d is %#v, want %s", i, after, expected)
			}
		}
		return nil
	},
}

var felixTunnelMTUFields = []string{"vxlanMTU", "vxlanMTUV6", "ipipMTU", "wireguardMTU", "wireguardMTUV6"}

func felixWantedMTUs(want mtu.Calico) []int {
	return []int{want.VXLANMTU, want.VXLANMTUV6, want.IPIPMTU, want.WireGuardMTU, want.WireGuardMTUV6}
}

var felixFields = ownedFields{
	edit:  EditFelixConfiguration,
	paths: regexp.MustCompile(`^spec\.(vxlanMTU|vxlanMTUV6|ipipMTU|wireguardMTU|wireguardMTUV6|wireguardEnabled|wireguardEnabledV6)$`),
	strip: func(obj map[string]any, want mtu.Calico) {
		if spec := objectAt(obj, "spec"); spec != nil {
			for i, value := range felixWantedMTUs(want) {
				if value != 0 {
					delete(spec, felixTunnelMTUFields[i])
				}
			}
			delete(spec, "wireguardEnabled")
			if !want.WireGuard || want.WireGuardMTUV6 != 0 {
				delete(spec, "wireguardEnabledV6")
			}
		}
		pruneEmpty(obj, "spec")
	},
	check: func(_, out map[string]any, want mtu.Calico) error {
		spec := objectAt(out, "spec")
		for i, value := range felixWantedMTUs(want) {
			if value != 0 && !numberIs(spec[felixTunnelMTUFields[i]], value) {
				return fmt.Errorf("%s is %#v, want %d", felixTunnelMTUFields[i], spec[felixTunnelMTUFields[i]], value)
			}
		}
		v4, v6 := spec["wireguardEnabled"], spec["wireguardEnabledV6"]
		if want.WireGuard && (v4 != true || (want.WireGuardMTUV6 != 0 && v6 != true)) {
			return fmt.Errorf("WireGuard wanted, switches %#v and %#v", v4, v6)
		}
		if !want.WireGuard && (v4 == true || v6 == true) {
			return fmt.Errorf("WireGuard not wanted, switches %#v and %#v", v4, v6)
		}
		return nil
	},
}

var ipPoolFields = ownedFields{
	edit:  withoutMemory(EditIPPool),
	paths: regexp.MustCompile(`^spec\.(ipipMode|vxlanMode)$`),
	strip: func(obj map[string]any, want mtu.Calico) {
		if spec := objectAt(obj, "spec"); spec != nil {
			if want.IPIPMode != "" && !isIPv6Pool(spec) {
				delete(spec, "ipipMode")
			}
			if want.VXLANMode != "" {
				delete(spec, "vxlanMode")
			}
		}
		pruneEmpty(obj, "spec")
	},
	check: func(in, out map[string]any, want mtu.Calico) error {
		before, after := objectAt(in, "spec"), objectAt(out, "spec")
		wasCrossSubnet := before["ipipMode"] == "CrossSubnet" || before["vxlanMode"] == "CrossSubnet" ||
			want.IPIPMode == "CrossSubnet" || want.VXLANMode == "CrossSubnet"
		mode := func(v any) any {
			if v == nil || v == "" {
				return "Never"
			}
			return v
		}
		for _, field := range []struct{ key, want string }{{"ipipMode", want.IPIPMode}, {"vxlanMode", want.VXLANMode}} {
			expected := field.want
			if expected == "Always" && wasCrossSubnet {
				expected = "CrossSubnet"
			}
			switch {
			case field.key == "ipipMode" && isIPv6Pool(before):
				if !reflect.DeepEqual(before[field.key], after[field.key]) {
					return fmt.Errorf("IPv6 pool's ipipMode went from %#v to %#v", before[field.key], after[field.key])
				}
			case expected != "" && mode(after[field.key]) != expected:
				return fmt.Errorf("%s is %#v, want %s", field.key, after[field.key], expected)
			}
		}
		return nil
	},
}

func FuzzEditInstallation(f *testing.F) {
	fuzzSeeds(f, []string{"installation.yaml"},
		`{}`, `{"spec":null}`, `{"kind":"Installation","spec":{"calicoNetwork":{"mtu":1450.5,"ipPools":[{}]}}}`,
		`{"spec":{"calicoNetwork":{"ipPools":[{"cidr":"fd00::/56","encapsulation":"IPIPCrossSubnet"},{"cidr":"10.0.0.0/8","encapsulation":"Bogus"}]}}}`,
		`{"spec":{"calicoNetwork":{"mtu":"1450"}}}`, `{"spec":{"calicoNetwork":{"ipPools":[7]}}}`)
	f.Fuzz(func(t *testing.T, doc []byte, choice uint16) { fuzzEdit(t, installationFields, doc, choice) })
}

func FuzzEditFelixConfiguration(f *testing.F) {
	fuzzSeeds(f, []string{"felixconfiguration.yaml"},
		`{}`, `{"spec":{"wireguardEnabled":true,"wireguardEnabledV6":true,"wireguardMTU":1440}}`,
		`{"spec":{"vxlanMTU":1450.0,"ipipMTU":0,"wireguardEnabled":false}}`, `{"spec":{"wireguardEnabled":"yes"}}`)
	f.Fuzz(func(t *testing.T, doc []byte, choice uint16) { fuzzEdit(t, felixFields, doc, choice) })
}

func FuzzEditIPPool(f *testing.F) {
	fuzzSeeds(f, []string{"ippool.yaml", "ippool-v6.yaml"},
		`{}`, `{"spec":{"cidr":"10.0.0.0/8","ipipMode":"CrossSubnet","vxlanMode":""}}`,
		`{"spec":{"cidr":"fd00::/56","ipipMode":"Always","vxlanMode":"CrossSubnet"}}`, `{"spec":{"cidr":1}}`)
	f.Fuzz(func(t *testing.T, doc []byte, choice uint16) { fuzzEdit(t, ipPoolFields, doc, choice) })
}

func FuzzEditCalicoConfig(f *testing.F) {
	raw, err := os.ReadFile(filepath.Join("testdata", "calico-config.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	var cm struct {
		Data json.RawMessage `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		f.Fatal(err)
	}
	for _, choice := range []uint16{0, 1, 2, 3} {
		f.Add([]byte(cm.Data), choice)
	}
	f.Add([]byte(`{}`), uint16(0))
	f.Add([]byte(`{"veth_mtu":"1450"}`), uint16(0))
	f.Fuzz(func(t *testing.T, doc []byte, choice uint16) {
		var data, pristine map[string]string
		if json.Unmarshal(doc, &data) != nil || data == nil || json.Unmarshal(doc, &pristine) != nil {
			t.Skip("not a JSON object of strings")
		}
		want := fuzzWant(choice)
		out, changes, err := EditCalicoConfig(data, want)
		if !maps.Equal(data, pristine) {
			t.Fatalf("input modified: %v", data)
		}
		if err != nil {
			if !errors.Is(err, cni.ErrUnexpectedShape) && !errors.Is(err, cni.ErrUnparseable) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		for _, c := range changes {
			if c.Path != "veth_mtu" || c.Old != pristine["veth_mtu"] || c.New != out["veth_mtu"] || c.Old == c.New {
				t.Fatalf("change %+v does not match %v -> %v", c, pristine, out)
			}
		}
		strippedIn, strippedOut := maps.Clone(pristine), maps.Clone(out)
		if want.PodMTU != 0 {
			delete(strippedIn, "veth_mtu")
			delete(strippedOut, "veth_mtu")
			if out["veth_mtu"] != strconv.Itoa(want.PodMTU) {
				t.Fatalf("veth_mtu is %q, want %d", out["veth_mtu"], want.PodMTU)
			}
		}
		if !maps.Equal(strippedIn, strippedOut) {
			t.Fatalf("changed beyond veth_mtu: %v -> %v", pristine, out)
		}
		again, more, err := EditCalicoConfig(out, want)
		if err != nil || len(more) != 0 || !maps.Equal(again, out) {
			t.Fatalf("editing again: changes %+v, error %v", more, err)
		}
	})
}
