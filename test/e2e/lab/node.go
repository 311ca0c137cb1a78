package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
)

// NodeSpec is a node of the lab: its name and the MTU its NIC is configured with.
type NodeSpec struct {
	Name        string
	UnderlayMTU int
}

// DefaultNodes are three nodes on a jumbo-frame network, one of which was set up at 1500: the
// first incident in the operator's README.
var DefaultNodes = []NodeSpec{{"node-a", 9000}, {"node-b", 9000}, {"node-c", 1500}}

// Node is a node of the lab: a network namespace with eth0 on the switch, the CNI's devices,
// and the pods the lab's kubelet runs on it.
type Node struct {
	NodeSpec
	// Address is eth0's address, the node's InternalIP.
	Address string
	// PodCIDR is the node's pod subnet; the gateway device has its first address.
	PodCIDR string
	// NetnsFile is the node's namespace as a file, for the agent (and `ip netns exec`).
	NetnsFile string
	// PodNetnsDir holds the node's pod namespaces, as a container runtime mounts them.
	PodNetnsDir string

	index         int
	cni           CNI
	underlayIndex int

	mu       sync.Mutex // guards the netlink handle and the pods
	ns       *namespace
	pods     map[types.UID]*pod
	lastHost int
}

// pod is a pod the lab's kubelet started: its namespace file, address and host veth.
type pod struct {
	file, ip, hostVeth string
}

func newNode(spec NodeSpec, index int, cni CNI, netnsFile, podDir string) (*Node, error) {
	n := &Node{
		NodeSpec: spec, index: index, cni: cni,
		Address: fmt.Sprintf("%s%d", underlayPrefix, 10+index), PodCIDR: fmt.Sprintf("10.244.%d.0/24", index),
		NetnsFile: netnsFile, PodNetnsDir: podDir, pods: map[types.UID]*pod{},
	}
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		return nil, err
	}
	ns, err := newNamespace(netnsFile)
	if err != nil {
		return nil, err
	}
	n.ns = ns
	return n, nil
}

// build plugs the node into the switch and creates the CNI's devices.
func (n *Node) build(nw *network) error {
	if err := nw.plug(n.ns, "port-"+n.Name, n.Address, n.UnderlayMTU); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	eth0, err := n.ns.link("eth0")
	if err != nil {
		return err
	}
	n.underlayIndex = eth0.Attrs().Index
	for _, l := range n.cni.devices(n) {
		if err := n.ns.addLink(l); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		if err := n.ns.up(l.Attrs().Name); err != nil {
			return err
		}
	}
	if gw := n.cni.Gateway(); gw != "" {
		return n.ns.addAddr(gw, n.gatewayIP()+"/24")
	}
	return nil
}

func (n *Node) gatewayIP() string { return fmt.Sprintf("10.244.%d.1", n.index) }

// restartCNIAgent does what the CNI's agent does to the tunnel when it starts: create it when
// the configuration wants one (sized from the NIC), remove it when not. It says what changed.
func (n *Node) restartCNIAgent(tunnel string, wanted bool) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if tunnel == "" {
		return "", nil
	}
	l, err := n.ns.nl.LinkByName(tunnel)
	exists := err == nil
	switch {
	case exists && !wanted:
		if err := n.ns.nl.LinkDel(l); err != nil {
			return "", fmt.Errorf("removing %s: %w", tunnel, err)
		}
		return "removed " + tunnel, nil
	case !exists && wanted:
		for _, d := range n.cni.devices(n) {
			if d.Attrs().Name == tunnel {
				eth0, err := n.ns.link("eth0")
				if err != nil {
					return "", err
				}
				d.Attrs().MTU = eth0.Attrs().MTU - vxlanOverhead
				if err := errors.Join(n.ns.addLink(d), n.ns.up(tunnel)); err != nil {
					return "", err
				}
				return fmt.Sprintf("created %s at %d", tunnel, d.Attrs().MTU), nil
			}
		}
	}
	return "", nil
}

// LinkMTUs returns the MTU of each of the node's links.
func (n *Node) LinkMTUs() (map[string]int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ns.linkMTUs()
}

// startPod gives a pod a network namespace with eth0 at mtu, joined to the node by a veth, and
// returns its address. A pod already started keeps its address.
func (n *Node) startPod(uid types.UID, mtu int) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.pods[uid]; ok {
		return p.ip, nil
	}
	n.lastHost++
	sum := sha256.Sum256([]byte(uid))
	p := &pod{
		file:     filepath.Join(n.PodNetnsDir, "cni-"+string(uid)),
		ip:       fmt.Sprintf("10.244.%d.%d", n.index, n.lastHost+1),
		hostVeth: (n.cni.hostVethPrefix() + hex.EncodeToString(sum[:]))[:15],
	}
	podNS, err := newNamespace(p.file)
	if err != nil {
		return "", err
	}
	// The mount keeps the namespace; the handles are only needed to build it.
	defer podNS.nl.Close()
	defer podNS.ns.Close()
	if err := n.plugPod(podNS, p, mtu); err != nil {
		return "", errors.Join(err, nettest.Unmount(p.file))
	}
	n.pods[uid] = p
	return p.ip, nil
}

func (n *Node) plugPod(podNS *namespace, p *pod, mtu int) error {
	err := n.ns.addLink(&netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: p.hostVeth, MTU: mtu},
		PeerName:  "eth0", PeerMTU: uint32(mtu), PeerNamespace: netlink.NsFd(podNS.ns),
	})
	if err != nil {
		return err
	}
	host, err := n.ns.link(p.hostVeth)
	if err != nil {
		return err
	}
	gateway, prefix := n.gatewayIP(), "/24"
	if gw := n.cni.Gateway(); gw != "" {
		bridge, err := n.ns.link(gw)
		if err != nil {
			return err
		}
		if err := n.ns.nl.LinkSetMaster(host, bridge); err != nil {
			return fmt.Errorf("attaching %s to %s: %w", p.hostVeth, gw, err)
		}
	} else {
		// Calico: a /32 per pod, routed to its veth, and a link-local gateway.
		gateway, prefix = "169.254.1.1", "/32"
	}
	if err := n.ns.up(p.hostVeth); err != nil {
		return err
	}
	if prefix == "/32" {
		if err := n.ns.nl.RouteAdd(&netlink.Route{LinkIndex: host.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP(p.ip), Mask: net.CIDRMask(32, 32)}}); err != nil {
			return fmt.Errorf("routing %s to %s: %w", p.ip, p.hostVeth, err)
		}
	}
	return errors.Join(
		podNS.addAddr("eth0", p.ip+prefix),
		podNS.up("lo", "eth0"),
		podNS.defaultRoute("eth0", gateway),
	)
}

// stopPod removes a pod's namespace; the kernel removes its veth with it.
func (n *Node) stopPod(uid types.UID) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.pods[uid]
	if !ok {
		return nil
	}
	delete(n.pods, uid)
	return nettest.Unmount(p.file)
}

// PodMTU reads eth0's MTU inside a pod the lab's kubelet runs.
func (n *Node) PodMTU(uid types.UID) (int, error) {
	n.mu.Lock()
	p, ok := n.pods[uid]
	n.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("pod %s does not run on %s", uid, n.Name)
	}
	ns, err := netns.GetFromPath(p.file)
	if err != nil {
		return 0, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		return 0, err
	}
	return l.Attrs().MTU, nil
}

// close stops every pod and drops the node's namespace.
func (n *Node) close() error {
	var errs []error
	for _, uid := range slices.Collect(maps.Keys(n.pods)) {
		errs = append(errs, n.stopPod(uid))
	}
	if n.ns != nil {
		errs = append(errs, n.ns.close())
	}
	errs = append(errs, removeAll(n.PodNetnsDir))
	return errors.Join(errs...)
}
