package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/plan"
)

// The stand-ins' data plane: what Felix (Calico with a VXLAN pool) and antrea-agent with OVS
// (Antrea in encap mode) program so that pods on different nodes reach each other, done with
// plain kernel devices: a VXLAN device, a route per peer's pod subnet through it, and the
// peer's tunnel address and VTEP as neighbor and forwarding entries. Without encapsulation,
// a route per peer's pod subnet through the peer's node address (Calico's BGP routes,
// Antrea's noEncap routes).

// antreaTunnel is the kernel device OVS creates for Antrea's VXLAN tunnel port (antrea-tun0):
// flow-based and sized far above any underlay (ovsTunnelMaxMTU), so it never limits a pod.
const (
	antreaTunnel    = "vxlan_sys_4789"
	antreaTunnelMTU = 65000
)

// standInTunnel is the VXLAN device a stand-in's agent keeps while its configuration
// encapsulates.
func (c CNI) standInTunnel() string {
	switch c {
	case Calico:
		return c.TunnelDevice()
	case Antrea:
		return antreaTunnel
	default:
		return ""
	}
}

// tunnelMAC is a node's tunnel device address: fixed, so the peers' entries for it survive the
// device being created again.
func (n *Node) tunnelMAC() net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x6c, 0x61, 0x62, byte(len(n.cni)), byte(n.index)}
}

// gatewayMAC is the address of a node's gateway bridge: fixed, as a real gateway's is. A bridge
// without an address of its own takes its lowest port's, so it would change as pods come and go,
// and a pod that had resolved the old one would lose what it sends until its neighbor entry
// is checked again.
func (n *Node) gatewayMAC() net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x67, 0x77, byte(len(n.cni)), 0, byte(n.index)}
}

// tunnelIP is the address peers route the node's pod subnet through: Calico's VXLAN tunnel
// address, Antrea's gateway address; both the first of the node's pod subnet.
func (n *Node) tunnelIP() string { return n.gatewayIP() }

// antreaEncap reads whether Antrea's configuration encapsulates.
func antreaEncap(ctx context.Context, cl client.Client) (bool, error) {
	cm := &corev1.ConfigMap{}
	if err := cl.Get(ctx, types.NamespacedName{Namespace: plan.AntreaNamespace, Name: plan.AntreaConfigMap}, cm); err != nil {
		return false, err
	}
	var conf struct {
		TrafficEncapMode string `json:"trafficEncapMode"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data[plan.AntreaConfigKey]), &conf); err != nil {
		return false, fmt.Errorf("antrea-agent.conf: %w", err)
	}
	return conf.TrafficEncapMode != "noEncap", nil
}

// configureTunnel gives a stand-in tunnel device just created what its agent gives it: Calico's
// tunnel address.
func (n *Node) configureTunnel(name string) error {
	if n.cni != Calico {
		return nil
	}
	return n.ns.addAddr(name, n.tunnelIP()+"/32")
}

// wireStandIn programs the node's routes to every peer's pod subnet, through the tunnel while
// the node has one and through the underlay otherwise, as the stand-in CNI's agent does when
// it starts.
func (n *Node) wireStandIn(peers []*Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, err := n.ns.nl.LinkByName(n.cni.standInTunnel())
	return n.routePeers(peers, err == nil)
}

// routePeers routes every peer's pod subnet through the tunnel (encap) or the underlay. A
// route already right is left alone, with whatever MTU metric it carries. The caller holds
// n.mu.
func (n *Node) routePeers(peers []*Node, encap bool) error {
	if err := n.sysctl("net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	eth0, err := n.ns.link("eth0")
	if err != nil {
		return err
	}
	var tunnel netlink.Link
	if encap {
		if tunnel, err = n.ns.link(n.cni.standInTunnel()); err != nil {
			return err
		}
	}
	var errs []error
	for _, p := range peers {
		if p == n {
			continue
		}
		_, dst, err := net.ParseCIDR(p.PodCIDR)
		if err != nil {
			return err
		}
		want := &netlink.Route{Dst: dst, LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP(p.Address)}
		if encap {
			idx := tunnel.Attrs().Index
			want = &netlink.Route{Dst: dst, LinkIndex: idx, Gw: net.ParseIP(p.tunnelIP()), Flags: int(netlink.FLAG_ONLINK)}
			errs = append(errs,
				n.ns.nl.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, IP: net.ParseIP(p.tunnelIP()), HardwareAddr: p.tunnelMAC()}),
				n.ns.nl.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT, IP: net.ParseIP(p.Address), HardwareAddr: p.tunnelMAC()}),
			)
		}
		errs = append(errs, n.ensureRoute(want))
	}
	return errors.Join(errs...)
}

// ensureRoute replaces the route to want's destination unless it already goes where want does.
func (n *Node) ensureRoute(want *netlink.Route) error {
	have, err := n.ns.nl.RouteListFiltered(unix.AF_INET, &netlink.Route{Dst: want.Dst}, netlink.RT_FILTER_DST)
	if err != nil {
		return err
	}
	for _, r := range have {
		if r.LinkIndex == want.LinkIndex && r.Gw.Equal(want.Gw) {
			return nil
		}
	}
	if err := n.ns.nl.RouteReplace(want); err != nil {
		return fmt.Errorf("routing %s via %s: %w", want.Dst, want.Gw, err)
	}
	return nil
}

// sysctl writes a network sysctl of the node's namespace, e.g. "net/ipv4/ip_forward".
func (n *Node) sysctl(name, value string) error {
	return netdev.InNamespace(n.ns.ns, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", name), []byte(value), 0o644)
	})
}
