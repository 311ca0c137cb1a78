package antrea

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// fuzzWants are the combinations mtu.ForAntrea produces; the MTU is fuzzed separately.
var fuzzWants = []mtu.Antrea{
	{TrafficEncapMode: "encap", TunnelType: "geneve", TrafficEncryptionMode: "none"},
	{TrafficEncapMode: "encap", TunnelType: "vxlan", TrafficEncryptionMode: "none"},
	{TrafficEncapMode: "encap", TunnelType: "gre", TrafficEncryptionMode: "none"},
	{TrafficEncapMode: "encap", TunnelType: "geneve", TrafficEncryptionMode: "ipsec"},
	{TrafficEncapMode: "encap", TunnelType: "vxlan", TrafficEncryptionMode: "ipsec"},
	{TrafficEncapMode: "encap", TunnelType: "gre", TrafficEncryptionMode: "ipsec"},
	{TrafficEncapMode: "encap", TrafficEncryptionMode: "wireGuard"},
	{TrafficEncapMode: "noEncap", TrafficEncryptionMode: "none"},
}

var ownedKeys = map[string]bool{
	keyTrafficEncapMode: true, keyTunnelType: true, keyTrafficEncryptionMode: true, keyDefaultMTU: true,
}

// FuzzEdit checks, for any document and any settings the calculator can produce, that Edit
// either refuses with one of the cni sentinels, or returns a document that parses, says what
// the input said outside the owned keys, holds the wanted values, keeps every comment line,
// and needs no further edit.
func FuzzEdit(f *testing.F) {
	fixture := readFixture(f)
	seeds := []string{
		fixture,
		strings.ReplaceAll(fixture, "\n", "\r\n"),
		strings.Replace(fixture, `trafficEncapMode: "encap"`, `trafficEncapMode: "noEncap"`, 1),
		strings.Replace(fixture, "defaultMTU: 0", "#defaultMTU: 0", 1),
		strings.Replace(fixture, "defaultMTU: 0", "defaultMTU: # auto", 1),
		strings.Replace(fixture, `trafficEncryptionMode: "none"`, `trafficEncryptionMode: 'IPsec' # was none`, 1),
		"",
		"# defaultMTU: 0",
		"---\n# tunnelType: vxlan\n",
		"trafficEncapMode: ~\ntrafficEncryptionMode:\ndefaultMTU:\n  1400\n",
		"\ufeff  trafficEncapMode: encap\n  tunnelType: gre\n",
		"a: &m {defaultMTU: 1}\n<<: *m\n",
		"note: \"a\n#defaultMTU: 0\nb\"\n",
		"defaultMTU: {a: 1}\n",
		"defaultMTU: 1\ndefaultMTU: 2\n",
		"- 1\n",
		"a: 1\n...\n",
		"x: .nan\ny: [1, {z: 2}]\n",
	}
	seeds = append(seeds, generatedDocs(2, 20)...)
	for i, seed := range seeds {
		f.Add([]byte(seed), uint8(i), uint16(1500-i))
	}
	f.Fuzz(func(t *testing.T, doc []byte, choice uint8, mtuValue uint16) {
		want := fuzzWants[int(choice)%len(fuzzWants)]
		want.DefaultMTU, want.PodMTU = int(mtuValue), int(mtuValue)
		_ = checkEdit(t, doc, want) // refusals are fine; checkEdit checks they wrap a sentinel
	})
}

// checkEdit runs Edit and checks the properties FuzzEdit states; it returns Edit's error.
func checkEdit(t testing.TB, doc []byte, want mtu.Antrea) error {
	t.Helper()
	out, changes, err := Edit(doc, want)
	if err != nil {
		if !errors.Is(err, cni.ErrUnparseable) && !errors.Is(err, cni.ErrUnexpectedShape) {
			t.Fatalf("Edit(%q): error %v wraps neither sentinel", doc, err)
		}
		if out != nil || changes != nil {
			t.Fatalf("Edit(%q): output %q and changes %+v returned with error %v", doc, out, changes, err)
		}
		return err
	}

	// (a) The output parses to a mapping.
	var document yaml.Node
	if err := yaml.Unmarshal(out, &document); err != nil {
		t.Fatalf("Edit(%q) = %q, which does not parse: %v", doc, out, err)
	}
	if len(document.Content) != 1 || document.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("Edit(%q) = %q, whose top level is not a mapping", doc, out)
	}

	// (b) Everything but the owned keys says the same.
	before, after := decodeTopLevel(t, doc), decodeTopLevel(t, out)
	for key, value := range before {
		if !ownedKeys[fmt.Sprint(key)] && !sameValue(value, after[key]) {
			t.Fatalf("Edit(%q) = %q: %v changed from %#v to %#v", doc, out, key, value, after[key])
		}
	}
	for key := range after {
		if _, ok := before[key]; !ok && !ownedKeys[fmt.Sprint(key)] {
			t.Fatalf("Edit(%q) = %q: %v appeared", doc, out, key)
		}
	}

	// (c) The owned keys hold what was wanted.
	if after[keyTrafficEncapMode] != want.TrafficEncapMode {
		t.Fatalf("Edit(%q) = %q: trafficEncapMode %#v, want %q", doc, out, after[keyTrafficEncapMode], want.TrafficEncapMode)
	}
	if mode, _ := after[keyTrafficEncryptionMode].(string); !strings.EqualFold(mode, want.TrafficEncryptionMode) {
		t.Fatalf("Edit(%q) = %q: trafficEncryptionMode %#v, want %q", doc, out, after[keyTrafficEncryptionMode], want.TrafficEncryptionMode)
	}
	if after[keyDefaultMTU] != want.DefaultMTU {
		t.Fatalf("Edit(%q) = %q: defaultMTU %#v, want %d", doc, out, after[keyDefaultMTU], want.DefaultMTU)
	}
	if want.TunnelType == "" {
		if !sameValue(before[keyTunnelType], after[keyTunnelType]) {
			t.Fatalf("Edit(%q) = %q: tunnelType changed although not wanted", doc, out)
		}
	} else if after[keyTunnelType] != want.TunnelType {
		t.Fatalf("Edit(%q) = %q: tunnelType %#v, want %q", doc, out, after[keyTunnelType], want.TunnelType)
	}
	for _, c := range changes {
		if !ownedKeys[c.Path] || c.New == "" {
			t.Fatalf("Edit(%q): change %+v", doc, c)
		}
	}

	// (d) Comment lines survive, in order.
	assertCommentsKept(t, string(doc), string(out))

	// (e) A second edit finds nothing to do.
	again, changes, err := Edit(out, want)
	if err != nil || len(changes) != 0 || !bytes.Equal(again, out) {
		t.Fatalf("Edit(%q) = %q; editing that again: %q, changes %+v, error %v", doc, out, again, changes, err)
	}
	return nil
}

// decodeTopLevel decodes a document Edit accepted into its top-level keys and values.
func decodeTopLevel(t testing.TB, doc []byte) map[any]any {
	t.Helper()
	var decoded any
	if err := yaml.Unmarshal(doc, &decoded); err != nil {
		t.Fatalf("decoding %q: %v", doc, err)
	}
	top := map[any]any{}
	if decoded == nil {
		return top
	}
	value := reflect.ValueOf(decoded)
	if value.Kind() != reflect.Map {
		t.Fatalf("%q decodes to %T, not a map", doc, decoded)
	}
	for _, key := range value.MapKeys() {
		top[key.Interface()] = value.MapIndex(key).Interface()
	}
	return top
}

// sameValue is reflect.DeepEqual, except that NaN equals NaN.
func sameValue(a, b any) bool {
	return reflect.DeepEqual(a, b) || fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
}
