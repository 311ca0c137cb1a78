package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab/traffic"
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
	// StateDir is the agent's --state-dir, the node's /var/lib/mtu-operator: its journal.
	StateDir string

	index         int
	cni           CNI
	underlayIndex int
	// kubeconfig reaches the API server from the node, across its underlay.
	kubeconfig string
	// logs receives the CNI plugins' output; logDir holds the node programs' logs.
	logs   io.Writer
	logDir string
	// track hands a started process to the lab's reaper.
	track   func(*process) error
	agent   *process
	flannel flannelNode

	mu       sync.Mutex // guards the netlink handle, the pods and the agent and flanneld processes
	ns       *namespace
	pods     map[types.UID]*pod
	lastHost int
}

// flannelNode is the node's flanneld and the files its kube-flannel-ds pod would have.
type flannelNode struct {
	// assets holds flanneld and cni/, the CNI plugins.
	assets string
	// dir holds the node's net-conf.json, subnet.env and the CNI plugins' state.
	dir, netConf, subnetEnv string
	daemon                  *process
}

// pod is a pod the lab's kubelet started: its namespace file, address and host veth.
type pod struct {
	file, ip, hostVeth string
}

// nodeFiles are where a node keeps what a real node has on its own disk.
type nodeFiles struct {
	// netns is the node's namespace file; pods holds its pods' namespace files; logs the
	// node programs' logs; dir the rest.
	netns, pods, logs, dir string
}

func newNode(spec NodeSpec, index int, cni CNI, files nodeFiles, logs io.Writer, track func(*process) error) (*Node, error) {
	n := &Node{
		NodeSpec: spec, index: index, cni: cni,
		Address: fmt.Sprintf("%s%d", underlayPrefix, 10+index), PodCIDR: fmt.Sprintf("10.244.%d.0/24", index),
		NetnsFile: files.netns, PodNetnsDir: files.pods, pods: map[types.UID]*pod{},
		StateDir:   filepath.Join(files.dir, "var-lib-mtu-operator"),
		kubeconfig: filepath.Join(files.dir, "kubeconfig"), logs: logs, logDir: files.logs, track: track,
		flannel: flannelNode{dir: files.dir, netConf: filepath.Join(files.dir, "net-conf.json"), subnetEnv: filepath.Join(files.dir, "subnet.env")},
	}
	for _, d := range []string{files.pods, files.logs, files.dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	ns, err := newNamespace(files.netns)
	if err != nil {
		return nil, err
	}
	n.ns = ns
	return n, nil
}

// build plugs the node into the switch and creates the devices of a stand-in CNI's agent;
// flanneld and the bridge plugin create flannel's themselves.
func (n *Node) build(nw *network) error {
	if err := nw.plug(n.ns, "port-"+n.Name, n.Address, n.UnderlayMTU); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	eth0, err := n.ns.link("eth0")
	if err != nil {
		return err
	}
	n.underlayIndex = eth0.Attrs().Index
	if n.cni == Flannel {
		return nil
	}
	for _, l := range n.cni.devices(n) {
		if err := n.ns.addLink(l); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		if err := n.ns.up(l.Attrs().Name); err != nil {
			return err
		}
		if l.Attrs().Name == n.cni.standInTunnel() {
			if err := n.configureTunnel(l.Attrs().Name); err != nil {
				return err
			}
		}
	}
	if gw := n.cni.Gateway(); gw != "" {
		return n.ns.addAddr(gw, n.gatewayIP()+"/24")
	}
	return nil
}

// startAgent runs the operator's agent binary on the node, as its DaemonSet pod would: in the
// node's network namespace, reaching the API server across the node's underlay.
func (n *Node) startAgent(binary string) error {
	p, err := startProcess(n.ns.ns, filepath.Join(n.logDir, n.Name+"-agent.log"), "the agent on "+n.Name, binary, []string{
		"--node-name=" + n.Name,
		"--kubeconfig=" + n.kubeconfig,
		"--pod-netns-dir=" + n.PodNetnsDir,
		"--state-dir=" + n.StateDir,
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
	}, nil)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.agent = p
	n.mu.Unlock()
	return n.track(p)
}

// KillAgent kills the node's agent with SIGKILL, as a crash or an OOM kill would.
func (n *Node) KillAgent() error {
	n.mu.Lock()
	p := n.agent
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.kill()
}

// RestartAgent starts the node's agent again after KillAgent, as its DaemonSet would.
func (n *Node) RestartAgent(binary string) error {
	if err := n.KillAgent(); err != nil {
		return err
	}
	return n.startAgent(binary)
}

// AgentRunning says whether the node's agent process is alive.
func (n *Node) AgentRunning() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.agent != nil && n.agent.running()
}

// stopDaemons stops the node's agent and flanneld.
func (n *Node) stopDaemons() error {
	var errs []error
	for _, p := range []*process{n.agent, n.flannel.daemon} {
		if p != nil {
			errs = append(errs, p.stop())
		}
	}
	return errors.Join(errs...)
}

func (n *Node) gatewayIP() string { return fmt.Sprintf("10.244.%d.1", n.index) }

// restartCNIAgent does what a stand-in CNI's agent does when it starts, as the real one is
// documented to: create its tunnel when the configuration wants one, remove it when not (its
// routes to peers go through the underlay then; wireStandIn routes them after a restart), and
// set the MTU it computes on the device it manages (Felix applies its VXLAN MTU to
// vxlan.calico; antrea-agent applies its interface MTU to antrea-gw0). It says what changed.
func (n *Node) restartCNIAgent(ctx context.Context, cl client.Client, peers []*Node, tunnel string, wanted bool) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	mtu, err := n.cni.podMTU(ctx, cl, n)
	if err != nil {
		return "", err
	}
	var did []string
	if tunnel != "" {
		l, err := n.ns.nl.LinkByName(tunnel)
		switch exists := err == nil; {
		case exists && !wanted:
			// The routes move to the underlay before the tunnel goes, so no packet meets
			// a node without a route to its peers.
			if err := n.routePeers(peers, false); err != nil {
				return "", err
			}
			if err := n.ns.nl.LinkDel(l); err != nil {
				return "", fmt.Errorf("removing %s: %w", tunnel, err)
			}
			did = append(did, "removed "+tunnel)
		case !exists && wanted:
			for _, d := range n.cni.devices(n) {
				if d.Attrs().Name == tunnel {
					if tunnel == n.cni.agentSizedDevice() {
						d.Attrs().MTU = mtu
					}
					if err := errors.Join(n.ns.addLink(d), n.ns.up(tunnel), n.configureTunnel(tunnel)); err != nil {
						return "", err
					}
					did = append(did, fmt.Sprintf("created %s at %d", tunnel, d.Attrs().MTU))
				}
			}
		}
	}
	if dev := n.cni.agentSizedDevice(); dev != "" {
		if l, err := n.ns.nl.LinkByName(dev); err == nil && l.Attrs().MTU != mtu {
			if err := n.ns.nl.LinkSetMTU(l, mtu); err != nil {
				return "", fmt.Errorf("setting %s MTU to %d: %w", dev, mtu, err)
			}
			did = append(did, fmt.Sprintf("set %s to %d", dev, mtu))
		}
	}
	return strings.Join(did, ", "), nil
}

// LinkMTUs returns the MTU of each of the node's links.
func (n *Node) LinkMTUs() (map[string]int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ns.linkMTUs()
}

// PinnedRoutes lists the node's routes that carry an MTU of their own, as the agent's route pins
// do (flanneld and the stand-ins set none).
func (n *Node) PinnedRoutes() ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	routes, err := n.ns.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing %s's routes: %w", n.Name, err)
	}
	var pinned []string
	for _, r := range routes {
		if r.MTU > 0 {
			pinned = append(pinned, fmt.Sprintf("%s mtu %d", r.Dst, r.MTU))
		}
	}
	return pinned, nil
}

// startPod gives a pod a network namespace and an eth0 joined to the node, and returns its
// address and eth0's MTU. flannel's pods get theirs from the real CNI plugins, which read
// flanneld's subnet.env; a stand-in CNI's from what its configuration in the API says. A pod
// already started keeps its address.
func (n *Node) startPod(ctx context.Context, cl client.Client, uid types.UID) (ip string, mtu int, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.pods[uid]; ok {
		return p.ip, 0, nil
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
		return "", 0, err
	}
	// The mount keeps the namespace; the handles are only needed to build it.
	defer podNS.nl.Close()
	defer podNS.ns.Close()
	if n.cni == Flannel {
		p.ip, err = n.addFlannelPod(ctx, cl, uid, p.file)
	} else {
		if mtu, err = n.cni.podMTU(ctx, cl, n); err == nil {
			err = n.plugPod(podNS, p, mtu)
		}
	}
	if err == nil {
		var eth0 netlink.Link
		if eth0, err = podNS.link("eth0"); err == nil {
			mtu = eth0.Attrs().MTU
		}
	}
	if err != nil {
		return "", 0, errors.Join(err, nettest.Unmount(p.file))
	}
	n.pods[uid] = p
	return p.ip, mtu, nil
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
		// Felix answers the pod's ARP for its link-local gateway by proxy ARP on the veth.
		if err := errors.Join(
			n.sysctl("net/ipv4/conf/"+p.hostVeth+"/proxy_arp", "1"),
			n.sysctl("net/ipv4/neigh/"+p.hostVeth+"/proxy_delay", "0"),
		); err != nil {
			return err
		}
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

// stopPod removes a pod: CNI DEL for flannel's (which releases its address), then its
// namespace, with which the kernel removes its veth.
func (n *Node) stopPod(ctx context.Context, cl client.Client, uid types.UID) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.pods[uid]
	if !ok {
		return nil
	}
	delete(n.pods, uid)
	var err error
	if n.cni == Flannel && cl != nil {
		err = n.delFlannelPod(ctx, cl, uid, p.file)
	}
	return errors.Join(err, nettest.Unmount(p.file))
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
		errs = append(errs, n.stopPod(context.Background(), nil, uid))
	}
	if n.ns != nil {
		errs = append(errs, n.ns.close())
	}
	errs = append(errs, removeAll(n.PodNetnsDir))
	return errors.Join(errs...)
}

// endpoint is a pod the lab's kubelet runs on the node, as a traffic endpoint.
func (n *Node) endpoint(uid types.UID) (traffic.Endpoint, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.pods[uid]
	if !ok {
		return traffic.Endpoint{}, false
	}
	return traffic.Endpoint{NetnsFile: p.file, IP: p.ip}, true
}
