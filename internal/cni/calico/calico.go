// Package calico edits Calico's configuration so that pods get the MTU and encapsulation the
// operator computed. Operator installs keep both in the Installation; manifest installs spread
// them over the FelixConfiguration, the IPPools and the calico-config ConfigMap.
//
// The editors work on unstructured content as the API server returns it (objects, lists,
// strings, bools, and numbers as int64 or float64). Each one deep-copies its input, changes
// only the fields the operator owns, and returns the copy with the list of changes; the input
// is never modified. A zero value in mtu.Calico (0, "") means "no opinion": the field it would
// set is left alone. An owned field of the wrong type is not overwritten: the editor returns an
// error wrapping cni.ErrUnexpectedShape that names the field.
package calico

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/mtu-operator/mtu-operator/internal/cni"
)

// Calico's spellings of encapsulations and pool modes.
const (
	encapIPIP   = "IPIP"
	encapVXLAN  = "VXLAN"
	crossSubnet = "CrossSubnet"
	modeAlways  = "Always"
	modeNever   = "Never"
)

// copyObject deep-copies an object's content; a nil object becomes an empty one.
func copyObject(obj map[string]any) map[string]any {
	if obj == nil {
		return map[string]any{}
	}
	out, _ := copyValue(obj).(map[string]any)
	return out
}

// copyValue deep-copies decoded JSON. Scalars are immutable and are shared; the few typed
// containers a caller might have put in are copied too.
func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for key, value := range v {
			out[key] = copyValue(value)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, value := range v {
			out[i] = copyValue(value)
		}
		return out
	case map[string]string:
		return maps.Clone(v)
	case []string:
		return slices.Clone(v)
	default:
		return v
	}
}

// checkKind refuses an object of another kind, so that a mix-up in the caller cannot write
// pool modes into a FelixConfiguration. An object without a kind is accepted.
func checkKind(obj map[string]any, want string) error {
	kind, present := obj["kind"]
	if !present || kind == nil || kind == want {
		return nil
	}
	if s, ok := kind.(string); ok {
		return fmt.Errorf("%w: the object's kind is %s, not %s", cni.ErrUnexpectedShape, s, want)
	}
	return fmt.Errorf("%w: the object's kind is %s, not %s", cni.ErrUnexpectedShape, describe(kind), want)
}

// editableSpec copies obj for editing, refuses another kind, and returns the copy with its
// spec (nil when absent; ensureObject adds it on the first change).
func editableSpec(obj map[string]any, kind string) (out, spec map[string]any, err error) {
	out = copyObject(obj)
	if err := checkKind(out, kind); err != nil {
		return nil, nil, err
	}
	if spec, err = objectField(out, "spec", "spec"); err != nil {
		return nil, nil, err
	}
	return out, spec, nil
}

// ensureObject returns m, attached first as parent[key] when it is nil: an edit creates the
// objects on the way to the field it writes, and only when it writes.
func ensureObject(parent map[string]any, key string, m map[string]any) map[string]any {
	if m == nil {
		m = map[string]any{}
		parent[key] = m
	}
	return m
}

// objectField returns parent[key] as an object, or nil when it is absent or null.
func objectField(parent map[string]any, key, path string) (map[string]any, error) {
	switch v := parent[key].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return v, nil
	default:
		return nil, shapeError(path, v, "an object")
	}
}

// listField returns parent[key] as a list, or nil when it is absent or null.
func listField(parent map[string]any, key, path string) ([]any, error) {
	switch v := parent[key].(type) {
	case nil:
		return nil, nil
	case []any:
		return v, nil
	default:
		return nil, shapeError(path, v, "a list")
	}
}

// stringField returns parent[key] as a string; present is false when it is absent or null.
func stringField(parent map[string]any, key, path string) (value string, present bool, err error) {
	switch v := parent[key].(type) {
	case nil:
		return "", false, nil
	case string:
		return v, true, nil
	default:
		return "", false, shapeError(path, v, "a string")
	}
}

// boolField returns parent[key] as a bool; present is false when it is absent or null.
func boolField(parent map[string]any, key, path string) (value, present bool, err error) {
	switch v := parent[key].(type) {
	case nil:
		return false, false, nil
	case bool:
		return v, true, nil
	default:
		return false, false, shapeError(path, v, "true or false")
	}
}

// numberField returns parent[key] when it is a number, nil when it is absent or null.
func numberField(parent map[string]any, key, path string) (any, error) {
	v := parent[key]
	if v == nil {
		return nil, nil
	}
	if _, ok := asFloat(v); !ok {
		return nil, shapeError(path, v, "a number")
	}
	return v, nil
}

// asFloat reads any of the number types decoders produce.
func asFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int32:
		return float64(v), true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	default:
		return 0, false
	}
}

// sameNumber says whether a decoded number equals want, whatever its Go type.
func sameNumber(v any, want int) bool {
	switch v := v.(type) {
	case int64:
		return v == int64(want)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i == int64(want)
		}
	}
	f, ok := asFloat(v)
	return ok && f == float64(want)
}

// shapeError reports an owned field whose type the editors do not understand.
func shapeError(path string, got any, want string) error {
	return fmt.Errorf("%w: %s is %s, not %s", cni.ErrUnexpectedShape, path, describe(got), want)
}

// describe names a decoded value for an error message.
func describe(v any) string {
	const longest = 64
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if runes := []rune(v); len(runes) > longest {
			v = string(runes[:longest]) + "…"
		}
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("the boolean %t", v)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	if _, ok := asFloat(v); ok {
		return "the number " + scalarText(v)
	}
	return fmt.Sprintf("a value of Go type %T", v)
}

// scalarText writes a value for cni.Change as a person reads it: 8950, VXLAN, true; "" for
// an absent field.
func scalarText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case json.Number:
		return v.String()
	case float64:
		// Whole numbers without an exponent, as they were most likely written.
		if v == math.Trunc(v) && math.Abs(v) < 1e21 {
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// isIPv6CIDR reads a pool's cidr the way Calico does: a colon means IPv6. A pool without a
// cidr counts as IPv4.
func isIPv6CIDR(pool map[string]any, path string) (bool, error) {
	cidr, _, err := stringField(pool, "cidr", path)
	return strings.Contains(cidr, ":"), err
}
