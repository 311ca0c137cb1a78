package flannel

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// editAll applies the wants in turn, as successive policies would, and returns the document
// and the originals recorded the way the controller records them: the first old value of each
// path wins.
func editAll(t *testing.T, doc string, wants ...mtu.Flannel) (string, map[string]string) {
	t.Helper()
	originals := map[string]string{}
	for _, w := range wants {
		remembered := cni.Remembered{}
		for p, v := range originals {
			if v != "" {
				remembered[p] = v
			}
		}
		out, changes, err := Edit([]byte(doc), w, remembered)
		if err != nil {
			t.Fatalf("Edit %+v: %v", w, err)
		}
		for _, c := range changes {
			if _, known := originals[c.Path]; !known {
				originals[c.Path] = c.Old
			}
		}
		doc = string(out)
	}
	return doc, originals
}

func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%v in %s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return reflect.DeepEqual(asFlannelReads(x), asFlannelReads(y))
}

// asFlannelReads drops an empty Backend, which flannel reads as none.
func asFlannelReads(doc any) any {
	if m, ok := doc.(map[string]any); ok {
		for k, v := range m {
			if b, ok := v.(map[string]any); ok && len(b) == 0 && strings.EqualFold(k, "Backend") {
				delete(m, k)
			}
		}
	}
	return doc
}

// TestRestoreUndoesEveryEdit: whatever the operator wrote, in one policy or several in turn,
// restoring the recorded originals gives the original document back: the same JSON, and the
// same text when the operator only added or replaced values.
func TestRestoreUndoesEveryEdit(t *testing.T) {
	vxlan := mtu.Flannel{BackendType: "vxlan", BackendMTU: 9000}
	hostGW := mtu.Flannel{BackendType: "host-gw"}
	wireguard := mtu.Flannel{BackendType: "wireguard", BackendMTU: 1500}
	sequences := map[string][]mtu.Flannel{
		"vxlan 9000":                 {vxlan},
		"vxlan 9000 then 1500":       {vxlan, {BackendType: "vxlan", BackendMTU: 1500}},
		"host-gw":                    {hostGW},
		"vxlan, host-gw, vxlan 1450": {vxlan, hostGW, {BackendType: "vxlan", BackendMTU: 1450}},
		"wireguard then host-gw":     {wireguard, hostGW},
	}
	for i, original := range fixtures {
		for name, wants := range sequences {
			t.Run(fmt.Sprintf("fixture %d, %s", i, name), func(t *testing.T) {
				edited, originals := editAll(t, original, wants...)
				restored, changes, err := Restore([]byte(edited), originals)
				if err != nil {
					t.Fatalf("Restore: %v", err)
				}
				if !sameJSON(t, string(restored), original) {
					t.Fatalf("restored:\n%s\nwant (as JSON):\n%s\nfrom:\n%s\noriginals %v", restored, original, edited, originals)
				}
				if edited != original && len(changes) == 0 {
					t.Errorf("no change reported")
				}
				again, more, err := Restore(restored, originals)
				if err != nil || len(more) != 0 || string(again) != string(restored) {
					t.Errorf("restoring twice changed %v (%v)", more, err)
				}
			})
		}
	}
}

func TestRestoreKeepsTheTextWhenNothingWasRemoved(t *testing.T) {
	edited, originals := editAll(t, upstreamVXLAN, mtu.Flannel{BackendType: "vxlan", BackendMTU: 9000})
	restored, _, err := Restore([]byte(edited), originals)
	if err != nil || string(restored) != upstreamVXLAN {
		t.Errorf("restored %q (%v), want exactly %q", restored, err, upstreamVXLAN)
	}
}

func TestRestoreRefusesAnOriginalThatIsNotJSON(t *testing.T) {
	_, _, err := Restore([]byte(upstreamVXLAN), map[string]string{"Backend.MTU": "{"})
	if !errors.Is(err, cni.ErrUnexpectedShape) {
		t.Errorf("Restore with a torn original: %v, want ErrUnexpectedShape", err)
	}
	if _, _, err := Restore([]byte(`{"Backend": [`), map[string]string{"Backend.MTU": ""}); !errors.Is(err, cni.ErrUnparseable) {
		t.Errorf("Restore of a document that does not parse: %v", err)
	}
}

// FuzzRestore: for any document the editor accepts and any two edits in turn, restoring the
// recorded originals gives back the same JSON.
func FuzzRestore(f *testing.F) {
	for i, doc := range fixtures {
		f.Add([]byte(doc), uint8(i), uint8(i+1), uint16(8950))
	}
	f.Fuzz(func(t *testing.T, doc []byte, first, second uint8, backendMTU uint16) {
		if len(doc) > maxFuzzDoc {
			return
		}
		var parsed any
		if json.Unmarshal(doc, &parsed) != nil {
			return
		}
		current := doc
		originals := map[string]string{}
		for _, w := range []mtu.Flannel{fuzzWant(first, backendMTU), fuzzWant(second, backendMTU/2)} {
			out, changes, err := Edit(current, w, nil)
			if err != nil {
				return // refused: nothing written, nothing to restore
			}
			for _, c := range changes {
				if _, known := originals[c.Path]; !known {
					originals[c.Path] = c.Old
				}
			}
			current = out
		}
		restored, _, err := Restore(current, originals)
		if err != nil {
			t.Fatalf("Restore of the editor's own output: %v\n%s", err, current)
		}
		var got any
		if err := json.Unmarshal(restored, &got); err != nil {
			t.Fatalf("restored document does not parse: %v\n%s", err, restored)
		}
		if !reflect.DeepEqual(asFlannelReads(got), asFlannelReads(parsed)) {
			t.Fatalf("restored:\n%s\nwant:\n%s", restored, doc)
		}
	})
}
