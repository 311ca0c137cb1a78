package lab

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
)

// The lab's addressing: every node's eth0 is on the underlay subnet, plugged into a bridge in
// a "switch" namespace; the switch also answers for the API server.
const (
	switchBridge = "switch0"
	// switchMTU is the MTU of the switch's ports and bridge: a jumbo-frame network.
	switchMTU      = 9000
	underlayPrefix = "192.168.100."
	switchAddress  = underlayPrefix + "1"
	// apiServerPort is where the switch forwards to the embedded API server.
	apiServerPort = 6443
	// vxlanOverhead is what every lab CNI's VXLAN takes from the underlay before pods.
	vxlanOverhead = 50
)

// namespace is a network namespace the lab built, with a netlink handle on it, and the file
// it is mounted on (empty for an unmounted one).
type namespace struct {
	ns   netns.NsHandle
	nl   *netlink.Handle
	file string
}

// newNamespace creates a namespace and mounts it on file (when not empty), as `ip netns add`.
func newNamespace(file string) (*namespace, error) {
	ns, err := nettest.CreateNamespace()
	if err != nil {
		return nil, fmt.Errorf("creating a network namespace: %w", err)
	}
	n := &namespace{ns: ns}
	if n.nl, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE); err != nil {
		_ = ns.Close()
		return nil, fmt.Errorf("opening netlink in a new namespace: %w", err)
	}
	if file != "" {
		if err := nettest.Mount(fmt.Sprintf("/proc/self/fd/%d", int(ns)), file); err != nil {
			n.close()
			return nil, err
		}
		n.file = file
	}
	return n, nil
}

// close drops the lab's references: once the agents have closed theirs too, the kernel
// destroys the namespace and every link in it (veth peers elsewhere included).
func (n *namespace) close() error {
	n.nl.Close()
	err := n.ns.Close()
	if n.file != "" {
		err = errors.Join(err, nettest.Unmount(n.file))
	}
	return err
}

func (n *namespace) link(name string) (netlink.Link, error) {
	l, err := n.nl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("finding link %s: %w", name, err)
	}
	return l, nil
}

func (n *namespace) up(names ...string) error {
	for _, name := range names {
		l, err := n.link(name)
		if err != nil {
			return err
		}
		if err := n.nl.LinkSetUp(l); err != nil {
			return fmt.Errorf("setting %s up: %w", name, err)
		}
	}
	return nil
}

func (n *namespace) addAddr(name, cidr string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := n.nl.AddrAdd(l, a); err != nil {
		return fmt.Errorf("adding %s to %s: %w", cidr, name, err)
	}
	return nil
}

func (n *namespace) addLink(l netlink.Link) error {
	if err := n.nl.LinkAdd(l); err != nil {
		return fmt.Errorf("creating %s link %s: %w", l.Type(), l.Attrs().Name, err)
	}
	return nil
}

// defaultRoute routes everything through gw on the named link.
func (n *namespace) defaultRoute(name, gw string) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if err := n.nl.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP(gw), Flags: int(netlink.FLAG_ONLINK)}); err != nil {
		return fmt.Errorf("adding a default route via %s: %w", gw, err)
	}
	return nil
}

// linkMTUs returns the MTU of every link but loopback.
func (n *namespace) linkMTUs() (map[string]int, error) {
	links, err := n.nl.LinkList()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback == 0 {
			out[l.Attrs().Name] = l.Attrs().MTU
		}
	}
	return out, nil
}

// network is the switch namespace, which joins the nodes' underlays, and the API server's
// address on it.
type network struct {
	sw    *namespace
	relay net.Listener
	conns sync.WaitGroup
}

// newNetwork builds the switch: a bridge whose ports carry jumbo frames, and an address that
// forwards to the API server, so that each node's "can I still reach the API server" probe
// crosses its own underlay as it would in a cluster.
func newNetwork(apiServer string) (*network, error) {
	sw, err := newNamespace("")
	if err != nil {
		return nil, err
	}
	nw := &network{sw: sw}
	err = errors.Join(
		sw.addLink(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: switchBridge, MTU: switchMTU}}),
		sw.addAddr(switchBridge, switchAddress+"/24"),
		sw.up("lo", switchBridge),
	)
	if err == nil {
		err = nw.forward(apiServer)
	}
	if err != nil {
		_ = nw.close()
		return nil, err
	}
	return nw, nil
}

// forward listens on the switch's address and relays each connection to the API server,
// like the load balancer in front of a control plane.
func (nw *network) forward(apiServer string) error {
	err := netdev.InNamespace(nw.sw.ns, func() error {
		var err error
		nw.relay, err = net.Listen("tcp", fmt.Sprintf("%s:%d", switchAddress, apiServerPort))
		return err
	})
	if err != nil {
		return fmt.Errorf("listening for the API server on the switch: %w", err)
	}
	nw.conns.Go(func() {
		for {
			in, err := nw.relay.Accept()
			if err != nil {
				return
			}
			nw.conns.Go(func() { relay(in, apiServer) })
		}
	})
	return nil
}

func relay(in net.Conn, to string) {
	defer in.Close()
	out, err := net.Dial("tcp", to) // from the host's namespace, where the API server listens
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, in)
		_ = out.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(in, out)
	_ = in.(*net.TCPConn).CloseWrite()
	<-done
}

func (nw *network) apiServerAddress() string {
	return fmt.Sprintf("%s:%d", switchAddress, apiServerPort)
}

func (nw *network) close() error {
	if nw.relay != nil {
		_ = nw.relay.Close()
	}
	nw.conns.Wait()
	return nw.sw.close()
}

// plug gives a node an eth0 at mtu on the switch, with a port at the switch's MTU: a NIC
// configured smaller than the network is exactly the first incident of mixed MTUs.
func (nw *network) plug(node *namespace, port, address string, mtu int) error {
	err := nw.sw.addLink(&netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: port, MTU: switchMTU, MasterIndex: 0},
		PeerName:  "eth0", PeerMTU: uint32(mtu), PeerNamespace: netlink.NsFd(node.ns),
	})
	if err != nil {
		return err
	}
	bridge, err := nw.sw.link(switchBridge)
	if err != nil {
		return err
	}
	p, err := nw.sw.link(port)
	if err != nil {
		return err
	}
	if err := nw.sw.nl.LinkSetMaster(p, bridge); err != nil {
		return fmt.Errorf("plugging %s into the switch: %w", port, err)
	}
	return errors.Join(
		nw.sw.up(port),
		node.addAddr("eth0", address+"/24"),
		node.up("lo", "eth0"),
		node.defaultRoute("eth0", switchAddress),
	)
}

// setPortMTU sets the MTU of one of the switch's ports.
func (nw *network) setPortMTU(port string, mtu int) error {
	l, err := nw.sw.link(port)
	if err != nil {
		return err
	}
	if err := nw.sw.nl.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("setting the MTU of switch port %s: %w", port, err)
	}
	return nil
}

// removeAll removes a directory the lab created, once its mounts are gone.
func removeAll(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", filepath.Clean(dir), err)
	}
	return nil
}
