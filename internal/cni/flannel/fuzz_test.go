package flannel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// Input sizes beyond which FuzzEdit does not bother.
const (
	maxFuzzDoc        = 640
	maxFuzzRemembered = 64
)

// fuzzOwnedKeys are the Backend keys the rules may change, written out here independently
// of the package's own list.
var fuzzOwnedKeys = []string{
	"Type", "VNI", "Port", "MTU", "GBP", "Learning", "DirectRouting", "MacPrefix",
	"ListenPort", "ListenPortV6", "PSK", "PersistentKeepaliveInterval", "Mode",
}

func fuzzOwned(key string) bool {
	for _, owned := range fuzzOwnedKeys {
		if strings.EqualFold(key, owned) {
			return true
		}
	}
	return false
}

// fuzzWant picks what to ask for; host-gw and ipip never get an MTU (Edit refuses one).
func fuzzWant(backend uint8, backendMTU uint16) mtu.Flannel {
	switch backend % 5 {
	case 0:
		return mtu.Flannel{BackendType: "vxlan", BackendMTU: int(backendMTU)}
	case 1:
		return mtu.Flannel{BackendType: "host-gw"}
	case 2:
		return mtu.Flannel{BackendType: "ipip"}
	case 3:
		return mtu.Flannel{BackendType: "wireguard", BackendMTU: int(backendMTU)}
	default:
		return mtu.Flannel{BackendType: "VXLAN", BackendMTU: int(backendMTU)}
	}
}

// backendSpan finds the Backend value in doc with encoding/json's decoder, independently of
// the package's scanner; ok is false when the document has no Backend.
func backendSpan(t *testing.T, doc []byte) (start, end int, ok bool) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	if _, err := dec.Token(); err != nil {
		t.Fatalf("reading accepted document: %v", err)
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			t.Fatalf("reading accepted document: %v", err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("reading accepted document: %v", err)
		}
		end := int(dec.InputOffset())
		if strings.EqualFold(key.(string), backendKey) {
			return end - len(raw), end, true
		}
	}
	return 0, 0, false
}

// backendOf returns the Backend member of a decoded document, or nil.
func backendOf(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	for key, value := range doc {
		if strings.EqualFold(key, backendKey) {
			backend, ok := value.(map[string]any)
			if !ok {
				t.Fatalf("Backend is %T in an accepted document", value)
			}
			return backend
		}
	}
	return nil
}

// FuzzEdit checks, for any document, that Edit either rejects it with one of the two
// sentinels and no output, or returns a JSON object that differs from the input only inside
// Backend, only in keys the rules own, holds the asked type and MTU, and that Edit leaves
// alone on a second pass.
//
// Decided behaviour for odd inputs, which the checks follow: invalid UTF-8, a top-level
// null (or any non-object) and anything json.Valid rejects are ErrUnparseable; Backend or an
// owned Backend key present twice (in any case) is ErrUnexpectedShape; other repeated keys
// and surrounding whitespace are kept byte for byte.
func FuzzEdit(f *testing.F) {
	for i, doc := range fixtures {
		f.Add([]byte(doc), uint8(i), uint16(8950), "4096")
	}
	f.Add([]byte(`{}`), uint8(0), uint16(1450), "1")
	f.Add([]byte("{\n}"), uint8(3), uint16(1420), "")
	f.Add([]byte(`{"Backend":{"VNI":7,"Foo":{"MTU":[1,2]}},"Foo":"Backend"}`), uint8(1), uint16(0), "{")
	f.Add([]byte(`{"backend":{"type":"VXLAN","vni":1,"Vni":2}}`), uint8(0), uint16(1), "1")
	f.Add([]byte(`{"Backend":{"T\u0079pe":"host-gw","P\u017f\u212a":"k"}}`), uint8(3), uint16(9000), `"x"`)
	f.Add([]byte(` null `), uint8(0), uint16(0), "")
	f.Add([]byte("{\"a\":\"\xff\"}"), uint8(0), uint16(0), "")

	f.Fuzz(func(t *testing.T, doc []byte, backend uint8, backendMTU uint16, rememberedVNI string) {
		// Real documents are a few hundred bytes. Longer inputs add nothing but make Go's
		// minimizer, which is quadratic in the input length, spend the whole run on one input.
		if len(doc) > maxFuzzDoc || len(rememberedVNI) > maxFuzzRemembered {
			return
		}
		want := fuzzWant(backend, backendMTU)
		remembered := cni.Remembered{
			"Backend.VNI":           rememberedVNI,
			"Backend.port":          "4789",
			"Backend.MTU":           "1",
			"Backend.ListenPort":    "51820",
			"Backend.DirectRouting": "true",
		}
		out, changes, err := Edit(doc, want, remembered)
		if err != nil {
			if !errors.Is(err, cni.ErrUnparseable) && !errors.Is(err, cni.ErrUnexpectedShape) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			if out != nil || changes != nil {
				t.Fatalf("error %v came with output %q and changes %v", err, out, changes)
			}
			return
		}

		// (a) Both documents are JSON objects.
		before, err := decodeObject(doc)
		if err != nil {
			t.Fatalf("accepted a document that is not a JSON object (%v): %q", err, doc)
		}
		after, err := decodeObject(out)
		if err != nil {
			t.Fatalf("output is not a JSON object (%v): %q", err, out)
		}

		// (b) Every top-level key but Backend is present in both and unchanged.
		for _, pair := range [][2]map[string]any{{before, after}, {after, before}} {
			for key, value := range pair[0] {
				if strings.EqualFold(key, backendKey) {
					continue
				}
				if other, ok := pair[1][key]; !ok || !reflect.DeepEqual(value, other) {
					t.Fatalf("top-level %q changed: %v became %v\nin:  %q\nout: %q", key, value, other, doc, out)
				}
			}
		}

		// (c) Inside Backend only owned keys differ, and Type and MTU are as asked.
		backendBefore, backendAfter := backendOf(t, before), backendOf(t, after)
		if backendAfter == nil {
			t.Fatalf("output has no Backend: %q", out)
		}
		for _, pair := range [][2]map[string]any{{backendBefore, backendAfter}, {backendAfter, backendBefore}} {
			for key, value := range pair[0] {
				if fuzzOwned(key) {
					continue
				}
				if other, ok := pair[1][key]; !ok || !reflect.DeepEqual(value, other) {
					t.Fatalf("Backend.%s is not the rules' but changed: %v became %v\nin:  %q\nout: %q", key, value, other, doc, out)
				}
			}
		}
		var types, mtus []any
		for key, value := range backendAfter {
			if strings.EqualFold(key, typeKey) {
				types = append(types, value)
			}
			if strings.EqualFold(key, mtuKey) {
				mtus = append(mtus, value)
			}
		}
		if len(types) != 1 {
			t.Fatalf("output Backend has types %v: %q", types, out)
		}
		if got, ok := types[0].(string); !ok || !strings.EqualFold(got, want.BackendType) {
			t.Fatalf("output Backend.Type is %v, want %s: %q", types[0], want.BackendType, out)
		}
		if want.BackendMTU > 0 && (len(mtus) != 1 || mtus[0] != json.Number(strconv.Itoa(want.BackendMTU))) {
			t.Fatalf("output Backend.MTU is %v, want %d: %q", mtus, want.BackendMTU, out)
		}

		// The edit is minimal: the bytes that differ lie inside the Backend value, or, when
		// the document had none, are only an insertion into whitespace.
		if len(changes) == 0 && !bytes.Equal(out, doc) {
			t.Fatalf("no changes reported, yet the output differs:\nin:  %q\nout: %q", doc, out)
		}
		prefix, suffix := commonEnds(doc, out)
		changedEnd := len(doc) - suffix
		if start, end, ok := backendSpan(t, doc); ok {
			if len(changes) > 0 && (prefix < start || changedEnd > end) {
				t.Fatalf("bytes %d..%d changed, outside Backend at %d..%d:\nin:  %q\nout: %q", prefix, changedEnd, start, end, doc, out)
			}
		} else if changedEnd > prefix && len(bytes.TrimSpace(doc[prefix:changedEnd])) > 0 {
			t.Fatalf("adding Backend changed bytes %d..%d: %q\nin:  %q\nout: %q", prefix, changedEnd, doc[prefix:changedEnd], doc, out)
		}
		for _, c := range changes {
			if !strings.HasPrefix(c.Path, "Backend.") || c.Old == c.New ||
				(c.Old != "" && !json.Valid([]byte(c.Old))) || (c.New != "" && !json.Valid([]byte(c.New))) {
				t.Fatalf("bad change %+v", c)
			}
		}

		// (d) Edit is idempotent.
		again, more, err := Edit(out, want, remembered)
		if err != nil || len(more) != 0 || !bytes.Equal(again, out) {
			t.Fatalf("second edit gave %v, %v:\nfirst:  %q\nsecond: %q", more, err, out, again)
		}
	})
}

// decodeObject decodes a JSON object into a map, numbers kept as written (1E700 is valid
// JSON, though no float64 holds it).
func decodeObject(doc []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var object map[string]any
	if err := dec.Decode(&object); err != nil {
		return nil, err
	}
	if object == nil {
		return nil, errors.New("null")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("more after the object: %w", err)
	}
	return object, nil
}

// commonEnds returns the lengths of the longest common prefix and suffix of a and b, not
// overlapping in either.
func commonEnds(a, b []byte) (prefix, suffix int) {
	limit := min(len(a), len(b))
	for prefix < limit && a[prefix] == b[prefix] {
		prefix++
	}
	for suffix < limit-prefix && a[len(a)-1-suffix] == b[len(b)-1-suffix] {
		suffix++
	}
	return prefix, suffix
}
