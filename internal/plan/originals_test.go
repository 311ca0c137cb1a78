package plan

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/cni"
)

func TestOriginalsKeepTheFirstValue(t *testing.T) {
	first := Originals{}.With("net-conf.json: ", []cni.Change{
		{Path: "Backend.Type", Old: `"vxlan"`, New: `"host-gw"`},
		{Path: "Backend.VNI", Old: "4096"},
		{Path: "Backend.MTU", Old: "", New: "8950"},
	})
	// The operator changes the fields again, from its own values: the originals stay.
	second := first.With("net-conf.json: ", []cni.Change{
		{Path: "Backend.Type", Old: `"host-gw"`, New: `"vxlan"`},
		{Path: "Backend.MTU", Old: "8950", New: "1450"},
		{Path: "Backend.Port", Old: "", New: "4789"},
	})
	want := Originals{
		"net-conf.json: Backend.Type": `"vxlan"`, "net-conf.json: Backend.VNI": "4096",
		"net-conf.json: Backend.MTU": "", "net-conf.json: Backend.Port": "",
	}
	if !reflect.DeepEqual(second, want) {
		t.Errorf("originals %v, want %v", second, want)
	}
	if len(first) != 3 {
		t.Errorf("With changed its receiver: %v", first)
	}

	annotations := map[string]string{OriginalsAnnotation: second.Annotation()}
	back, err := ParseOriginals(annotations)
	if err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("round trip: %v, %v", back, err)
	}
	if got, want := back.Remembered("net-conf.json: "), (cni.Remembered{"Backend.Type": `"vxlan"`, "Backend.VNI": "4096"}); !reflect.DeepEqual(got, want) {
		t.Errorf("Remembered %v, want %v (absent originals are nothing to restore)", got, want)
	}
	if got := back.Remembered("other: "); len(got) != 0 {
		t.Errorf("Remembered for another key: %v", got)
	}
}

func TestOriginalsThatDoNotParseAreAnError(t *testing.T) {
	for _, raw := range []string{"{", `["a"]`, `{"a": 1}`} {
		if _, err := ParseOriginals(map[string]string{OriginalsAnnotation: raw}); err == nil || !strings.Contains(err.Error(), "fix or remove it") {
			t.Errorf("%q: %v, want an error saying what to do", raw, err)
		}
	}
	if o, err := ParseOriginals(nil); err != nil || len(o) != 0 {
		t.Errorf("no annotation: %v, %v", o, err)
	}
}
