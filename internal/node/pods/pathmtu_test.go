package pods_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/node/pods"
)

const (
	// podMTU is the MTU of the pod and, once the pin is released, of the whole path.
	podMTU = 1500
	// pinnedMTU is the MTU of the router's link towards the peer while the route is pinned.
	pinnedMTU = 1400
	// probeSize is the size of the IP packets the pod sends: between the two.
	probeSize = 1450
	// pathMTUWait bounds the wait for an ICMP error or a datagram, which take microseconds.
	pathMTUWait = 5 * time.Second
)

// ipFamily is one IP family of pathMTULab.
type ipFamily struct {
	name string
	// pod, routerPod, routerPeer and peer are the addresses of the pod, the router's two
	// links and the peer.
	pod, routerPod, routerPeer, peer string
	// headers are the IP and UDP header bytes of a probe.
	headers int
	// icmpOrigin is how a socket's error queue says an error came in ICMP of this family.
	icmpOrigin uint8
}

var ipFamilies = []ipFamily{
	{"IPv4", "10.99.1.2/24", "10.99.1.1/24", "10.99.2.1/24", "10.99.2.2/24", 20 + 8, unix.SO_EE_ORIGIN_ICMP},
	{"IPv6", "fd00:99:1::2/64", "fd00:99:1::1/64", "fd00:99:2::1/64", "fd00:99:2::2/64", 40 + 8, unix.SO_EE_ORIGIN_ICMP6},
}

func (f ipFamily) is4() bool { return netip.MustParsePrefix(f.pod).Addr().Is4() }

// addrOf returns the address of a CIDR.
func addrOf(t *testing.T, cidr string) netip.Addr {
	t.Helper()
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		t.Fatal(err)
	}
	return p.Addr()
}

// pathMTULab is a pod, a router and a peer, each in a namespace of its own:
//
//	pod eth0 (1500) ── r-pod (1500) router r-peer (1400) ── eth0 (1400) peer
//
// The router's link towards the peer is a pinned route: its smaller MTU makes the router answer
// the pod's larger don't-fragment packets with ICMP, from which the pod's kernel learns the
// path MTU to the peer. The pod's namespace has a file, as a container runtime makes one. The
// namespaces have the given IP families; a pod without IPv6 has it disabled.
type pathMTULab struct {
	pod, router, peer *nettest.Namespace
	podPath           string
	families          []ipFamily
	// listeners receive UDP on the peer, by family name.
	listeners map[string]*net.UDPConn
}

func newPathMTULab(t *testing.T, families []ipFamily) *pathMTULab {
	t.Helper()
	l := &pathMTULab{
		families:  families,
		pod:       nettest.NewNamespace(t),
		router:    nettest.NewNamespace(t),
		peer:      nettest.NewNamespace(t),
		podPath:   filepath.Join(t.TempDir(), "pod"),
		listeners: map[string]*net.UDPConn{},
	}
	// The router solicits the peer's IPv6 address from its own link-local one, which must not
	// wait a second or two for duplicate address detection: none on the router's links.
	sysctl(t, l.router, "net/ipv6/conf/all/accept_dad", "0")
	sysctl(t, l.router, "net/ipv6/conf/default/accept_dad", "0")
	l.pod.AddVeth(t, "eth0", "r-pod", l.router, podMTU)
	l.peer.AddVeth(t, "eth0", "r-peer", l.router, pinnedMTU)
	if slices.ContainsFunc(families, func(f ipFamily) bool { return !f.is4() }) {
		// No link-local address on the pod, which solicits from its global one: it would
		// appear during the test and change the pod's addresses.
		sysctl(t, l.pod, "net/ipv6/conf/eth0/addr_gen_mode", "1")
	} else {
		sysctl(t, l.pod, "net/ipv6/conf/all/disable_ipv6", "1")
	}
	sysctl(t, l.router, "net/ipv4/ip_forward", "1")
	sysctl(t, l.router, "net/ipv6/conf/all/forwarding", "1")
	for _, f := range l.families {
		l.pod.AddAddr(t, "eth0", f.pod)
		l.router.AddAddr(t, "r-pod", f.routerPod)
		l.router.AddAddr(t, "r-peer", f.routerPeer)
		l.peer.AddAddr(t, "eth0", f.peer)
	}
	l.pod.SetUp(t, "lo", "eth0")
	l.router.SetUp(t, "lo", "r-pod", "r-peer")
	l.peer.SetUp(t, "lo", "eth0")
	for _, f := range l.families {
		l.pod.AddRoute(t, &netlink.Route{LinkIndex: l.pod.Link(t, "eth0").Attrs().Index, Gw: addrOf(t, f.routerPod).AsSlice()})
		l.peer.AddRoute(t, &netlink.Route{LinkIndex: l.peer.Link(t, "eth0").Attrs().Index, Gw: addrOf(t, f.routerPeer).AsSlice()})
	}
	l.pod.WaitRunning(t, "eth0")
	l.router.WaitRunning(t, "r-pod", "r-peer")
	l.peer.WaitRunning(t, "eth0")
	nettest.BindMount(t, fmt.Sprintf("/proc/self/fd/%d", l.pod.NS), l.podPath)

	for _, f := range l.families {
		var conn *net.UDPConn
		at := net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrOf(t, f.peer), 0))
		err := netdev.InNamespace(l.peer.NS, func() (err error) {
			conn, err = net.ListenUDP("udp", at)
			return err
		})
		if err != nil {
			t.Fatalf("listening on the peer: %v", err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		l.listeners[f.name] = conn
	}
	return l
}

// sysctl writes a sysctl of the namespace, such as net/ipv4/ip_forward.
func sysctl(t *testing.T, ns *nettest.Namespace, name, value string) {
	t.Helper()
	err := netdev.InNamespace(ns.NS, func() error {
		return os.WriteFile("/proc/sys/"+name, []byte(value), 0)
	})
	if err != nil {
		t.Fatalf("setting %s to %s: %v", name, value, err)
	}
}

// send sends a don't-fragment UDP datagram, in an IP packet of probeSize bytes, from the pod to
// the peer's listener. It returns the new socket, which queues the ICMP errors it receives,
// and the error of sendto: EMSGSIZE when the pod's kernel already knows the packet is too large.
func (l *pathMTULab) send(t *testing.T, f ipFamily) (int, error) {
	t.Helper()
	domain, level, opts := unix.AF_INET, unix.IPPROTO_IP, [][2]int{
		{unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO},
		{unix.IP_RECVERR, 1},
	}
	if !f.is4() {
		domain, level, opts = unix.AF_INET6, unix.IPPROTO_IPV6, [][2]int{
			{unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO},
			{unix.IPV6_DONTFRAG, 1},
			{unix.IPV6_RECVERR, 1},
		}
	}
	var fd int
	err := netdev.InNamespace(l.pod.NS, func() (err error) {
		fd, err = unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatalf("%s: opening a socket in the pod: %v", f.name, err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, level, o[0], o[1]); err != nil {
			t.Fatalf("%s: socket option %d: %v", f.name, o[0], err)
		}
	}
	var to unix.Sockaddr
	port := l.listeners[f.name].LocalAddr().(*net.UDPAddr).AddrPort().Port()
	if peer := addrOf(t, f.peer); f.is4() {
		to = &unix.SockaddrInet4{Addr: peer.As4(), Port: int(port)}
	} else {
		to = &unix.SockaddrInet6{Addr: peer.As16(), Port: int(port)}
	}
	return fd, unix.Sendto(fd, make([]byte, probeSize-f.headers), 0, to)
}

// icmpError waits for the ICMP error queued on the socket fd and returns it.
func icmpError(t *testing.T, f ipFamily, fd int) unix.SockExtendedErr {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd)}} // POLLERR is always reported
	deadline := time.Now().Add(pathMTUWait)
	for {
		n, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("%s: waiting for an ICMP error: %v", f.name, err)
		}
		if n == 0 {
			t.Fatalf("%s: no ICMP error within %s: the router did not answer the datagram", f.name, pathMTUWait)
		}
		break
	}
	oob := make([]byte, 512)
	_, oobn, _, _, err := unix.Recvmsg(fd, make([]byte, podMTU), oob, unix.MSG_ERRQUEUE)
	if err != nil {
		t.Fatalf("%s: reading the ICMP error: %v", f.name, err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatalf("%s: parsing the ICMP error: %v", f.name, err)
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR ||
			m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR {
			var ee unix.SockExtendedErr
			if err := binary.Read(bytes.NewReader(m.Data), binary.NativeEndian, &ee); err != nil {
				t.Fatalf("%s: decoding the ICMP error: %v", f.name, err)
			}
			return ee
		}
	}
	t.Fatalf("%s: the error queue held no extended error: %+v", f.name, msgs)
	return unix.SockExtendedErr{}
}

// routeMTU returns the MTU the pod's kernel reports for its route to the peer: a learnt path
// MTU, or 0 when it has none and uses the link's.
func (l *pathMTULab) routeMTU(t *testing.T, f ipFamily) int {
	t.Helper()
	routes, err := l.pod.NL.RouteGet(addrOf(t, f.peer).AsSlice())
	if err != nil || len(routes) == 0 {
		t.Fatalf("%s: the pod's route to the peer: %v, %v", f.name, routes, err)
	}
	return routes[0].MTU
}

// receive waits for a datagram on the peer and returns its size.
func (l *pathMTULab) receive(t *testing.T, f ipFamily) (int, error) {
	t.Helper()
	conn := l.listeners[f.name]
	if err := conn.SetReadDeadline(time.Now().Add(pathMTUWait)); err != nil {
		t.Fatal(err)
	}
	n, _, err := conn.ReadFromUDPAddrPort(make([]byte, 2*podMTU))
	return n, err
}

// configured lists the pod's routes in every table (exceptions left out) and its addresses.
func (l *pathMTULab) configured(t *testing.T) []string {
	t.Helper()
	routes, err := l.pod.NL.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("listing the pod's routes: %v", err)
	}
	addrs, err := l.pod.NL.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("listing the pod's addresses: %v", err)
	}
	var out []string
	for _, r := range routes {
		out = append(out, "route "+r.String())
	}
	for _, a := range addrs {
		out = append(out, fmt.Sprintf("address %s flags %#x", a, a.Flags))
	}
	slices.Sort(out)
	return out
}

func TestFlushPathMTUForgetsWhatThePinTaughtThePod(t *testing.T) {
	testFlushPathMTU(t, ipFamilies)
}

func TestFlushPathMTUInAPodWithoutIPv6(t *testing.T) {
	testFlushPathMTU(t, ipFamilies[:1])
}

// testFlushPathMTU makes a pod of the given IP families learn a path MTU from a pinned route,
// releases the pin, and checks that FlushPathMTU, and nothing else, makes the pod forget it.
func testFlushPathMTU(t *testing.T, families []ipFamily) {
	l := newPathMTULab(t, families)

	// While the route is pinned the pod learns the smaller MTU from the router's ICMP.
	for _, f := range l.families {
		fd, err := l.send(t, f)
		if err != nil {
			t.Fatalf("%s: the first %d-byte datagram did not leave the pod: %v", f.name, probeSize, err)
		}
		ee := icmpError(t, f, fd)
		if ee.Origin != f.icmpOrigin || unix.Errno(ee.Errno) != unix.EMSGSIZE || ee.Info != pinnedMTU {
			t.Fatalf("%s: the pod got %+v, want the router's ICMP (origin %d) saying EMSGSIZE, MTU %d", f.name, ee, f.icmpOrigin, pinnedMTU)
		}
		if got := l.routeMTU(t, f); got != pinnedMTU {
			t.Fatalf("%s: the pod's kernel reports MTU %d towards the peer, want the learnt %d", f.name, got, pinnedMTU)
		}
		if _, err := l.send(t, f); !errors.Is(err, unix.EMSGSIZE) {
			t.Fatalf("%s: a second %d-byte datagram: %v, want EMSGSIZE at once", f.name, probeSize, err)
		}
	}

	// The pin is released: the router's link takes the pod's MTU again. The pod's kernel does
	// not know, and would keep the learnt MTU for net.ipv4.route.mtu_expires and its IPv6 twin
	// (10 minutes).
	l.peer.SetMTU(t, "eth0", podMTU)
	l.router.SetMTU(t, "r-peer", podMTU)
	for _, f := range l.families {
		if _, err := l.send(t, f); !errors.Is(err, unix.EMSGSIZE) {
			t.Fatalf("%s: after the release and before the flush, a %d-byte datagram: %v, want EMSGSIZE still", f.name, probeSize, err)
		}
	}

	before := l.configured(t)
	if err := pods.FlushPathMTU(l.podPath); err != nil {
		t.Fatalf("FlushPathMTU: %v", err)
	}

	for _, f := range l.families {
		if got := l.routeMTU(t, f); got != 0 {
			t.Errorf("%s: after the flush the pod's kernel reports MTU %d towards the peer, want none learnt", f.name, got)
		}
		if _, err := l.send(t, f); err != nil {
			t.Errorf("%s: after the flush a %d-byte datagram did not leave the pod: %v", f.name, probeSize, err)
			continue
		}
		if n, err := l.receive(t, f); err != nil || n != probeSize-f.headers {
			t.Errorf("%s: after the flush the peer received %d bytes, %v; want the %d-byte datagram", f.name, n, err, probeSize-f.headers)
		}
	}
	if after := l.configured(t); !slices.Equal(before, after) {
		t.Errorf("FlushPathMTU changed the pod's routes or addresses:\nbefore %s\n after %s",
			strings.Join(before, "\n       "), strings.Join(after, "\n       "))
	}
}

func TestFlushPathMTUOnAFileThatIsNotANamespace(t *testing.T) {
	dir := t.TempDir()
	leftover := filepath.Join(dir, "leftover")
	if err := os.WriteFile(leftover, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{leftover, filepath.Join(dir, "deleted")} {
		err := pods.FlushPathMTU(path)
		t.Log(err)
		if !errors.Is(err, pods.ErrNoNamespace) || !strings.Contains(err.Error(), path) {
			t.Errorf("FlushPathMTU on %s: %v, want ErrNoNamespace naming it", path, err)
		}
	}
}
