package plan

import (
	"fmt"
	"testing"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

func TestOriginalUnderlays(t *testing.T) {
	node := func(name string, underlay []mtuv1alpha1.UnderlayInterface, originals ...mtuv1alpha1.OriginalMTU) NodeInput {
		s := &mtuv1alpha1.NodeMTUState{}
		s.Status.Underlay, s.Status.OriginalUnderlay = underlay, originals
		for _, u := range underlay {
			if s.Status.UnderlayMTU == 0 || u.MTU < s.Status.UnderlayMTU {
				s.Status.UnderlayMTU = u.MTU
			}
		}
		return NodeInput{Name: name, State: s}
	}
	eth0 := func(m int32) []mtuv1alpha1.UnderlayInterface {
		return []mtuv1alpha1.UnderlayInterface{{Name: "eth0", MTU: m}}
	}
	nodes := []NodeInput{
		node("raised", eth0(9000), mtuv1alpha1.OriginalMTU{Name: "eth0", MTU: 1500}),
		node("untouched", eth0(9000)),
		node("odd", eth0(9000), mtuv1alpha1.OriginalMTU{Name: "eth0", MTU: 1400}),
		node("two-nics", []mtuv1alpha1.UnderlayInterface{{Name: "eth0", MTU: 9000}, {Name: "eth1", MTU: 9000}}, mtuv1alpha1.OriginalMTU{Name: "eth1", MTU: 1500}, mtuv1alpha1.OriginalMTU{Name: "eth9", MTU: 576}),
		{Name: "silent"},
	}
	byNode, smallest := OriginalUnderlays(nodes)
	if got := fmt.Sprint(byNode, smallest); got != "map[odd:1400 raised:1500 two-nics:1500 untouched:9000] 1400" {
		t.Errorf("originals %s", got)
	}
}

func TestFlannelEncapsulation(t *testing.T) {
	for backend, want := range map[string]mtuv1alpha1.EncapsulationType{"vxlan": "VXLAN", "host-gw": "None", "wireguard": "WireGuard", "ipip": "IPIP", "udp": ""} {
		if got, err := FlannelEncapsulation(backend); got != want || (want == "") != (err != nil) {
			t.Errorf("%s: %q, %v", backend, got, err)
		}
	}
}
