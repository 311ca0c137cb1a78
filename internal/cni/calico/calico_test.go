package calico

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"github.com/mtu-operator/mtu-operator/internal/cni"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

// editor is the signature the three object editors share.
type editor func(map[string]any, mtu.Calico) (map[string]any, []cni.Change, error)

// fixture reads testdata/name the way a client hands out unstructured content: whole numbers
// as int64, others as float64.
func fixture(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return decodeObject(t, string(doc))
}

// decodeObject decodes a JSON object as unstructured content (int64 for whole numbers).
func decodeObject(t *testing.T, doc string) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := utiljson.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatalf("decoding %s: %v", doc, err)
	}
	return obj
}

// calicoConfigData reads the data of testdata/calico-config.yaml.
func calicoConfigData(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "calico-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	return cm.Data
}

// pathSegments splits a Change path into keys and list indexes:
// "spec.ipPools[1].cidr" gives "spec", "ipPools", 1, "cidr".
func pathSegments(path string) []any {
	var segments []any
	for part := range strings.SplitSeq(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		segments = append(segments, key)
		for rest != "" {
			index, after, _ := strings.Cut(rest, "]")
			i, err := strconv.Atoi(index)
			if err != nil {
				panic("bad path " + path)
			}
			segments = append(segments, i)
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return segments
}

// at returns the value at a Change path, nil when it is not there.
func at(obj map[string]any, path string) any {
	var current any = obj
	for _, segment := range pathSegments(path) {
		switch s := segment.(type) {
		case string:
			m, _ := current.(map[string]any)
			current = m[s]
		case int:
			l, _ := current.([]any)
			if s >= len(l) {
				return nil
			}
			current = l[s]
		}
	}
	return current
}

// setAt writes value at a Change path, creating missing objects on the way.
func setAt(obj map[string]any, path string, value any) {
	segments := pathSegments(path)
	var current any = obj
	for i, segment := range segments {
		last := i == len(segments)-1
		switch s := segment.(type) {
		case string:
			m := current.(map[string]any)
			if last {
				m[s] = value
				return
			}
			if m[s] == nil {
				m[s] = map[string]any{}
			}
			current = m[s]
		case int:
			l := current.([]any)
			if last {
				l[s] = value
				return
			}
			current = l[s]
		}
	}
}

// edited is obj deep-copied with the values in edits written at their paths.
func edited(obj map[string]any, edits map[string]any) map[string]any {
	out := runtime.DeepCopyJSON(obj)
	for path, value := range edits {
		setAt(out, path, value)
	}
	return out
}

// mustEdit runs edit and checks what every successful edit must hold: the input is untouched,
// and editing the result again changes nothing.
func mustEdit(t *testing.T, edit editor, obj map[string]any, want mtu.Calico) (map[string]any, []cni.Change) {
	t.Helper()
	before := runtime.DeepCopyJSON(obj)
	out, changes, err := edit(obj, want)
	if err != nil {
		t.Fatalf("edit(%+v): %v", want, err)
	}
	if !reflect.DeepEqual(obj, before) {
		t.Fatalf("edit(%+v) modified its input:\n%s", want, asJSON(obj))
	}
	again, more, err := edit(out, want)
	if err != nil || len(more) != 0 || !reflect.DeepEqual(again, out) {
		t.Fatalf("editing the result again with %+v: changes %v, error %v, object changed %t",
			want, more, err, !reflect.DeepEqual(again, out))
	}
	return out, changes
}

// mustReject runs edit on a document it must refuse, and checks the refusal.
func mustReject(t *testing.T, edit editor, doc string, want mtu.Calico, message string) {
	t.Helper()
	obj := decodeObject(t, doc)
	before := runtime.DeepCopyJSON(obj)
	out, changes, err := edit(obj, want)
	if !errors.Is(err, cni.ErrUnexpectedShape) {
		t.Fatalf("edit(%s): error %v, want one wrapping ErrUnexpectedShape", doc, err)
	}
	if !strings.Contains(err.Error(), message) {
		t.Errorf("edit(%s): error %q does not say %q", doc, err, message)
	}
	if out != nil || changes != nil {
		t.Errorf("edit(%s) returned %v and %v with its error", doc, out, changes)
	}
	if !reflect.DeepEqual(obj, before) {
		t.Errorf("edit(%s) modified its input", doc)
	}
}

func checkChanges(t *testing.T, got, want []cni.Change) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes:\n got %+v\nwant %+v", got, want)
	}
}

func checkObject(t *testing.T, got, want map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("edited object:\n got %s\nwant %s", asJSON(got), asJSON(want))
	}
}

func asJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestScalarText(t *testing.T) {
	tests := []struct {
		value any
		want  string
	}{
		{nil, ""},
		{"VXLANCrossSubnet", "VXLANCrossSubnet"},
		{"", ""},
		{true, "true"},
		{false, "false"},
		{int64(8950), "8950"},
		{float64(8950), "8950"},
		{1410.5, "1410.5"},
		{1e21, "1e+21"},
		{-1.0, "-1"},
		{1450, "1450"},
		{int32(1450), "1450"},
		{json.Number("1450"), "1450"},
	}
	for _, tt := range tests {
		if got := scalarText(tt.value); got != tt.want {
			t.Errorf("scalarText(%#v) = %q, want %q", tt.value, got, tt.want)
		}
	}
}

func TestSameNumber(t *testing.T) {
	tests := []struct {
		value any
		want  bool
	}{
		{int64(1450), true},
		{float64(1450), true},
		{1450, true},
		{int32(1450), true},
		{json.Number("1450"), true},
		{json.Number("1450.0"), true},
		{int64(1451), false},
		{1450.5, false},
		{json.Number("x"), false},
		{"1450", false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := sameNumber(tt.value, 1450); got != tt.want {
			t.Errorf("sameNumber(%#v, 1450) = %t, want %t", tt.value, got, tt.want)
		}
	}
}

func TestCopyObjectIsDeep(t *testing.T) {
	obj := decodeObject(t, `{"a":{"b":[1,{"c":"d"}]}}`)
	obj["typed"] = map[string]string{"k": "v"}
	obj["strings"] = []string{"x"}
	out := copyObject(obj)
	if !reflect.DeepEqual(out, obj) {
		t.Fatalf("copy %v differs from %v", out, obj)
	}
	out["a"].(map[string]any)["b"].([]any)[1].(map[string]any)["c"] = "changed"
	out["typed"].(map[string]string)["k"] = "changed"
	out["strings"].([]string)[0] = "changed"
	if at(obj, "a.b[1].c") != "d" || obj["typed"].(map[string]string)["k"] != "v" || obj["strings"].([]string)[0] != "x" {
		t.Errorf("changing the copy changed the original: %v", obj)
	}
	if got := copyObject(nil); got == nil || len(got) != 0 {
		t.Errorf("copyObject(nil) = %#v, want an empty object", got)
	}
}

func TestDescribeShortensLongStrings(t *testing.T) {
	got := describe(strings.Repeat("é", 100))
	if want := `the string "` + strings.Repeat("é", 64) + `…"`; got != want {
		t.Errorf("describe(long string) = %s", got)
	}
}

// withoutMemory adapts an editor that takes remembered values to the common test signature.
func withoutMemory(edit func(map[string]any, mtu.Calico, cni.Remembered) (map[string]any, []cni.Change, error)) func(map[string]any, mtu.Calico) (map[string]any, []cni.Change, error) {
	return func(obj map[string]any, want mtu.Calico) (map[string]any, []cni.Change, error) {
		return edit(obj, want, nil)
	}
}

// TestCrossSubnetSurvivesNone: CrossSubnet → None → a tunnel again ends CrossSubnet, given the
// values the controller remembers from the first change.
func TestCrossSubnetSurvivesNone(t *testing.T) {
	inst := map[string]any{"kind": "Installation", "spec": map[string]any{"calicoNetwork": map[string]any{
		"ipPools": []any{map[string]any{"cidr": "10.0.0.0/16", "encapsulation": "VXLANCrossSubnet"}},
	}}}
	none, first, err := EditInstallation(inst, mtu.Calico{PoolEncapsulation: "None"}, nil)
	if err != nil || len(first) != 1 {
		t.Fatalf("to None: %v %v", first, err)
	}
	back, _, err := EditInstallation(none, mtu.Calico{PoolEncapsulation: "VXLAN"}, cni.RememberedFrom(first))
	if err != nil {
		t.Fatal(err)
	}
	if got := back["spec"].(map[string]any)["calicoNetwork"].(map[string]any)["ipPools"].([]any)[0].(map[string]any)["encapsulation"]; got != "VXLANCrossSubnet" {
		t.Errorf("Installation pool after the round trip = %v; want VXLANCrossSubnet", got)
	}

	pool := map[string]any{"kind": "IPPool", "spec": map[string]any{"cidr": "10.0.0.0/16", "ipipMode": "CrossSubnet"}}
	nonePool, firstPool, err := EditIPPool(pool, mtu.Calico{IPIPMode: "Never", VXLANMode: "Never"}, nil)
	if err != nil || len(firstPool) != 1 {
		t.Fatalf("pool to None: %v %v", firstPool, err)
	}
	backPool, _, err := EditIPPool(nonePool, mtu.Calico{IPIPMode: "Always", VXLANMode: "Never"}, cni.RememberedFrom(firstPool))
	if err != nil {
		t.Fatal(err)
	}
	if got := backPool["spec"].(map[string]any)["ipipMode"]; got != "CrossSubnet" {
		t.Errorf("IPPool ipipMode after the round trip = %v; want CrossSubnet", got)
	}
}
