package migration

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/utils/ptr"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// TestSpecEqualSeesEveryField: a spec that differs from another in any one field, at any
// depth, is not equal to it, as equality.Semantic.DeepEqual says; so a field added to the spec
// without SpecEqual comparing it fails here.
func TestSpecEqualSeesEveryField(t *testing.T) {
	base := mtuv1alpha1.NodeMTUStateSpec{
		Policy: "p", Phase: mtuv1alpha1.PhaseConverge, PolicyGeneration: 2, UnderlayInterfacePattern: "^eth",
		UnderlayMTU: ptr.To[int32](9000), PodMTU: 8950, RouteMTU: ptr.To[int32](1450),
		Interfaces: []mtuv1alpha1.ManagedInterface{{Name: tunnel, Role: mtuv1alpha1.RoleTunnel, MTU: 8950}},
		Probe:      mtuv1alpha1.NodeProbe{APIServer: "10.0.0.1:6443", TimeoutSeconds: 10, Peers: []mtuv1alpha1.ProbePeer{{Address: "10.0.0.2", Size: 9000}}},
		PodAction:  mtuv1alpha1.StalePodReport, Verify: true, Attempt: 1,
	}
	if !SpecEqual(base, *base.DeepCopy()) {
		t.Fatal("a spec is not equal to its copy")
	}
	changed := *base.DeepCopy()
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		for i := range v.NumField() {
			f, name := v.Field(i), path+"."+v.Type().Field(i).Name
			if f.Kind() == reflect.Struct {
				walk(name, f)
				continue
			}
			saved := reflect.New(f.Type()).Elem()
			saved.Set(f)
			changeOne(t, name, f)
			if equality.Semantic.DeepEqual(base, changed) {
				t.Fatalf("the test did not change %s", name)
			}
			if SpecEqual(base, changed) {
				t.Errorf("SpecEqual misses %s", name)
			}
			f.Set(saved)
		}
	}
	walk("spec", reflect.ValueOf(&changed).Elem())
	// Nil and empty lists are alike, as for the API server and DeepEqual.
	a, b := *base.DeepCopy(), *base.DeepCopy()
	a.Probe.Peers, b.Probe.Peers = nil, []mtuv1alpha1.ProbePeer{}
	if SpecEqual(a, b) != equality.Semantic.DeepEqual(a, b) {
		t.Errorf("nil and empty peers: SpecEqual %t, DeepEqual %t", SpecEqual(a, b), equality.Semantic.DeepEqual(a, b))
	}
}

// changeOne gives f another value: a longer string, a larger number, the other boolean, a
// pointer to another value, a list one element longer.
func changeOne(t *testing.T, name string, f reflect.Value) {
	switch f.Kind() {
	case reflect.String:
		f.SetString(f.String() + "x")
	case reflect.Int32, reflect.Int64:
		f.SetInt(f.Int() + 1)
	case reflect.Bool:
		f.SetBool(!f.Bool())
	case reflect.Pointer:
		v := reflect.New(f.Type().Elem())
		if !f.IsNil() {
			v.Elem().Set(f.Elem())
		}
		changeOne(t, name, v.Elem())
		f.Set(v)
	case reflect.Slice:
		f.Set(reflect.Append(reflect.AppendSlice(reflect.MakeSlice(f.Type(), 0, f.Len()+1), f), reflect.Zero(f.Type().Elem())))
	default:
		t.Fatalf("%s: cannot change a %s", name, f.Kind())
	}
}
