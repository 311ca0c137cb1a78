package underlay_test

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/mtu-operator/mtu-operator/internal/mtu"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/underlay"
)

func TestDetect(t *testing.T) {
	lo := netdev.Link{Name: "lo", Index: 1, MTU: 65536, Up: true, Kind: netdev.KindLoopback}
	eth0 := netdev.Link{Name: "eth0", Index: 2, MTU: 9001, Up: true, Kind: netdev.KindDevice}
	eth1 := netdev.Link{Name: "eth1", Index: 3, MTU: 1500, Up: true, Kind: netdev.KindDevice}
	ens5 := netdev.Link{Name: "ens5", Index: 4, MTU: 1460, Up: true, Kind: netdev.KindDevice}
	eth2Down := netdev.Link{Name: "eth2", Index: 5, MTU: 1400, Kind: netdev.KindDevice}
	br0 := netdev.Link{Name: "br0", Index: 6, MTU: 1500, Up: true, Kind: "bridge"}
	eth3Port := netdev.Link{Name: "eth3", Index: 7, MTU: 1500, Up: true, Kind: netdev.KindDevice, MasterIndex: 6}
	flannel := netdev.Link{Name: "flannel.1", Index: 8, MTU: 8951, Up: true, Kind: "vxlan"}
	ethOrEns := regexp.MustCompile(`^(eth|ens)\d+$`)

	tests := []struct {
		name     string
		links    []netdev.Link
		defaults map[mtu.Family][]int
		pattern  *regexp.Regexp
		want     underlay.Underlay
		wantErr  string
	}{
		{
			name:     "the default-route interface wins over other matches",
			links:    []netdev.Link{lo, eth0, eth1, flannel},
			defaults: map[mtu.Family][]int{mtu.IPv4: {eth0.Index}},
			pattern:  ethOrEns,
			want:     underlay.Underlay{MTU: 9001, Interfaces: []underlay.Interface{{Name: "eth0", Index: 2, MTU: 9001, DefaultRoute: true}}},
		},
		{
			name:     "an IPv6 default route counts too, and the smallest MTU is the underlay's",
			links:    []netdev.Link{eth0, eth1, ens5},
			defaults: map[mtu.Family][]int{mtu.IPv4: {eth0.Index}, mtu.IPv6: {ens5.Index}},
			pattern:  ethOrEns,
			want: underlay.Underlay{MTU: 1460, Interfaces: []underlay.Interface{
				{Name: "ens5", Index: 4, MTU: 1460, DefaultRoute: true},
				{Name: "eth0", Index: 2, MTU: 9001, DefaultRoute: true},
			}},
		},
		{
			name:     "without a default route on a match, every matching up link",
			links:    []netdev.Link{lo, eth1, eth0, eth2Down, flannel},
			defaults: map[mtu.Family][]int{mtu.IPv4: {flannel.Index}},
			pattern:  ethOrEns,
			want: underlay.Underlay{MTU: 1500, Interfaces: []underlay.Interface{
				{Name: "eth0", Index: 2, MTU: 9001},
				{Name: "eth1", Index: 3, MTU: 1500},
			}},
		},
		{
			name:     "no default routes at all",
			links:    []netdev.Link{eth1, ens5},
			defaults: nil,
			pattern:  ethOrEns,
			want: underlay.Underlay{MTU: 1460, Interfaces: []underlay.Interface{
				{Name: "ens5", Index: 4, MTU: 1460},
				{Name: "eth1", Index: 3, MTU: 1500},
			}},
		},
		{
			name:     "a bridge port is not the underlay; its bridge is",
			links:    []netdev.Link{lo, br0, eth3Port},
			defaults: map[mtu.Family][]int{mtu.IPv4: {br0.Index}},
			pattern:  nil,
			want:     underlay.Underlay{MTU: 1500, Interfaces: []underlay.Interface{{Name: "br0", Index: 6, MTU: 1500, DefaultRoute: true}}},
		},
		{
			name:     "loopback and down links are excluded even when they carry the default route",
			links:    []netdev.Link{lo, eth2Down, eth1},
			defaults: map[mtu.Family][]int{mtu.IPv4: {lo.Index, eth2Down.Index}},
			pattern:  nil,
			want:     underlay.Underlay{MTU: 1500, Interfaces: []underlay.Interface{{Name: "eth1", Index: 3, MTU: 1500}}},
		},
		{
			name:    "nothing matches the pattern",
			links:   []netdev.Link{lo, br0, flannel},
			pattern: ethOrEns,
			wantErr: `no underlay interface: no interface name matches "^(eth|ens)\\d+$"`,
		},
		{
			name:    "matches exist but none qualifies",
			links:   []netdev.Link{lo, eth2Down, eth3Port},
			pattern: regexp.MustCompile(`^(lo|eth)`),
			wantErr: "no underlay interface: of the interfaces matching \"^(lo|eth)\", lo is the loopback, eth2 is down, eth3 is a port of link 6",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := underlay.Detect(tt.links, tt.defaults, tt.pattern)
			if tt.wantErr != "" {
				if !errors.Is(err, underlay.ErrNotFound) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Detect error = %v, want ErrNotFound with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Detect =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}
