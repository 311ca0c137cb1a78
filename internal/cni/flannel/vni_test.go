package flannel

import (
	"fmt"
	"testing"
)

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

func TestBackend(t *testing.T) {
	tests := map[string]string{
		`{"Backend": {"Type": "vxlan", "VNI": 4096}}`:     "vxlan 0",
		`{"backend": {"type": "Host-GW"}}`:                "host-gw 0",
		`{"Backend": {"Type": "wireguard", "MTU": 1420}}`: "wireguard 1420",
		`{"Network": "10.244.0.0/16"}`:                    "vxlan 0",
		`{"Backend": {"MTU": 9000}}`:                      "vxlan 9000",
		`{"Backend": []}`:                                 "error",
		`{"Backend": {"Type": 7}}`:                        "error",
		`{"Backend": {"MTU": "9000"}}`:                    "error",
		`{`:                                               "error",
	}
	for doc, want := range tests {
		typ, m, err := Backend([]byte(doc))
		got := fmt.Sprintf("%s %d", typ, m)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("Backend(%s) = %s (%v), want %s", doc, got, err, want)
		}
	}
}

func TestHasMTUOption(t *testing.T) {
	for backend, want := range map[string]bool{"vxlan": true, "VXLAN": true, "wireguard": true, "host-gw": false, "ipip": false, "udp": false} {
		if got := HasMTUOption(backend); got != want {
			t.Errorf("HasMTUOption(%q) = %v, want %v", backend, got, want)
		}
	}
}
