package flannel

import "testing"

func TestVNI(t *testing.T) {
	tests := map[string]int{
		`{"Backend": {"Type": "vxlan", "VNI": 4096}}`: 4096,
		`{"backend": {"type": "vxlan", "vni": 7}}`:    7,
		`{"Backend": {"Type": "vxlan"}}`:              1,
		`{"Backend": {"Type": "host-gw"}}`:            1,
		`{"Network": "10.244.0.0/16"}`:                1,
		`{"Backend": {"VNI": "x"}}`:                   1,
		`not json`:                                    1,
	}
	for doc, want := range tests {
		if got := VNI([]byte(doc)); got != want {
			t.Errorf("VNI(%s) = %d; want %d", doc, got, want)
		}
	}
}
