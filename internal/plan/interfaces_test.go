package plan

import (
	"fmt"
	"testing"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/mtu"
)

func TestTargetFor(t *testing.T) {
	tests := []struct {
		provider mtuv1alpha1.CNIProvider
		encap    mtu.Encapsulation
		families []mtu.Family
		vni      int
		wantPod  int32
		want     string
	}{
		{"Flannel", mtu.VXLAN, []mtu.Family{mtu.IPv4}, 1, 8950, "[{flannel.1 Tunnel 8950} {cni0 Bridge 8950}]"},
		// Dual-stack: flannel gives both devices Backend.MTU − 50 = 8930.
		{"Flannel", mtu.VXLAN, []mtu.Family{mtu.IPv4, mtu.IPv6}, 4096, 8930, "[{flannel.4096 Tunnel 8930} {flannel-v6.4096 Tunnel 8930} {cni0 Bridge 8930}]"},
		{"Flannel", mtu.None, []mtu.Family{mtu.IPv4}, 1, 9000, "[{cni0 Bridge 9000}]"},
		{"Flannel", mtu.WireGuard, []mtu.Family{mtu.IPv4}, 1, 8940, "[{flannel-wg Tunnel 8940} {cni0 Bridge 8940}]"},
		{"Flannel", mtu.IPIP, []mtu.Family{mtu.IPv4}, 1, 8980, "[{flannel.ipip Tunnel 8980} {cni0 Bridge 8980}]"},
		// Calico: each tunnel device has its own family's overhead; pods take the smaller.
		{"Calico", mtu.VXLAN, []mtu.Family{mtu.IPv4, mtu.IPv6}, 0, 8930, "[{vxlan.calico Tunnel 8950} {vxlan-v6.calico Tunnel 8930}]"},
		{"Calico", mtu.IPIP, []mtu.Family{mtu.IPv4}, 0, 8980, "[{tunl0 Tunnel 8980}]"},
		{"Calico", mtu.WireGuard, []mtu.Family{mtu.IPv6}, 0, 8920, "[{wg-v6.cali Tunnel 8920}]"},
		{"Calico", mtu.None, []mtu.Family{mtu.IPv4}, 0, 9000, "[]"},
		{"Antrea", mtu.Geneve, []mtu.Family{mtu.IPv4}, 0, 8950, "[{antrea-gw0 Gateway 8950}]"},
		{"Antrea", mtu.None, []mtu.Family{mtu.IPv4}, 0, 9000, "[{antrea-gw0 Gateway 9000}]"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%s/%v", tc.provider, tc.encap, tc.families), func(t *testing.T) {
			r, err := mtu.Compute(mtu.Input{UnderlayMTU: 9000, Encapsulation: tc.encap, Families: tc.families})
			if err != nil {
				t.Fatal(err)
			}
			got, err := TargetFor(tc.provider, r, tc.vni)
			if err != nil {
				t.Fatal(err)
			}
			ifaces := fmt.Sprint(got.Interfaces)
			if got.Interfaces == nil {
				ifaces = "[]"
			}
			if got.PodMTU != tc.wantPod || ifaces != tc.want {
				t.Errorf("pod %d interfaces %s; want %d %s", got.PodMTU, ifaces, tc.wantPod, tc.want)
			}
		})
	}
	r, _ := mtu.Compute(mtu.Input{UnderlayMTU: 9000, Encapsulation: mtu.Geneve, Families: []mtu.Family{mtu.IPv4}})
	if _, err := TargetFor("Flannel", r, 1); err == nil {
		t.Errorf("flannel with Geneve: no error")
	}
}
