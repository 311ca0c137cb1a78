package plan

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

func TestCNIOwner(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writer := func(name string, created time.Duration, pod int32) CNIWriter {
		return CNIWriter{PolicySelection: PolicySelection{Name: name, Created: t0.Add(created)}, PodMTU: pod, Encapsulation: mtuv1alpha1.EncapsulationVXLAN}
	}
	tests := []struct {
		name      string
		writers   []CNIWriter
		wantOwner string
	}{
		{"none", nil, ""},
		{"the only one", []CNIWriter{writer("a", 0, 8950)}, "a"},
		{"the oldest", []CNIWriter{writer("young", time.Hour, 1450), writer("old", 0, 8950)}, "old"},
		{"same second: by name", []CNIWriter{writer("b", 0, 1450), writer("a", 0, 8950)}, "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if o := CNIOwner(tc.writers); o != nil {
				got = o.Name
			}
			if got != tc.wantOwner {
				t.Errorf("owner %q, want %q", got, tc.wantOwner)
			}
		})
	}
	owner := writer("a", 0, 8950)
	if !writer("b", time.Hour, 8950).Agrees(owner) {
		t.Errorf("the same pod MTU and encapsulation should agree")
	}
	if writer("b", time.Hour, 1450).Agrees(owner) {
		t.Errorf("another pod MTU should not agree")
	}
	none := writer("c", time.Hour, 8950)
	none.Encapsulation = mtuv1alpha1.EncapsulationNone
	if none.Agrees(owner) {
		t.Errorf("another encapsulation should not agree")
	}
}

func TestUnselected(t *testing.T) {
	jumbo, _ := labels.Parse("pool=jumbo")
	nodes := []NamedLabels{{Name: "node-a", Labels: labels.Set{"pool": "jumbo"}}, {Name: "node-b", Labels: labels.Set{"pool": "jumbo"}}, {Name: "node-c", Labels: labels.Set{"pool": "small"}}, {Name: "node-d"}}
	if got := fmt.Sprint(Unselected(PolicySelection{Name: "jumbo", Selector: jumbo}, nodes)); got != "[node-c node-d]" {
		t.Errorf("unselected by pool=jumbo: %s", got)
	}
	if got := Unselected(PolicySelection{Name: "all"}, nodes); len(got) != 0 {
		t.Errorf("a policy without a selector leaves out %v", got)
	}
}
