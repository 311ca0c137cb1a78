package plan

import (
	"fmt"
	"testing"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

func TestEraHistoryAndStaleReason(t *testing.T) {
	vxlan := mtuv1alpha1.PodMTUEra{PodMTU: 1450, Encapsulation: "VXLAN", UnderlayMTU: 1500}
	none := mtuv1alpha1.PodMTUEra{PodMTU: 1500, Encapsulation: "None", UnderlayMTU: 1500}
	jumbo := mtuv1alpha1.PodMTUEra{PodMTU: 8950, Encapsulation: "VXLAN", UnderlayMTU: 9000}

	h := RecordEra(nil, vxlan)
	h = RecordEra(h, vxlan) // unchanged: not recorded twice
	h = RecordEra(h, none)
	if fmt.Sprint(h) != "[{1500 None 1500} {1450 VXLAN 1500}]" {
		t.Fatalf("history %v", h)
	}
	tests := []struct {
		observed int32
		history  []mtuv1alpha1.PodMTUEra
		want     string
	}{
		{1450, h, "1450 predates the switch from VXLAN to None"},
		{1450, RecordEra([]mtuv1alpha1.PodMTUEra{vxlan}, jumbo), "1450 predates the change of the underlay MTU from 1500 to 9000"},
		{1400, h, "1400 differs from the expected 1500"},
		{1400, nil, "1400 differs from the expected pod MTU"},
	}
	for _, tc := range tests {
		if got := StaleReason(tc.observed, tc.history); got != tc.want {
			t.Errorf("StaleReason(%d, %v) = %q; want %q", tc.observed, tc.history, got, tc.want)
		}
	}
	long := h
	for i := range 10 {
		long = RecordEra(long, mtuv1alpha1.PodMTUEra{PodMTU: int32(1000 + i), Encapsulation: "None"})
	}
	if len(long) != maxEras || long[0].PodMTU != 1009 {
		t.Errorf("history not bounded to the newest %d: %v", maxEras, long)
	}
}

func TestPrevailingMTU(t *testing.T) {
	for _, tt := range []struct {
		pods map[int32]int32
		want int32
	}{
		{nil, 0},
		{map[int32]int32{1450: 3}, 1450},
		{map[int32]int32{1450: 1, 8950: 40}, 8950},
		{map[int32]int32{1450: 2, 8950: 2}, 1450},
		{map[int32]int32{8950: 2, 1450: 2, 1400: 1}, 1450},
	} {
		if got := PrevailingMTU(tt.pods); got != tt.want {
			t.Errorf("PrevailingMTU(%v) = %d, want %d", tt.pods, got, tt.want)
		}
	}
}
