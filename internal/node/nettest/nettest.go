// Package nettest supports tests that run against the real kernel: it decides whether a
// privileged test may run, creates throwaway network namespaces and links in them, and checks
// in TestMain that the tests left the host as they found it.
//
// Privileged tests skip with a clear message where they cannot run (not root, a link type the
// kernel lacks). Under CI=true a skip is allowed only when the capability is truly absent: a
// machine whose kernel could run the tests but whose tests run without root fails instead, so
// CI cannot go green by skipping everything.
//
// Namespaces are anonymous (not bind-mounted under /run/netns): the kernel destroys one, with
// its links, when the test closes its last reference, and nothing outlives a crashed test
// binary.
package nettest

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
)

// InCI reports whether the tests run in CI (CI=true), where skipping a privileged test the
// machine could run is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// privilege is what RequirePrivileged found out, once per test binary.
type privilege struct {
	// ok: privileged tests can run.
	ok bool
	// reason says why they cannot.
	reason string
	// absent: the capability is missing from the machine, not just from this process, so
	// even CI may skip.
	absent bool
}

var (
	privilegeOnce   sync.Once
	privilegeResult privilege
)

// RequirePrivileged skips the test unless it can create network namespaces and links (root, or
// CAP_SYS_ADMIN and CAP_NET_ADMIN). Under CI=true it fails instead of skipping when the
// kernel supports network namespaces but the test runs without the capabilities.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	privilegeOnce.Do(func() { privilegeResult = checkPrivilege() })
	switch v, msg := judge(privilegeResult, InCI()); v {
	case fail:
		t.Fatal(msg)
	case skip:
		t.Skip(msg)
	}
}

type verdict int

const (
	run verdict = iota
	skip
	fail
)

// judge decides what a privileged test does on a machine with privilege p.
func judge(p privilege, ci bool) (verdict, string) {
	switch {
	case p.ok:
		return run, ""
	case ci && !p.absent:
		return fail, fmt.Sprintf("CI=true and this machine can run privileged network tests, but %s: run the tests as root", p.reason)
	default:
		return skip, "skipping privileged network test: " + p.reason
	}
}

func checkPrivilege() privilege {
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return privilege{reason: "this kernel has no network namespaces (/proc/self/ns/net: " + err.Error() + ")", absent: true}
	}
	if caps, err := effectiveCapabilities(); err != nil {
		return privilege{reason: "cannot read the process capabilities: " + err.Error()}
	} else if caps&(1<<unix.CAP_SYS_ADMIN) == 0 || caps&(1<<unix.CAP_NET_ADMIN) == 0 {
		return privilege{reason: fmt.Sprintf("not root (uid %d without CAP_SYS_ADMIN and CAP_NET_ADMIN)", os.Geteuid())}
	}
	// The capabilities can still be withheld by a seccomp profile or a kernel built
	// without CONFIG_NET_NS: try once.
	ns, err := CreateNamespace()
	if err != nil {
		absent := errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)
		return privilege{reason: "cannot create a network namespace: " + err.Error(), absent: absent}
	}
	_ = ns.Close()
	return privilege{ok: true}
}

// effectiveCapabilities reads CapEff from /proc/self/status.
func effectiveCapabilities() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}

// Namespace is a throwaway network namespace and a netlink handle on it for building the
// test's links.
type Namespace struct {
	NS netns.NsHandle
	NL *netlink.Handle
}

// NewNamespace returns a new, empty network namespace (only a down loopback) for the test and
// closes it, destroying it and its links, when the test ends. It calls RequirePrivileged.
func NewNamespace(t testing.TB) *Namespace {
	t.Helper()
	RequirePrivileged(t)
	ns, err := CreateNamespace()
	if err != nil {
		t.Fatalf("creating a network namespace: %v", err)
	}
	// Cleanups run last-registered first: the handle closes before the namespace.
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("closing network namespace %s: %v", ns, err)
		}
	})
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("opening a netlink handle in namespace %s: %v", ns, err)
	}
	t.Cleanup(h.Close)
	return &Namespace{NS: ns, NL: h}
}

// CreateNamespace creates a network namespace on a locked thread of its own and brings the
// thread back. The namespace lives until the handle and every other reference to it close.
func CreateNamespace() (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	resc := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			resc <- result{err: fmt.Errorf("getting the current network namespace: %w", err)}
			return
		}
		defer home.Close()
		ns, err := netns.New() // also moves this thread into ns
		if err != nil {
			runtime.UnlockOSThread()
			resc <- result{err: err}
			return
		}
		if err := netns.Set(home); err != nil {
			// Leave the thread locked: the runtime retires it with this goroutine.
			_ = ns.Close()
			resc <- result{err: fmt.Errorf("returning to the original network namespace: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		resc <- result{ns: ns}
	}()
	res := <-resc
	return res.ns, res.err
}

// AddLink creates l and returns it as the kernel now reports it. It skips the test, even under
// CI, when the kernel does not have the link type: that capability is truly absent.
func (n *Namespace) AddLink(t testing.TB, l netlink.Link) netlink.Link {
	t.Helper()
	if err := n.NL.LinkAdd(l); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("skipping: this kernel cannot create %s links (%v)", l.Type(), err)
		}
		t.Fatalf("creating %s link %s: %v", l.Type(), l.Attrs().Name, err)
	}
	return n.Link(t, l.Attrs().Name)
}

// Link returns the named link.
func (n *Namespace) Link(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := n.NL.LinkByName(name)
	if err != nil {
		t.Fatalf("finding link %s: %v", name, err)
	}
	return l
}

// AddVeth creates a veth pair with both ends at the given MTU: name here and peer in the
// namespace peerNS (which may be n).
func (n *Namespace) AddVeth(t testing.TB, name, peer string, peerNS *Namespace, mtu int) {
	t.Helper()
	n.AddLink(t, &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name, MTU: mtu},
		PeerName:      peer,
		PeerMTU:       uint32(mtu),
		PeerNamespace: netlink.NsFd(peerNS.NS),
	})
}

// SetUp brings the named links up. A link that needs a carrier (a veth whose peer is still
// down) is not running yet; WaitRunning waits for that.
func (n *Namespace) SetUp(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if err := n.NL.LinkSetUp(n.Link(t, name)); err != nil {
			t.Fatalf("setting link %s up: %v", name, err)
		}
	}
}

// runningWait bounds WaitRunning. The kernel reports a new carrier state from a work queue,
// within a second.
const runningWait = 5 * time.Second

// WaitRunning waits until the named links are running (up with a carrier), as the kernel
// announces it, and fails the test after a few seconds.
func (n *Namespace) WaitRunning(t testing.TB, names ...string) {
	t.Helper()
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	ns := n.NS
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{Namespace: &ns}); err != nil {
		close(done)
		t.Fatalf("subscribing to link updates: %v", err)
	}
	defer func() {
		close(done)
		for range updates { // drain, so netlink's reader can exit
		}
	}()

	waiting := map[string]bool{}
	for _, name := range names {
		// Read after subscribing, so no change falls between the read and the events.
		if n.Link(t, name).Attrs().Flags&net.FlagRunning == 0 {
			waiting[name] = true
		}
	}
	deadline := time.After(runningWait)
	for len(waiting) > 0 {
		select {
		case u, ok := <-updates:
			if !ok {
				t.Fatalf("link subscription ended while waiting for %v to run", waiting)
			}
			if u.Attrs().Flags&net.FlagRunning != 0 {
				delete(waiting, u.Attrs().Name)
			}
		case <-deadline:
			t.Fatalf("links %v not running after %s", slices.Sorted(maps.Keys(waiting)), runningWait)
		}
	}
}

// AddAddr adds an address (CIDR notation) to a link. IPv6 addresses skip duplicate address
// detection, so they are usable at once instead of after a second of tentative state.
func (n *Namespace) AddAddr(t testing.TB, name, cidr string) {
	t.Helper()
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatalf("parsing address %q: %v", cidr, err)
	}
	if addr.IP.To4() == nil {
		addr.Flags |= unix.IFA_F_NODAD
	}
	if err := n.NL.AddrAdd(n.Link(t, name), addr); err != nil {
		t.Fatalf("adding %s to %s: %v", cidr, name, err)
	}
}

// AddRoute adds a route, failing the test when the kernel refuses it.
func (n *Namespace) AddRoute(t testing.TB, r *netlink.Route) {
	t.Helper()
	if err := n.NL.RouteAdd(r); err != nil {
		t.Fatalf("adding route %s: %v", r, err)
	}
}

// Handle opens the project's netlink handle (the code under test's view) on the namespace
// and closes it when the test ends.
func (n *Namespace) Handle(t testing.TB) *netdev.Handle {
	t.Helper()
	dev, err := netdev.NewAt(n.NS)
	if err != nil {
		t.Fatalf("opening a netdev handle: %v", err)
	}
	t.Cleanup(func() {
		if err := dev.Close(); err != nil {
			t.Errorf("closing the netdev handle: %v", err)
		}
	})
	return dev
}

// CIDR parses a prefix in CIDR notation, failing the test when it does not parse.
func CIDR(t testing.TB, s string) *net.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// MTU returns the current MTU of a link.
func (n *Namespace) MTU(t testing.TB, name string) int {
	t.Helper()
	return n.Link(t, name).Attrs().MTU
}

// SetMTU sets the MTU of a link, as another program on the node would.
func (n *Namespace) SetMTU(t testing.TB, name string, mtu int) {
	t.Helper()
	if err := n.NL.LinkSetMTU(n.Link(t, name), mtu); err != nil {
		t.Fatalf("setting %s MTU to %d: %v", name, mtu, err)
	}
}

// Prefix starts the name of anything this test run makes in a place other runs share (a host
// link, a file in /run/netns): the leak check looks at those names only.
func Prefix() string { return fmt.Sprintf("mtt%x-", os.Getpid()) }

// hostLinks describes the links of the calling thread's namespace, one line per link, each
// starting with the link's name.
func hostLinks() ([]string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, i := range ifaces {
		out = append(out, fmt.Sprintf("%s (index %d) mtu %d", i.Name, i.Index, i.MTU))
	}
	return out, nil
}

// mounts are the namespace files Mount made and Unmount has not removed yet.
var mounts = struct {
	sync.Mutex
	paths map[string]bool
}{paths: map[string]bool{}}

// mountedByThisRun lists the namespace files this run mounted that are still mounted.
func mountedByThisRun() ([]string, error) {
	mounts.Lock()
	defer mounts.Unlock()
	if len(mounts.paths) == 0 {
		return nil, nil
	}
	points, err := MountPoints()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range points {
		if mounts.paths[p] {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// MountPoints lists the mount points of this process's mount namespace, in mount order.
func MountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": field 5 is
		// the mount point.
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			return nil, fmt.Errorf("malformed mountinfo line %q", s.Text())
		}
		points = append(points, unescapeMountPoint(fields[4]))
	}
	return points, s.Err()
}

// unescapeMountPoint undoes the kernel's octal escapes in a mountinfo path: \040 for a space,
// \011 tab, \012 newline, \134 backslash.
func unescapeMountPoint(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// BindMount makes path a namespace file for the namespace file src, like `ip netns add`, and
// removes it when the test ends.
func BindMount(tb testing.TB, src, path string) {
	tb.Helper()
	if err := Mount(src, path); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := Unmount(path); err != nil {
			tb.Errorf("removing namespace file: %v", err)
		}
	})
}

// Mount makes path a namespace file for the namespace file src, like `ip netns add`; Unmount
// removes it.
func Mount(src, path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	_ = f.Close()
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("bind-mounting %s on %s: %w", src, path, err)
	}
	mounts.Lock()
	mounts.paths[path] = true
	mounts.Unlock()
	return nil
}

// Unmount unmounts and removes a namespace file, if still there. A mount kept busy by an open
// file (a namespace handle the code under test did not close) is an error, and is detached
// anyway so that nothing outlives the test.
func Unmount(path string) error {
	mounts.Lock()
	delete(mounts.paths, path)
	mounts.Unlock()
	var errs []error
	err := unix.Unmount(path, 0)
	if errors.Is(err, unix.EBUSY) {
		errs = append(errs, fmt.Errorf("unmounting %s: %w (a handle on the namespace is still open)", path, err))
		err = unix.Unmount(path, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("unmounting %s: %w", path, err))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
