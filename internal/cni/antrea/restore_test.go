package antrea

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// restoreAfter applies the wants in turn and restores from the originals recorded the way the
// controller records them (the first old value of each path).
func restoreAfter(t *testing.T, doc string, wants ...mtu.Antrea) string {
	t.Helper()
	originals := map[string]string{}
	edited := doc
	for _, w := range wants {
		out, changes, err := Edit([]byte(edited), w)
		if err != nil {
			t.Fatalf("Edit %+v: %v", w, err)
		}
		for _, c := range changes {
			if _, known := originals[c.Path]; !known {
				originals[c.Path] = c.Old
			}
		}
		edited = string(out)
	}
	out, _, err := Restore([]byte(edited), originals)
	if err != nil {
		t.Fatalf("Restore: %v\n%s", err, edited)
	}
	return string(out)
}

// asAntreaReads fills the owned keys Antrea defaults when absent.
func asAntreaReads(t *testing.T, doc string) map[string]any {
	t.Helper()
	m := decodeMap(t, doc)
	for key, value := range map[string]any{keyTrafficEncapMode: "encap", keyTunnelType: "geneve", keyTrafficEncryptionMode: "none", keyDefaultMTU: 0} {
		if m[key] == nil {
			m[key] = value
		}
	}
	return m
}

func TestRestoreUndoesEveryEdit(t *testing.T) {
	fixture := readFixture(t)
	bare := "ovsBridge: br-int\n"
	for _, doc := range []string{fixture, bare} {
		for i, first := range fuzzWants {
			second := fuzzWants[(i+3)%len(fuzzWants)]
			first.DefaultMTU, second.DefaultMTU = 8950, 1450
			t.Run(fmt.Sprintf("%d: %+v then %+v", len(doc), first, second), func(t *testing.T) {
				restored := restoreAfter(t, doc, first, second)
				if got, want := asAntreaReads(t, restored), asAntreaReads(t, doc); !reflect.DeepEqual(got, want) {
					t.Errorf("restored reads as\n%v\nwant\n%v\n%s", got, want, restored)
				}
			})
		}
	}
	// The shipped file has every owned key: it comes back byte for byte.
	restored := restoreAfter(t, fixture, mtu.Antrea{TrafficEncapMode: "noEncap", TrafficEncryptionMode: "none", DefaultMTU: 9000})
	if restored != fixture {
		t.Errorf("restored fixture differs:\n%s", restored)
	}
}

func TestRestoreRefusesAnOriginalMTUThatIsNotANumber(t *testing.T) {
	if _, _, err := Restore([]byte("defaultMTU: 1450\n"), map[string]string{"defaultMTU": "auto"}); err == nil {
		t.Error("Restore wrote a defaultMTU Antrea cannot read")
	}
}

func TestRead(t *testing.T) {
	for doc, want := range map[string]Settings{
		readFixture(t): {TrafficEncapMode: "encap", TunnelType: "geneve", TrafficEncryptionMode: "none"},
		"trafficEncapMode: noEncap\ndefaultMTU: 1500\n":         {TrafficEncapMode: "noEncap", TunnelType: "geneve", TrafficEncryptionMode: "none", DefaultMTU: 1500},
		"trafficEncryptionMode: WireGuard\ntunnelType: vxlan\n": {TrafficEncapMode: "encap", TunnelType: "vxlan", TrafficEncryptionMode: "wireguard"},
		"defaultMTU:\n": {TrafficEncapMode: "encap", TunnelType: "geneve", TrafficEncryptionMode: "none"},
	} {
		got, err := Read([]byte(doc))
		if err != nil || got != want {
			t.Errorf("Read(%q) = %+v, %v; want %+v", doc[:min(len(doc), 40)], got, err, want)
		}
	}
	if _, err := Read([]byte("defaultMTU: lots\n")); err == nil {
		t.Error("Read accepted a defaultMTU Antrea cannot read")
	}
}
