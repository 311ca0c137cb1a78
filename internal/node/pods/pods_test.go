package pods_test

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/node/pods"
)

// TestMain also fails the run when a test left a namespace bind-mounted: nettest.Main watches
// links, named namespaces and handles, not mounts elsewhere.
func TestMain(m *testing.M) {
	before, err := nsfsMounts()
	if err != nil {
		fmt.Fprintf(os.Stderr, "reading mounts: %v\n", err)
		os.Exit(1)
	}
	code := nettest.Main(m)
	after, err := nsfsMounts()
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "reading mounts: %v\n", err)
		code = 1
	case !slices.Equal(before, after):
		fmt.Fprintf(os.Stderr, "namespace mounts changed: before %v, after %v\n", before, after)
		code = 1
	}
	os.Exit(code)
}

// nsfsMounts returns the mount points of namespace files, from /proc/self/mountinfo.
func nsfsMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		// ID parent major:minor root mountpoint options... - fstype source superoptions
		fields := strings.Fields(s.Text())
		sep := slices.Index(fields, "-")
		if sep > 4 && sep+1 < len(fields) && fields[sep+1] == "nsfs" {
			out = append(out, fields[4])
		}
	}
	return out, s.Err()
}

// node is a throwaway host namespace with the bridge cni0 (MTU 1450) and a directory of pod
// namespace files, as a container runtime keeps in /var/run/netns.
type node struct {
	*nettest.Namespace
	dev *netdev.Handle
	dir string
}

func newNode(tb testing.TB) *node {
	tb.Helper()
	ns := nettest.NewNamespace(tb)
	dev := ns.Handle(tb)
	ns.AddLink(tb, &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cni0", MTU: 1450}})
	return &node{Namespace: ns, dev: dev, dir: tb.TempDir()}
}

// pod is a pod's namespace and its file.
type pod struct {
	*nettest.Namespace
	path string
}

// addPod creates a pod namespace, bind-mounted at name in the node's directory, with eth0 at
// mtu and the given addresses, joined by a veth to hostVeth, a port of cni0.
func (n *node) addPod(tb testing.TB, name, hostVeth string, mtu int, cidrs ...string) *pod {
	tb.Helper()
	p := n.addUnnamedPod(tb, name, hostVeth, mtu, cidrs...)
	nettest.BindMount(tb, fmt.Sprintf("/proc/self/fd/%d", p.NS), p.path)
	return p
}

// addUnnamedPod is addPod without the namespace file.
func (n *node) addUnnamedPod(tb testing.TB, name, hostVeth string, mtu int, cidrs ...string) *pod {
	tb.Helper()
	p := &pod{Namespace: nettest.NewNamespace(tb), path: filepath.Join(n.dir, name)}
	n.AddVeth(tb, hostVeth, "eth0", p.Namespace, mtu)
	if err := n.NL.LinkSetMaster(n.Link(tb, hostVeth), n.Link(tb, "cni0")); err != nil {
		tb.Fatalf("attaching %s to cni0: %v", hostVeth, err)
	}
	for _, cidr := range cidrs {
		p.AddAddr(tb, "eth0", cidr)
	}
	return p
}

func scan(t *testing.T, n *node) map[string]pods.Namespace {
	t.Helper()
	got, err := pods.Scan(n.dir, n.dev)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if !slices.IsSortedFunc(got, func(a, b pods.Namespace) int { return strings.Compare(a.Path, b.Path) }) {
		t.Errorf("Scan did not sort by path: %+v", got)
	}
	out := map[string]pods.Namespace{}
	for _, ns := range got {
		out[filepath.Base(ns.Path)] = ns
	}
	return out
}

func interfaces(ns pods.Namespace) map[string]pods.Interface {
	out := map[string]pods.Interface{}
	for _, i := range ns.Interfaces {
		out[i.Name] = i
	}
	return out
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestScanReportsPodInterfacesAndTheirHostEnds(t *testing.T) {
	n := newNode(t)
	a := n.addPod(t, "cni-a", "veth-a", 1450, "10.244.0.5/24", "fd00:10:244::5/64", "fe80::5/64", "169.254.1.5/16")
	// A veth pair inside the pod: its peers are in the pod, though their indexes there are
	// also host veths' indexes.
	a.AddVeth(t, "in0", "in1", a.Namespace, 1500)
	b := n.addPod(t, "cni-b", "veth-b", 1500, "10.244.0.6/24")
	// A symbolic link to a namespace, as some set-ups make for Docker containers.
	c := n.addUnnamedPod(t, "cni-c", "veth-c", 1450, "fd00:10:244::7/64", "10.244.0.7/24")
	if err := os.Symlink(fmt.Sprintf("/proc/self/fd/%d", c.NS), c.path); err != nil {
		t.Fatal(err)
	}
	n.SetUp(t, "cni0", "veth-a", "veth-b")
	a.SetUp(t, "eth0")
	b.SetUp(t, "eth0")

	hostIndex := func(name string) int { return n.Link(t, name).Attrs().Index }
	coincide := false
	for _, name := range []string{"in0", "in1"} {
		peer := a.Link(t, name).Attrs().ParentIndex
		coincide = coincide || peer == hostIndex("veth-a") || peer == hostIndex("veth-b")
	}
	if !coincide {
		t.Fatalf("test set-up: the in-pod veth's peer indexes do not collide with a host veth's, so the test could not catch a mix-up")
	}

	got := scan(t, n)
	if len(got) != 3 {
		t.Fatalf("Scan found %d namespaces, want cni-a, cni-b and cni-c: %+v", len(got), got)
	}
	want := map[string]map[string]pods.Interface{
		"cni-a": {
			"eth0": {Name: "eth0", MTU: 1450, Addresses: addrs("10.244.0.5", "fd00:10:244::5"),
				HostPeerIndex: hostIndex("veth-a"), HostPeerName: "veth-a", HostPeerMTU: 1450},
			"in0": {Name: "in0", MTU: 1500},
			"in1": {Name: "in1", MTU: 1500},
		},
		"cni-b": {
			"eth0": {Name: "eth0", MTU: 1500, Addresses: addrs("10.244.0.6"),
				HostPeerIndex: hostIndex("veth-b"), HostPeerName: "veth-b", HostPeerMTU: 1500},
		},
		"cni-c": {
			"eth0": {Name: "eth0", MTU: 1450, Addresses: addrs("10.244.0.7", "fd00:10:244::7"),
				HostPeerIndex: hostIndex("veth-c"), HostPeerName: "veth-c", HostPeerMTU: 1450},
		},
	}
	for name, ifaces := range want {
		ns := got[name]
		if ns.Err != nil {
			t.Errorf("%s: Err = %v", name, ns.Err)
		}
		if ns.Path != filepath.Join(n.dir, name) {
			t.Errorf("%s: Path = %q, want %q", name, ns.Path, filepath.Join(n.dir, name))
		}
		if g := interfaces(ns); !reflect.DeepEqual(g, ifaces) {
			t.Errorf("%s interfaces:\n got %+v\nwant %+v", name, g, ifaces)
		}
	}

	// The veth driver's own account of the peer (ethtool's peer_ifindex) agrees.
	var ethtoolPeer int
	err := netdev.InNamespace(a.NS, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		ethtoolPeer, err = netlink.VethPeerIndex(l.(*netlink.Veth))
		return err
	})
	if err != nil {
		t.Fatalf("reading eth0's peer index with ethtool: %v", err)
	}
	if ethtoolPeer != interfaces(got["cni-a"])["eth0"].HostPeerIndex {
		t.Errorf("ethtool says eth0's peer is %d, Scan says %d", ethtoolPeer, interfaces(got["cni-a"])["eth0"].HostPeerIndex)
	}
}

func TestScanSkipsFilesThatAreNotNetworkNamespaces(t *testing.T) {
	n := newNode(t)
	n.addPod(t, "cni-a", "veth-a", 1450)
	// An empty file, as a runtime leaves when it unmounts a namespace and stops before
	// removing the file; a directory; a namespace of another type; a dangling link; a link
	// to a FIFO, which must not be opened (it would block).
	if err := os.WriteFile(filepath.Join(n.dir, "leftover"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(n.dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	nettest.BindMount(t, "/proc/self/ns/uts", filepath.Join(n.dir, "uts"))
	if err := os.Symlink(filepath.Join(n.dir, "gone"), filepath.Join(n.dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fifo, filepath.Join(n.dir, "to-fifo")); err != nil {
		t.Fatal(err)
	}

	got := scan(t, n)
	if len(got) != 1 || got["cni-a"].Err != nil || len(got["cni-a"].Interfaces) != 1 {
		t.Errorf("Scan = %+v, want cni-a alone, read", got)
	}
}

func TestScanSkipsNamespaceDeletedBeforeOpening(t *testing.T) {
	n := newNode(t)
	n.addPod(t, "cni-a", "veth-a", 1450)
	b := n.addPod(t, "cni-b", "veth-b", 1450)
	n.addPod(t, "cni-c", "veth-c", 1450)

	deleted := false
	defer pods.SetBeforeOpen(func(path string) {
		if path == b.path {
			deleted = true
			if err := nettest.Unmount(path); err != nil {
				t.Errorf("deleting cni-b: %v", err)
			}
		}
	})()
	got := scan(t, n)
	if !deleted {
		t.Fatal("Scan never opened cni-b")
	}
	if len(got) != 2 || got["cni-a"].Err != nil || got["cni-c"].Err != nil {
		t.Errorf("Scan = %+v, want cni-a and cni-c, read", got)
	}
	if _, ok := got["cni-b"]; ok {
		t.Errorf("Scan reported the deleted cni-b: %+v", got["cni-b"])
	}
}

func TestScanOfAnEmptyDirectory(t *testing.T) {
	n := newNode(t)
	got, err := pods.Scan(n.dir, n.dev)
	if err != nil || len(got) != 0 {
		t.Errorf("Scan = %+v, %v; want nothing", got, err)
	}
	if _, err := pods.Scan(filepath.Join(n.dir, "missing"), n.dev); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Scan of a missing directory: %v, want ErrNotExist", err)
	}
}

// hookedHost is the host's Interfaces with SetMTU replaced.
type hookedHost struct {
	netdev.Interfaces
	setMTU func(name string, mtu int) error
}

func (h hookedHost) SetMTU(name string, mtu int) error { return h.setMTU(name, mtu) }

// watchPodAtHostChange returns a host whose SetMTU records the pod's eth0 MTU at the moment
// the host end is changed.
func watchPodAtHostChange(t *testing.T, n *node, p *pod, seen *int) netdev.Interfaces {
	return hookedHost{Interfaces: n.dev, setMTU: func(name string, mtu int) error {
		*seen = p.MTU(t, "eth0")
		return n.dev.SetMTU(name, mtu)
	}}
}

func TestSetMTUChangesBothEndsInASafeOrder(t *testing.T) {
	n := newNode(t)
	p := n.addPod(t, "cni-a", "veth-a", 1450, "10.244.0.5/24")
	var podWhenHostChanged int
	host := watchPodAtHostChange(t, n, p, &podWhenHostChanged)

	// Raising: the host end first, so it accepts the pod's larger packets before it sends any.
	if err := pods.SetMTU(p.path, "eth0", host, "veth-a", 1500); err != nil {
		t.Fatalf("raising: %v", err)
	}
	if podWhenHostChanged != 1450 {
		t.Errorf("raising, the pod was at %d when the host end changed, want still 1450", podWhenHostChanged)
	}
	if pod, hostEnd := p.MTU(t, "eth0"), n.MTU(t, "veth-a"); pod != 1500 || hostEnd != 1500 {
		t.Errorf("after raising, pod %d, host end %d; want 1500 both", pod, hostEnd)
	}

	// Lowering: the pod first, so it sends only what the host end will still accept.
	if err := pods.SetMTU(p.path, "eth0", host, "veth-a", 1400); err != nil {
		t.Fatalf("lowering: %v", err)
	}
	if podWhenHostChanged != 1400 {
		t.Errorf("lowering, the pod was at %d when the host end changed, want already 1400", podWhenHostChanged)
	}
	if pod, hostEnd := p.MTU(t, "eth0"), n.MTU(t, "veth-a"); pod != 1400 || hostEnd != 1400 {
		t.Errorf("after lowering, pod %d, host end %d; want 1400 both", pod, hostEnd)
	}

	got := scan(t, n)
	if i := interfaces(got["cni-a"])["eth0"]; i.MTU != 1400 || i.HostPeerMTU != 1400 {
		t.Errorf("Scan after SetMTU: %+v", i)
	}
}

func TestSetMTUStopsWhenTheHostEndFails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		target  int
		wantPod int // the pod side changes only when it goes first
	}{
		{"lowering", 1400, 1400},
		{"raising", 1500, 1450},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t)
			p := n.addPod(t, "cni-a", "veth-a", 1450)
			refuse := hookedHost{Interfaces: n.dev, setMTU: func(string, int) error { return unix.EPERM }}

			err := pods.SetMTU(p.path, "eth0", refuse, "veth-a", tc.target)
			t.Log(err)
			if !errors.Is(err, pods.ErrHostSide) || errors.Is(err, pods.ErrPodSide) {
				t.Errorf("error %v, want the host side's alone", err)
			}
			if err != nil && (!strings.Contains(err.Error(), "veth-a") || !strings.Contains(err.Error(), p.path)) {
				t.Errorf("error %q does not name veth-a and the namespace", err)
			}
			if got := p.MTU(t, "eth0"); got != tc.wantPod {
				t.Errorf("pod eth0 MTU = %d, want %d", got, tc.wantPod)
			}
			if got := n.MTU(t, "veth-a"); got != 1450 {
				t.Errorf("host veth-a MTU = %d, want 1450", got)
			}
		})
	}
}

func TestSetMTUStopsWhenThePodSideIsRefused(t *testing.T) {
	n := newNode(t)
	p := n.addPod(t, "cni-a", "veth-a", 1450)
	// A veth's minimum MTU is 68: the kernel refuses the pod side, which goes first.
	err := pods.SetMTU(p.path, "eth0", n.dev, "veth-a", 60)
	t.Log(err)
	if !errors.Is(err, pods.ErrPodSide) || errors.Is(err, pods.ErrHostSide) || !errors.Is(err, unix.EINVAL) {
		t.Errorf("error %v, want the pod side's, EINVAL", err)
	}
	if err != nil && (!strings.Contains(err.Error(), "eth0") || !strings.Contains(err.Error(), p.path)) {
		t.Errorf("error %q does not name eth0 and the namespace", err)
	}
	if pod, hostEnd := p.MTU(t, "eth0"), n.MTU(t, "veth-a"); pod != 1450 || hostEnd != 1450 {
		t.Errorf("pod %d, host end %d; want both untouched at 1450", pod, hostEnd)
	}
}

func TestSetMTUReadsBothSidesBack(t *testing.T) {
	n := newNode(t)
	p := n.addPod(t, "cni-a", "veth-a", 1450)

	// Someone puts the pod back while the host end changes.
	revert := hookedHost{Interfaces: n.dev, setMTU: func(name string, mtu int) error {
		p.SetMTU(t, "eth0", 1450)
		return n.dev.SetMTU(name, mtu)
	}}
	err := pods.SetMTU(p.path, "eth0", revert, "veth-a", 1400)
	t.Log(err)
	if !errors.Is(err, pods.ErrPodSide) || errors.Is(err, pods.ErrHostSide) ||
		err != nil && !strings.Contains(err.Error(), "MTU is 1450 after setting 1400") {
		t.Errorf("error %v, want the pod side's, at 1450", err)
	}

	// The host end ignores the change.
	ignore := hookedHost{Interfaces: n.dev, setMTU: func(string, int) error { return nil }}
	err = pods.SetMTU(p.path, "eth0", ignore, "veth-a", 1500)
	t.Log(err)
	if !errors.Is(err, pods.ErrHostSide) || errors.Is(err, pods.ErrPodSide) {
		t.Errorf("error %v, want the host side's", err)
	}
	if err != nil && !strings.Contains(err.Error(), "veth-a") {
		t.Errorf("error %q does not name veth-a", err)
	}
}

func TestSetMTURefusesALinkThatIsNotThePeer(t *testing.T) {
	n := newNode(t)
	a := n.addPod(t, "cni-a", "veth-a", 1450)
	b := n.addPod(t, "cni-b", "veth-b", 1450)
	a.AddVeth(t, "in0", "in1", a.Namespace, 1450)

	for _, tc := range []struct {
		ifName, hostPeer string
		want             error
	}{
		{"eth0", "veth-b", pods.ErrNotPeer},          // another pod's end
		{"eth0", "cni0", pods.ErrNotPeer},            // not a veth
		{"in0", "veth-a", pods.ErrNotPeer},           // the index may match, the namespace does not
		{"in1", "veth-b", pods.ErrNotPeer},           // likewise
		{"eth0", "nosuch", netdev.ErrLinkNotFound},   // gone from the host
		{"nosuch", "veth-a", netdev.ErrLinkNotFound}, // gone from the pod
	} {
		err := pods.SetMTU(a.path, tc.ifName, n.dev, tc.hostPeer, 1500)
		t.Logf("%s/%s: %v", tc.ifName, tc.hostPeer, err)
		if !errors.Is(err, tc.want) {
			t.Errorf("SetMTU(%s, %s): %v, want %v", tc.ifName, tc.hostPeer, err, tc.want)
		}
	}
	for _, check := range []struct {
		ns   *nettest.Namespace
		name string
	}{{a.Namespace, "eth0"}, {a.Namespace, "in0"}, {n.Namespace, "veth-a"}, {n.Namespace, "veth-b"}, {b.Namespace, "eth0"}} {
		if got := check.ns.MTU(t, check.name); got != 1450 {
			t.Errorf("%s changed to %d", check.name, got)
		}
	}
}

func TestSetMTUWithoutAHostEndChangesThePodSide(t *testing.T) {
	n := newNode(t)
	p := n.addPod(t, "cni-a", "veth-a", 1450)
	if err := pods.SetMTU(p.path, "eth0", n.dev, "", 1400); err != nil {
		t.Fatalf("SetMTU: %v", err)
	}
	if pod, hostEnd := p.MTU(t, "eth0"), n.MTU(t, "veth-a"); pod != 1400 || hostEnd != 1450 {
		t.Errorf("pod %d, host end %d; want 1400 and untouched 1450", pod, hostEnd)
	}
}

func TestSetMTUOnAFileThatIsNotANamespace(t *testing.T) {
	n := newNode(t)
	path := filepath.Join(n.dir, "leftover")
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{path, filepath.Join(n.dir, "deleted")} {
		err := pods.SetMTU(path, "eth0", n.dev, "", 1400)
		t.Log(err)
		if !errors.Is(err, pods.ErrNoNamespace) || !strings.Contains(err.Error(), path) {
			t.Errorf("SetMTU on %s: %v, want ErrNoNamespace naming it", path, err)
		}
	}
}

// BenchmarkScan250 scans a node with 250 pods. Building and removing them is not timed.
func BenchmarkScan250(b *testing.B) {
	const count = 250
	n := newNode(b)
	for i := range count {
		n.addPod(b, fmt.Sprintf("cni-%03d", i), fmt.Sprintf("veth%03d", i), 1450, fmt.Sprintf("10.244.%d.%d/16", i/200, i%200+2))
	}
	var got []pods.Namespace
	for b.Loop() {
		var err error
		if got, err = pods.Scan(n.dir, n.dev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*count), "ns/namespace")
	if len(got) != count {
		b.Fatalf("Scan found %d namespaces, want %d", len(got), count)
	}
	for _, ns := range got {
		if ns.Err != nil || len(ns.Interfaces) != 1 || ns.Interfaces[0].HostPeerName == "" {
			b.Fatalf("Scan read %s as %+v", ns.Path, ns)
		}
	}
}
