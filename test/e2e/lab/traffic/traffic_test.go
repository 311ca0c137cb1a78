package traffic_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
	"github.com/mtu-operator/mtu-operator/test/e2e/lab/traffic"
)

const (
	podMTU = 1500
	// pathMTU is the MTU of the router's link towards pod B.
	pathMTU = 1400
)

// network is pod A —— router —— pod B. The pods' links are at podMTU; the router's link to
// B is at pathMTU, so the path from A to B carries pathMTU bytes and the router reports
// anything larger with ICMP.
type network struct {
	dir       string
	a, router *nettest.Namespace
	// b is pod B's namespace, mounted at dir/b.
	b *nettest.Namespace
	// A and B by IPv4 and IPv6 address.
	a4, a6, b4, b6 traffic.Endpoint
}

// family is pod A and pod B by the addresses of one IP family.
type family struct {
	name     string
	from, to traffic.Endpoint
}

// families are A to B over IPv4, then over IPv6.
func (n *network) families() []family {
	return []family{{"IPv4", n.a4, n.b4}, {"IPv6", n.a6, n.b6}}
}

// newNetwork builds the network; pod B's namespace is b, or a new one when b is nil.
func newNetwork(t *testing.T, b *nettest.Namespace) *network {
	t.Helper()
	n := &network{dir: t.TempDir(), a: nettest.NewNamespace(t), router: nettest.NewNamespace(t), b: b}
	// The router sends neighbor solicitations for the packets it forwards from its link-local
	// address, and sends none while that is tentative: the first second of IPv6 traffic would
	// be dropped. Its links skip duplicate address detection.
	sysctl(t, n.router, "net/ipv6/conf/default/accept_dad", "0")
	n.a.AddVeth(t, "eth0", "eth0", n.router, podMTU)
	addresses(t, n.a, "eth0", "10.1.0.1/24", "fd01::1/64")
	addresses(t, n.router, "eth0", "10.1.0.254/24", "fd01::254/64")
	n.a.WaitRunning(t, "eth0")
	n.router.WaitRunning(t, "eth0")
	gateways(t, n.a, "10.1.0.254", "fd01::254")
	setForwarding(t, n.router, true)
	fileA := mount(t, n.a, filepath.Join(n.dir, "a"))
	n.a4 = traffic.Endpoint{NetnsFile: fileA, IP: "10.1.0.1"}
	n.a6 = traffic.Endpoint{NetnsFile: fileA, IP: "fd01::1"}
	if n.b == nil {
		n.b = nettest.NewNamespace(t)
	}
	n.b4, n.b6 = n.plug(t, n.b, "b", "10.2.0.2", "fd02::2")
	return n
}

// plug connects a pod namespace to the router's eth1 and mounts it at dir/name.
func (n *network) plug(t *testing.T, pod *nettest.Namespace, name, ip4, ip6 string) (v4, v6 traffic.Endpoint) {
	t.Helper()
	n.router.AddVeth(t, "eth1", "eth0", pod, pathMTU)
	pod.SetMTU(t, "eth0", podMTU)
	addresses(t, n.router, "eth1", "10.2.0.254/24", "fd02::254/64")
	addresses(t, pod, "eth0", ip4+"/24", ip6+"/64")
	n.router.WaitRunning(t, "eth1")
	pod.WaitRunning(t, "eth0")
	gateways(t, pod, "10.2.0.254", "fd02::254")
	file := mount(t, pod, filepath.Join(n.dir, name))
	return traffic.Endpoint{NetnsFile: file, IP: ip4}, traffic.Endpoint{NetnsFile: file, IP: ip6}
}

func addresses(t *testing.T, ns *nettest.Namespace, link string, cidrs ...string) {
	t.Helper()
	for _, cidr := range cidrs {
		ns.AddAddr(t, link, cidr)
	}
	ns.SetUp(t, link)
}

func gateways(t *testing.T, ns *nettest.Namespace, gws ...string) {
	t.Helper()
	for _, gw := range gws {
		ns.AddRoute(t, &netlink.Route{LinkIndex: ns.Link(t, "eth0").Attrs().Index, Gw: net.ParseIP(gw)})
	}
}

func mount(t *testing.T, ns *nettest.Namespace, file string) string {
	t.Helper()
	nettest.BindMount(t, fmt.Sprintf("/proc/self/fd/%d", int(ns.NS)), file)
	return file
}

func setForwarding(t *testing.T, router *nettest.Namespace, on bool) {
	t.Helper()
	value := "0"
	if on {
		value = "1"
	}
	sysctl(t, router, "net/ipv4/ip_forward", value)
	sysctl(t, router, "net/ipv6/conf/all/forwarding", value)
}

// sysctl sets a namespace's /proc/sys/<name>.
func sysctl(t *testing.T, ns *nettest.Namespace, name, value string) {
	t.Helper()
	if err := netdev.InNamespace(ns.NS, func() error {
		// /proc/sys/net belongs to the namespace of the thread that opens it.
		return os.WriteFile("/proc/sys/"+name, []byte(value), 0o644)
	}); err != nil {
		t.Fatalf("setting %s to %s: %v", name, value, err)
	}
}

// detachedNamespace returns a namespace that nothing but its mount will hold once the test
// calls release: unmounting it then destroys it, as deleting a pod does.
func detachedNamespace(t *testing.T) (ns *nettest.Namespace, release func()) {
	t.Helper()
	nettest.RequirePrivileged(t)
	handle, err := nettest.CreateNamespace()
	if err != nil {
		t.Fatal(err)
	}
	nl, err := netlink.NewHandleAt(handle, unix.NETLINK_ROUTE)
	if err != nil {
		_ = handle.Close()
		t.Fatal(err)
	}
	ns = &nettest.Namespace{NS: handle, NL: nl}
	release = func() {
		nl.Close()
		if ns.NS >= 0 {
			_ = ns.NS.Close()
		}
	}
	t.Cleanup(release)
	return ns, release
}

const (
	count = 20
	// probeTimeout is long when every datagram should arrive (Probe ends as they do), and
	// bounds the wait when one cannot.
	probeTimeout = 300 * time.Millisecond
)

func probe(t *testing.T, from, to traffic.Endpoint, size int) traffic.Result {
	t.Helper()
	r, err := traffic.Probe(t.Context(), from, to, size, count, probeTimeout)
	if err != nil {
		t.Fatalf("Probe %d B from %s to %s: %v", size, from.IP, to.IP, err)
	}
	t.Logf("%d B to %s: %s", size, to.IP, r)
	return r
}

// TestProbeSeesWhatAnApplicationSees walks the sizes around the path MTU, in order: what the
// kernel learns from one step shapes the next.
func TestProbeSeesWhatAnApplicationSees(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil)
	for _, family := range n.families() {
		t.Run(family.name, func(t *testing.T) {
			from, to := family.from, family.to
			if r := probe(t, from, to, pathMTU); r.Delivered != count || len(r.Errors) != 0 {
				t.Errorf("at the path MTU: %s, want all %d delivered without errors", r, count)
			}
			r := probe(t, from, to, pathMTU+1)
			if r.Delivered != 0 {
				t.Errorf("one byte over the path MTU: %s, want none delivered: the router must not fragment", r)
			}
			if r.Accepted() < 1 || r.Errors[traffic.MessageTooLong] != r.Sent-r.Accepted() || r.Errors[traffic.MessageTooLong] < count/2 {
				t.Errorf("one byte over the path MTU: %s, want the first datagrams to leave and draw the router's ICMP report, then the rest to fail with message too long", r)
			}
			if r := probe(t, from, to, pathMTU+1); r.Errors[traffic.MessageTooLong] != count {
				t.Errorf("again, with the path MTU known: %s, want all %d to fail with message too long", r, count)
			}
			if r := probe(t, from, to, pathMTU); r.Delivered != count {
				t.Errorf("at the path MTU after learning it: %s, want all %d delivered", r, count)
			}
			if r := probe(t, from, to, podMTU+1); r.Errors[traffic.MessageTooLong] != count {
				t.Errorf("over the pod's own MTU: %s, want all %d to fail with message too long", r, count)
			}
		})
	}
}

const interval = 20 * time.Millisecond

func start(t *testing.T, from, to traffic.Endpoint, sizes ...int) *traffic.Prober {
	t.Helper()
	p, err := traffic.Start(from, to, sizes, interval)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { p.Stop() })
	return p
}

func TestProberCountsLossPerSize(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil)
	for _, family := range n.families() {
		t.Run(family.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, family.from, family.to, pathMTU+1, pathMTU)
			time.Sleep(400 * time.Millisecond)
			during := p.Snapshot()
			r := p.Stop()
			t.Logf("snapshot:\n%s\nstopped:\n%s", during, r)
			if fits := during.Size(pathMTU); fits.Lost != 0 {
				t.Errorf("snapshot at the path MTU: %s, want nothing lost", fits)
			}
			// The router dropped the first datagram one byte over; the kernel refused the
			// others. Less than a second later that first one is in flight, not lost yet.
			if over := during.Size(pathMTU + 1); over.InFlight() != 1 || over.Lost != over.Sent-1 {
				t.Errorf("snapshot one byte over: %s, want the first datagram in flight and the others lost", over)
			}
			fits, over := r.Size(pathMTU), r.Size(pathMTU+1)
			if fits.Sent < 10 || fits.Delivered != fits.Sent || fits.Lost != 0 {
				t.Errorf("at the path MTU: %s, want at least 10 sent and all delivered", fits)
			}
			if over.Sent < 10 || over.Lost != over.Sent || over.Delivered != 0 || over.Errors[traffic.MessageTooLong] < over.Sent-2 {
				t.Errorf("one byte over: %s, want at least 10 sent, all lost, almost all with message too long", over)
			}
			if over.FirstLoss.IsZero() || over.LastLoss.Before(over.FirstLoss) {
				t.Errorf("one byte over: first loss %s, last %s, want both set and in order", over.FirstLoss, over.LastLoss)
			}
			if want := fmt.Sprintf("%d B: sent %d, lost 0\n%d B: sent %d, lost %d, %d message too long",
				pathMTU, fits.Sent, pathMTU+1, over.Sent, over.Lost, over.Errors[traffic.MessageTooLong]); r.String() != want {
				t.Errorf("String() =\n%s\nwant\n%s", r, want)
			}
		})
	}
}

func TestMarkCountsOneStep(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil)
	p := start(t, n.a4, n.b4, pathMTU)
	time.Sleep(300 * time.Millisecond)
	before := p.Mark().Size(pathMTU)

	// The step: the router stops forwarding for a while. It drops the datagrams without a
	// word (no ICMP while forwarding is off), so only the receiver can tell they are lost.
	setForwarding(t, n.router, false)
	time.Sleep(300 * time.Millisecond)
	setForwarding(t, n.router, true)
	during := p.Mark().Size(pathMTU)

	time.Sleep(300 * time.Millisecond)
	after := p.Mark().Size(pathMTU)
	t.Logf("before: %s\nduring: %s\nafter: %s", before, during, after)

	if before.Sent < 5 || before.Lost != 0 {
		t.Errorf("before the step: %s, want at least 5 sent and none lost", before)
	}
	// A window's edge may catch one datagram of the state before or after it.
	if during.Sent < 5 || during.Lost < during.Sent-1 || len(during.Errors) != 0 {
		t.Errorf("during the step: %s, want at least 5 sent, all but one lost, no send failing", during)
	}
	if after.Sent < 5 || after.Lost > 1 || after.InFlight() != 0 {
		t.Errorf("after the step: %s, want at least 5 sent, at most one lost, none in flight", after)
	}
	if total := p.Snapshot().Size(pathMTU); total.Sent < before.Sent+during.Sent+after.Sent || total.Lost < during.Lost {
		t.Errorf("Snapshot %s counts fewer than the windows together", total)
	}
}

func txPackets(t *testing.T, ns *nettest.Namespace) uint64 {
	t.Helper()
	return ns.Link(t, "eth0").Attrs().Statistics.TxPackets
}

func TestSetEndpointsSwapsDirection(t *testing.T) {
	t.Parallel()
	n := newNetwork(t, nil)
	p := start(t, n.a4, n.b4, pathMTU)
	time.Sleep(200 * time.Millisecond)
	if r := p.Mark().Size(pathMTU); r.Sent < 5 || r.Lost != 0 {
		t.Errorf("from A to B: %s, want at least 5 sent and none lost", r)
	}
	txA, txB := txPackets(t, n.a), txPackets(t, n.b)
	if err := p.SetEndpoints(n.b4, n.a4); err != nil {
		t.Fatalf("SetEndpoints: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	// Read the counters before Mark, which may wait while the prober goes on sending.
	fromA, fromB := txPackets(t, n.a)-txA, txPackets(t, n.b)-txB
	r := p.Mark().Size(pathMTU)
	t.Logf("from B to A: %s; packets sent by A %d, by B %d", r, fromA, fromB)
	// The window opened before the move: it may hold one datagram from A, lost if it was
	// still on its way when the move closed B's receiver.
	if r.Sent < 10 || r.Lost > 1 {
		t.Errorf("from B to A: %s, want at least 10 sent and at most one lost", r)
	}
	if fromB < uint64(r.Sent-1) || fromA > 3 {
		t.Errorf("B sent %d packets and A %d while the prober sent %d datagrams: they did not go from B", fromB, fromA, r.Sent)
	}
}

// TestProberLetsGoOfDeletedPods follows pods being replaced. Each step sits between two
// Marks: a window closes when Mark is called, and Mark returns once the window has settled,
// up to LossGrace later while the prober goes on sending.
func TestProberLetsGoOfDeletedPods(t *testing.T) {
	t.Parallel()
	b, release := detachedNamespace(t)
	n := newNetwork(t, b)
	release() // now only the mount, and the prober's receiver, hold B
	p := start(t, n.a4, n.b4, pathMTU)
	time.Sleep(200 * time.Millisecond)
	if r := p.Mark().Size(pathMTU); r.Sent < 5 || r.Lost != 0 {
		t.Errorf("to B: %s, want at least 5 sent and none lost", r)
	}

	// Delete pod B as the lab does: unmount its namespace. The kernel destroys it, and the
	// router's end of its veth, only if the prober lets go.
	if err := nettest.Unmount(n.b4.NetnsFile); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the deleted pod's namespace destroyed", 2*time.Second, func() error {
		if _, err := n.router.NL.LinkByName("eth1"); err == nil {
			return errors.New("the router still has its link to the deleted pod")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	// Until the prober notices, a round or two still reaches the doomed pod.
	if r := p.Mark().Size(pathMTU); r.Sent < 5 || r.Lost < r.Sent-2 {
		t.Errorf("to the deleted pod: %s, want at least 5 sent and all but two lost", r)
	}

	// Its replacement comes up with another address.
	c4, _ := n.plug(t, nettest.NewNamespace(t), "c", "10.2.0.3", "fd02::3")
	if err := p.SetEndpoints(n.a4, c4); err != nil {
		t.Fatalf("SetEndpoints: %v", err)
	}
	t.Logf("while the replacement came up: %s", p.Mark())
	time.Sleep(300 * time.Millisecond)
	if r := p.Mark().Size(pathMTU); r.Sent < 10 || r.Lost != 0 {
		t.Errorf("to the replacement: %s, want at least 10 sent and none lost", r)
	}

	// The source pod is deleted too.
	if err := nettest.Unmount(n.a4.NetnsFile); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if r := p.Mark().Size(pathMTU); r.Sent < 10 || r.Lost < r.Sent-1 || r.Errors[traffic.SourceGone] < r.Sent-2 {
		t.Errorf("from the deleted pod: %s, want at least 10 sent, nearly all failing because the source namespace is gone", r)
	}
}
