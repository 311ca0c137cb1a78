// Package pods reads and fixes the MTU of running pods' network interfaces.
//
// A CNI sets a pod's MTU once, when the pod starts. After the cluster's MTU changes (VXLAN's
// 1450 replaced by 1500 without encapsulation, say), pods started before keep the old value.
// The container runtime bind-mounts every pod's network namespace as a file in a directory
// (/var/run/netns for containerd and CRI-O); Scan reads each pod's interfaces from there,
// with the host end of each pod veth, and SetMTU changes both ends of one pod veth in place.
// FlushPathMTU makes a pod forget the smaller path MTUs it learnt while routes were pinned.
package pods

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
)

// Namespace is one pod network namespace found by Scan.
type Namespace struct {
	// Path is the namespace's file.
	Path string
	// Interfaces are its links but the loopback, in the order the kernel lists them.
	Interfaces []Interface
	// Err says why the namespace could not be read; Interfaces is then empty. The pod's MTU
	// is unknown, not fine.
	Err error
}

// Interface is a network interface of a pod, and its host end when it is a veth into the host
// namespace.
type Interface struct {
	Name string
	MTU  int
	// Addresses are the interface's global unicast addresses (private ranges included),
	// IPv4 then IPv6, each family sorted; link-local addresses are left out.
	Addresses []netip.Addr
	// HostPeerIndex, HostPeerName and HostPeerMTU describe the other end of a veth when it
	// is in the host namespace: its index there, its name and its MTU. They are zero when the
	// interface is not a veth, its peer is in the pod's own namespace, or the host has no veth
	// with the peer's index.
	//
	// The kernel tells a pod only the peer's index and that it lives in another namespace,
	// not which: a veth into a third namespace (another pod) whose peer index happens to be a
	// host veth's would be taken for that host veth. CNIs join pods to the host; a pod-to-pod
	// veth is rare.
	HostPeerIndex int
	HostPeerName  string
	HostPeerMTU   int
}

// scanWorkers bounds how many namespaces Scan reads at once, further bounded by GOMAXPROCS.
// A namespace costs system calls (entering it, a socket, two dumps), which a few workers
// overlap: on 2 CPUs, scanning 250 namespaces took 31ms with one worker, 22ms with 2 or 4, and
// 28ms with 8, whose threads only contend.
const scanWorkers = 4

// Scan reads the network interfaces of every network namespace file in dir, sorted by path.
// host is the namespace the pod veths lead to, where each interface's host end is looked up.
//
// Files that are not network namespaces (an empty file the runtime left behind, a directory,
// a namespace of another type) and namespaces that vanish before they are opened (a pod being
// deleted) are left out: neither is a pod whose MTU can be fixed, and both are common enough
// on a busy node that reporting them on every scan would be noise. A namespace that exists but
// cannot be read is returned with Err set. Scan itself fails only when dir or the host's links
// cannot be listed.
//
// Each namespace is opened once and dumped once (links, then addresses); the host's links are
// dumped once, after the pods', so the host end of a pod created during the scan is found.
func Scan(dir string, host netdev.Interfaces) ([]Namespace, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing network namespaces: %w", err)
	}
	type slot struct {
		ns   Namespace
		peer []peerRef // per interface, aligned with ns.Interfaces
		skip bool
	}
	slots := make([]slot, len(entries))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(scanWorkers, runtime.GOMAXPROCS(0), len(entries)) {
		wg.Go(func() {
			for i := range jobs {
				path := filepath.Join(dir, entries[i].Name())
				s := &slots[i]
				s.ns.Path = path
				var err error
				s.ns.Interfaces, s.peer, err = scanFile(path, entries[i].Type())
				switch {
				case errors.Is(err, ErrNoNamespace):
					s.skip = true
				case err != nil:
					s.ns.Err = err
				}
			}
		})
	}
	for i := range entries {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	hostLinks, err := host.Links()
	if err != nil {
		return nil, fmt.Errorf("listing the host's links: %w", err)
	}
	veths := map[int]netdev.Link{}
	for _, l := range hostLinks {
		if l.Kind == "veth" {
			veths[l.Index] = l
		}
	}

	// ReadDir sorts by name, so the namespaces are sorted by path.
	out := make([]Namespace, 0, len(slots))
	for _, s := range slots {
		if s.skip {
			continue
		}
		for j, p := range s.peer {
			if !p.inOtherNS {
				continue
			}
			if l, ok := veths[p.index]; ok {
				ifc := &s.ns.Interfaces[j]
				ifc.HostPeerIndex, ifc.HostPeerName, ifc.HostPeerMTU = l.Index, l.Name, l.MTU
			}
		}
		out = append(out, s.ns)
	}
	return out, nil
}

// ErrNoNamespace is wrapped by SetMTU's error when the namespace file is gone or is not a
// network namespace (any more): the pod has been deleted. Scan leaves such files out.
var ErrNoNamespace = errors.New("not a network namespace, or gone")

// peerRef is where the kernel says a pod veth's other end is.
type peerRef struct {
	// index is the peer's ifindex in its own namespace.
	index int
	// inOtherNS: the peer is in another namespace than the pod's interface (the kernel
	// reports a namespace id for it).
	inOtherNS bool
}

// scanFile reads one namespace file: its interfaces and where each veth's peer is.
func scanFile(path string, typ fs.FileMode) ([]Interface, []peerRef, error) {
	// A namespace file is a regular file (the nsfs inode mounted over one), or a link to
	// one. Anything else is not opened: opening a FIFO blocks, and opening a device can act.
	if typ.Type() == fs.ModeSymlink {
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, ErrNoNamespace // dangling, or gone
		}
		if err != nil {
			return nil, nil, fmt.Errorf("network namespace %s: %w", path, err)
		}
		typ = fi.Mode()
	}
	if !typ.IsRegular() {
		return nil, nil, ErrNoNamespace
	}
	beforeOpen(path)
	ns, err := openNetNS(path)
	if err != nil {
		return nil, nil, err
	}
	defer ns.Close()
	h, err := handleIn(ns)
	if err != nil {
		return nil, nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer h.Close()

	var links []netlink.Link
	if err := netdev.RetryInterrupted(func() (err error) { links, err = h.LinkList(); return err }); err != nil {
		return nil, nil, fmt.Errorf("network namespace %s: listing links: %w", path, err)
	}
	var addrs []netlink.Addr
	if err := netdev.RetryInterrupted(func() (err error) {
		addrs, err = h.AddrList(nil, netlink.FAMILY_ALL)
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("network namespace %s: listing addresses: %w", path, err)
	}
	byLink := map[int][]netip.Addr{}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if ip = ip.Unmap(); ok && ip.IsGlobalUnicast() {
			byLink[a.LinkIndex] = append(byLink[a.LinkIndex], ip)
		}
	}

	var ifaces []Interface
	var peers []peerRef
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 {
			continue
		}
		ips := byLink[a.Index]
		slices.SortFunc(ips, netip.Addr.Compare) // IPv4 sorts before IPv6
		ifaces = append(ifaces, Interface{Name: a.Name, MTU: a.MTU, Addresses: ips})
		peers = append(peers, peerOf(l))
	}
	return ifaces, peers, nil
}

// peerOf returns where a veth's other end is. For a veth the kernel reports the peer's ifindex
// as the link's IFLA_LINK (ParentIndex), in the peer's namespace, and adds IFLA_LINK_NETNSID
// (NetNsID) only when that namespace is not the link's own. This is the same index the veth
// driver reports through ethtool (netlink.VethPeerIndex), without a system call per interface.
func peerOf(l netlink.Link) peerRef {
	a := l.Attrs()
	if l.Type() != "veth" || a.ParentIndex <= 0 {
		return peerRef{}
	}
	return peerRef{index: a.ParentIndex, inOtherNS: a.NetNsID >= 0}
}

// beforeOpen runs between listing a namespace file and opening it; tests replace it to delete
// the namespace in that window.
var beforeOpen = func(string) {}

// openNetNS opens a network namespace file. A file that is gone or is not a network namespace
// is ErrNoNamespace.
func openNetNS(path string) (netns.NsHandle, error) {
	// O_NONBLOCK: a symbolic link to a FIFO must not block the scan.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if errors.Is(err, unix.ENOENT) {
		return netns.None(), ErrNoNamespace
	}
	if err != nil {
		return netns.None(), fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	ns := netns.NsHandle(fd)
	if ok, err := isNetNS(fd); err != nil || !ok {
		_ = ns.Close()
		if err != nil {
			return netns.None(), fmt.Errorf("opening network namespace %s: %w", path, err)
		}
		return netns.None(), ErrNoNamespace
	}
	return ns, nil
}

// isNetNS reports whether fd is a network namespace.
func isNetNS(fd int) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return false, fmt.Errorf("statfs: %w", err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return false, nil
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if errors.Is(err, unix.ENOTTY) {
		// A kernel before 4.11 cannot tell a namespace's type: let entering it decide.
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the namespace type: %w", err)
	}
	return typ == unix.CLONE_NEWNET, nil
}

// handleIn opens a netlink socket in ns. The socket stays in ns after the thread leaves it.
func handleIn(ns netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := netdev.InNamespace(ns, func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket: %w", err)
	}
	return h, nil
}

// Errors of SetMTU, for errors.Is.
var (
	// ErrPodSide: the pod's interface did not take the MTU.
	ErrPodSide = errors.New("pod side")
	// ErrHostSide: the host end of the pod's veth did not take the MTU.
	ErrHostSide = errors.New("host side")
	// ErrNotPeer: the named host link is not the other end of the pod's interface; nothing
	// was changed.
	ErrNotPeer = errors.New("not the pod interface's veth peer")
)

// SetMTU sets the MTU of the pod interface ifName, in the network namespace file nsPath, and of
// its veth peer hostPeer in host, to mtu. An empty hostPeer changes the pod side only, for an
// interface without a host end.
//
// Before changing anything it checks that hostPeer is the other end of ifName (ErrNotPeer
// otherwise), so a host link name reused since the scan is never touched.
//
// The sides change in the order that keeps the pod's packets no larger than what the host end
// accepts: lowering (mtu not above the pod side's current MTU) changes the pod side first,
// raising changes the host end first. A failure stops there, without undoing: the side already
// changed stays changed, which that order makes safe for what the pod sends, and the caller
// can try again.
// Afterwards both sides are read back; the error wraps ErrPodSide or ErrHostSide (or both) for
// the side that did not take the MTU, and names the namespace and the links.
func SetMTU(nsPath, ifName string, host netdev.Interfaces, hostPeer string, mtu int) error {
	if mtu <= 0 {
		return fmt.Errorf("setting MTU of %s in %s: MTU %d is not positive", ifName, nsPath, mtu)
	}
	ns, err := openNetNS(nsPath)
	if errors.Is(err, ErrNoNamespace) {
		err = fmt.Errorf("%s: %w", nsPath, err)
	}
	if err != nil {
		return fmt.Errorf("setting MTU of %s: %w", ifName, err)
	}
	defer ns.Close()
	h, err := handleIn(ns)
	if err != nil {
		return fmt.Errorf("setting MTU of %s in %s: %w", ifName, nsPath, err)
	}
	defer h.Close()

	pod := side{name: ifName + " in " + nsPath, kind: ErrPodSide,
		set: func() error { return setLinkMTU(h, ifName, mtu) },
		get: func() (int, error) { return linkMTU(h, ifName) },
	}
	podLink, err := linkByName(h, ifName)
	if err != nil {
		return fmt.Errorf("%w %s in %s: %w", ErrPodSide, ifName, nsPath, err)
	}
	sides := []side{pod}
	if hostPeer != "" {
		if err := checkPeer(podLink, host, hostPeer); err != nil {
			return fmt.Errorf("setting MTU of %s in %s and its host end %s: %w", ifName, nsPath, hostPeer, err)
		}
		hostSide := side{name: hostPeer + " (peer of " + ifName + " in " + nsPath + ")", kind: ErrHostSide,
			set: func() error { return host.SetMTU(hostPeer, mtu) },
			get: func() (int, error) { return hostMTU(host, hostPeer) },
		}
		if mtu <= podLink.Attrs().MTU {
			sides = []side{pod, hostSide}
		} else {
			sides = []side{hostSide, pod}
		}
	}

	for _, s := range sides {
		if err := s.set(); err != nil {
			return fmt.Errorf("%w %s: setting MTU %d: %w", s.kind, s.name, mtu, err)
		}
	}
	var errs []error
	for _, s := range sides {
		got, err := s.get()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%w %s: reading MTU back: %w", s.kind, s.name, err))
		case got != mtu:
			errs = append(errs, fmt.Errorf("%w %s: MTU is %d after setting %d", s.kind, s.name, got, mtu))
		}
	}
	return errors.Join(errs...)
}

// side is one end of a pod veth for SetMTU.
type side struct {
	// name describes the side for errors.
	name string
	// kind is ErrPodSide or ErrHostSide.
	kind error
	set  func() error
	get  func() (int, error)
}

// checkPeer verifies that the host link hostPeer is the other end of the pod's veth.
func checkPeer(podLink netlink.Link, host netdev.Interfaces, hostPeer string) error {
	h, err := host.LinkByName(hostPeer)
	if errors.Is(err, netdev.ErrLinkNotFound) {
		return fmt.Errorf("%w: %w", ErrHostSide, err)
	}
	if err != nil {
		return fmt.Errorf("reading the host's %s: %w", hostPeer, err)
	}
	p := peerOf(podLink)
	switch {
	case podLink.Type() != "veth":
		return fmt.Errorf("%w: the pod's %s is a %s, not a veth", ErrNotPeer, podLink.Attrs().Name, podLink.Type())
	case !p.inOtherNS:
		return fmt.Errorf("%w: the pod's %s is a veth whose peer is in the pod's namespace too", ErrNotPeer, podLink.Attrs().Name)
	case h.Kind != "veth":
		return fmt.Errorf("%w: host link %s is a %s, not a veth", ErrNotPeer, hostPeer, h.Kind)
	case p.index != h.Index:
		return fmt.Errorf("%w: host link %s has index %d, the peer of the pod's %s has index %d",
			ErrNotPeer, hostPeer, h.Index, podLink.Attrs().Name, p.index)
	}
	return nil
}

// linkByName finds a link; the error wraps netdev.ErrLinkNotFound when there is none.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, netdev.LinkError(err)
	}
	return l, nil
}

func setLinkMTU(h *netlink.Handle, name string, mtu int) error {
	l, err := linkByName(h, name)
	if err != nil {
		return err
	}
	return h.LinkSetMTU(l, mtu)
}

func linkMTU(h *netlink.Handle, name string) (int, error) {
	l, err := linkByName(h, name)
	if err != nil {
		return 0, err
	}
	return l.Attrs().MTU, nil
}

func hostMTU(host netdev.Interfaces, name string) (int, error) {
	l, err := host.LinkByName(name)
	return l.MTU, err
}

// FlushPathMTU makes the pod whose network namespace file is nsPath forget the path MTUs its
// kernel learnt from ICMP "fragmentation needed" (IPv4) and "packet too big" (IPv6), which it
// would otherwise keep for net.ipv4.route.mtu_expires and net.ipv6.route.mtu_expires (10
// minutes): its next packets are sized by its routes and links again. Call it once the smaller
// MTU is gone from the path, or the pod learns it again from its next large packet. Learnt
// redirects are forgotten too, and learnt again when needed. Configured routes and addresses
// stay as they are. A namespace without IPv6 has only IPv4 to forget.
//
// A file that is gone or is not a network namespace is ErrNoNamespace. Otherwise both families
// are tried and the error joins what failed. IPv4 needs /proc/sys writable (a privileged
// container); a kernel before 5.3 cannot list IPv6 exceptions, which then stay until they expire.
func FlushPathMTU(nsPath string) error {
	ns, err := openNetNS(nsPath)
	if errors.Is(err, ErrNoNamespace) {
		err = fmt.Errorf("%s: %w", nsPath, err)
	}
	if err != nil {
		return fmt.Errorf("flushing path MTUs: %w", err)
	}
	defer ns.Close()

	var v4Err error
	var sock *nl.NetlinkSocket
	err = netdev.InNamespace(ns, func() (err error) {
		v4Err = flushIPv4Exceptions()
		sock, err = nl.GetNetlinkSocketAt(netns.None(), netns.None(), unix.NETLINK_ROUTE) // this thread's namespace
		return err
	})
	if err != nil {
		return errors.Join(v4Err, fmt.Errorf("flushing IPv6 path MTUs in %s: opening a netlink socket: %w", nsPath, err))
	}
	defer sock.Close()
	if v4Err != nil {
		v4Err = fmt.Errorf("flushing IPv4 path MTUs in %s: %w", nsPath, v4Err)
	}
	v6Err := flushIPv6Exceptions(sock)
	if v6Err != nil {
		v6Err = fmt.Errorf("flushing IPv6 path MTUs in %s: %w", nsPath, v6Err)
	}
	return errors.Join(v4Err, v6Err)
}

// ipv4RouteFlush is the IPv4 route flush control of the namespace of the thread that opens it:
// /proc/sys/net shows the opening thread's network namespace, whatever the mount.
const ipv4RouteFlush = "/proc/sys/net/ipv4/route/flush"

// flushIPv4Exceptions runs on a thread inside the namespace. The kernel keeps a learnt IPv4 path
// MTU as a nexthop exception, which no netlink request deletes. Writing anything to the flush
// control invalidates the cached routes and bumps the namespace's exception generation
// (ipv4_sysctl_rtcache_flush); the next lookup towards a destination finds its exception
// outdated and resets the MTU and redirect in it (rt_bind_exception).
func flushIPv4Exceptions() error {
	f, err := os.OpenFile(ipv4RouteFlush, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("1\n")
	return errors.Join(err, f.Close())
}

// flushIPv6Exceptions deletes the IPv6 route exceptions (RTF_CACHE routes) of the socket's
// namespace, as `ip -6 route flush cache` does. Writing to net.ipv6.route.flush would only run
// the garbage collector, which keeps a path-MTU exception until it expires.
//
// The dump asks for exceptions (RTM_F_CLONED), but without strict checking (a socket option
// this socket does not set) the kernel sends the routes too, and a kernel without IPv6 answers
// with every family's, so each message is checked for both. An exception gone between the dump and its deletion (it expired)
// is not an error.
func flushIPv6Exceptions(s *nl.NetlinkSocket) error {
	sockets := map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
	var exceptions [][]byte
	err := netdev.RetryInterrupted(func() error {
		exceptions = exceptions[:0]
		req := nl.NewNetlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_DUMP)
		req.Sockets = sockets
		req.AddData(&nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET6, Flags: unix.RTM_F_CLONED}})
		return req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE, func(m []byte) bool {
			msg := nl.DeserializeRtMsg(m)
			if msg.Family == unix.AF_INET6 && msg.Flags&unix.RTM_F_CLONED != 0 {
				exceptions = append(exceptions, m)
			}
			return true
		})
	})
	if err != nil {
		return fmt.Errorf("listing route exceptions: %w", err)
	}
	var errs []error
	for _, m := range exceptions {
		del, err := deleteException(m)
		if err == nil {
			del.Sockets = sockets
			_, err = del.Execute(unix.NETLINK_ROUTE, 0)
		}
		if err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("deleting route exception: %w", err))
		}
	}
	return errors.Join(errs...)
}

// deleteException turns a dumped IPv6 route exception into the request that deletes it: the
// kernel finds the route it hangs from by destination, source and table, then the exception by
// RTM_F_CLONED, its device and its gateway (ip6_route_del).
func deleteException(m []byte) (*nl.NetlinkRequest, error) {
	msg := nl.DeserializeRtMsg(m)
	attrs, err := nl.ParseRouteAttr(m[msg.Len():])
	if err != nil {
		return nil, err
	}
	req := nl.NewNetlinkRequest(unix.RTM_DELROUTE, unix.NLM_F_ACK)
	req.AddData(&nl.RtMsg{RtMsg: unix.RtMsg{
		Family:  unix.AF_INET6,
		Dst_len: msg.Dst_len,
		Src_len: msg.Src_len,
		Table:   msg.Table,
		Type:    msg.Type,
		Flags:   unix.RTM_F_CLONED,
	}})
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_DST, unix.RTA_SRC, unix.RTA_TABLE, unix.RTA_OIF, unix.RTA_GATEWAY:
			req.AddData(nl.NewRtAttr(int(a.Attr.Type), a.Value))
		}
	}
	return req, nil
}
