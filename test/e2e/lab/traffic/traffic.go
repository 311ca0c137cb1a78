// Package traffic sends real UDP datagrams between the lab's pods and counts what arrives, so
// that a test can say what an application saw while the operator changed MTUs: Probe sends a
// burst of one size, a Prober keeps sending several sizes in the background.
//
// Datagrams leave with fragmentation forbidden (IP_PMTUDISC_DO), as an application that does
// path MTU discovery sends them: a datagram larger than the path is dropped by the router that
// cannot forward it, and once its ICMP report is in, the pod's kernel refuses further large
// sends with "message too long". Sizes are whole IP packets, headers included.
//
// A datagram is delivered only when the receiver in the destination pod got it; each carries
// a random run ID and a sequence number, so strays, duplicates and old runs never count.
//
// The kernel keeps a path MTU it learnt for ten minutes, per destination and for every socket
// in the pod: a Probe after one that drew a router's report fails at once, as would any
// application there, even after the path has grown.
package traffic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
)

// Port is the UDP port receivers listen on in every destination namespace. One process shares
// a receiver among its probes; a second process probing the same pod cannot bind it.
const Port = 7777

// Endpoint is a pod: its network namespace, as a file like /run/netns/x, and its IP address.
type Endpoint struct {
	NetnsFile string
	IP        string
}

// String names the endpoint in errors.
func (e Endpoint) String() string { return e.IP + " (" + e.NetnsFile + ")" }

// ErrorKind names why a send failed, as the errno's text an application would log.
type ErrorKind string

// The kinds a path MTU change typically produces. Any other errno is reported by its text.
const (
	// MessageTooLong (EMSGSIZE): larger than the pod's own link, or than the path MTU the
	// kernel learnt from a router's ICMP report.
	MessageTooLong ErrorKind = "message too long"
	// HostUnreachable (EHOSTUNREACH): a router reported it cannot reach the destination.
	HostUnreachable ErrorKind = "no route to host"
	// NetworkUnreachable (ENETUNREACH): no route, or a router reported none.
	NetworkUnreachable ErrorKind = "network is unreachable"
	// ConnectionRefused (ECONNREFUSED): the destination reported no receiver on the port.
	ConnectionRefused ErrorKind = "connection refused"
	// SourceGone: the sending pod's namespace file is gone or holds another namespace, so
	// nothing could be sent from it.
	SourceGone ErrorKind = "source namespace gone"
	// OtherError: an error without an errno.
	OtherError ErrorKind = "other"
)

func kindOf(err error) ErrorKind {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return OtherError
	}
	switch errno {
	case unix.EMSGSIZE:
		return MessageTooLong
	case unix.EHOSTUNREACH:
		return HostUnreachable
	case unix.ENETUNREACH:
		return NetworkUnreachable
	case unix.ECONNREFUSED:
		return ConnectionRefused
	}
	return ErrorKind(errno.Error())
}

// Header sizes: a size given to Probe or Start is the whole IP packet.
const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	udpHeaderLen  = 8
	maxSize       = 65535
)

// Every payload starts with magic, run ID and sequence number; the rest is zeros.
const (
	magic         = "MTUt"
	payloadHeader = len(magic) + 8 + 8
)

// runID tells one Probe's or Prober's datagrams from everyone else's.
type runID [8]byte

func headerLen(ip netip.Addr) int {
	if ip.Is4() {
		return ipv4HeaderLen + udpHeaderLen
	}
	return ipv6HeaderLen + udpHeaderLen
}

// checkSize rejects a size that cannot hold the headers and the payload header, or that IP
// cannot carry.
func checkSize(size int, to netip.Addr) error {
	if lowest := headerLen(to) + payloadHeader; size < lowest || size > maxSize {
		return fmt.Errorf("size %d to %s: must be between %d and %d bytes", size, to, lowest, maxSize)
	}
	return nil
}

// encode fills buf, a whole payload, with run and seq.
func encode(buf []byte, run runID, seq uint64) {
	copy(buf, magic)
	copy(buf[len(magic):], run[:])
	binary.BigEndian.PutUint64(buf[len(magic)+8:], seq)
}

// decode reads a payload's run ID and sequence number; ok is false for anything else.
func decode(payload []byte) (run runID, seq uint64, ok bool) {
	if len(payload) < payloadHeader || string(payload[:len(magic)]) != magic {
		return run, 0, false
	}
	copy(run[:], payload[len(magic):])
	return run, binary.BigEndian.Uint64(payload[len(magic)+8:]), true
}

// parseEndpoints checks a pair of endpoints and returns their addresses.
func parseEndpoints(from, to Endpoint) (src, dst netip.Addr, err error) {
	if dst, err = netip.ParseAddr(to.IP); err != nil {
		return src, dst, fmt.Errorf("destination %s: %w", to, err)
	}
	dst = dst.Unmap()
	if from.IP != "" {
		if src, err = netip.ParseAddr(from.IP); err != nil {
			return src, dst, fmt.Errorf("source %s: %w", from, err)
		}
		if src = src.Unmap(); src.Is4() != dst.Is4() {
			return src, dst, fmt.Errorf("source %s and destination %s are of different IP families", from, to)
		}
	}
	if from.NetnsFile == "" || to.NetnsFile == "" {
		return src, dst, errors.New("both endpoints need a namespace file")
	}
	return src, dst, nil
}

// namespaceID identifies a network namespace: the device and inode of its nsfs file. A file
// it is mounted on has the same identity, so comparing the two tells whether the file still
// holds the namespace.
type namespaceID struct{ dev, ino uint64 }

// openNamespace opens the namespace mounted on file. Close the handle once the sockets are
// open: they keep the namespace themselves.
func openNamespace(file string) (netns.NsHandle, namespaceID, error) {
	ns, err := netns.GetFromPath(file)
	if err != nil {
		return ns, namespaceID{}, fmt.Errorf("%w at %s: %w", errNoNamespace, file, err)
	}
	var fs unix.Statfs_t
	var st unix.Stat_t
	switch {
	case unix.Fstatfs(int(ns), &fs) != nil || fs.Type != unix.NSFS_MAGIC:
		err = fmt.Errorf("%w at %s: not a namespace file", errNoNamespace, file)
	case unix.Fstat(int(ns), &st) != nil:
		err = fmt.Errorf("%w at %s: cannot stat it", errNoNamespace, file)
	}
	if err != nil {
		_ = ns.Close()
		return -1, namespaceID{}, err
	}
	return ns, namespaceID{dev: st.Dev, ino: st.Ino}, nil
}

// stillAt reports whether file still holds the namespace id. A socket keeps its namespace,
// and with it the pod's links, alive after the pod is deleted: whoever holds one must let go
// once the file is gone, or a deleted pod would keep answering.
func stillAt(file string, id namespaceID) bool {
	var st unix.Stat_t
	return unix.Stat(file, &st) == nil && st.Dev == id.dev && st.Ino == id.ino
}

// sender is a UDP socket in the source pod's namespace, connected to the destination's
// receiver, that never fragments.
type sender struct {
	conn *net.UDPConn
	ns   namespaceID
}

// openSender opens a sender from `from` to dst's receiver port, bound to src when valid.
func openSender(from Endpoint, src, dst netip.Addr) (*sender, error) {
	ns, id, err := openNamespace(from.NetnsFile)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	network := "udp6"
	if dst.Is4() {
		network = "udp4"
	}
	dialer := net.Dialer{Control: forbidFragmentation}
	if src.IsValid() {
		dialer.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	var conn net.Conn
	err = netdev.InNamespace(ns, func() (err error) {
		// A UDP dial to an IP literal is a socket, a bind and a connect on this thread.
		conn, err = dialer.Dial(network, netip.AddrPortFrom(dst, Port).String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening a UDP socket in %s to %s: %w", from.NetnsFile, dst, err)
	}
	return &sender{conn: conn.(*net.UDPConn), ns: id}, nil
}

// forbidFragmentation sets DF and makes the kernel refuse, with EMSGSIZE, a datagram larger
// than the path MTU it knows, as for an application doing path MTU discovery. PMTUDISC_DO,
// unlike PROBE, honors the path MTU learnt from ICMP.
func forbidFragmentation(network, _ string, c syscall.RawConn) error {
	var sockErr error
	err := c.Control(func(fd uintptr) {
		if network == "udp4" {
			sockErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		} else {
			sockErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO)
		}
	})
	if err != nil {
		return err
	}
	if sockErr != nil {
		return fmt.Errorf("forbidding fragmentation: %w", sockErr)
	}
	return nil
}

func (s *sender) send(payload []byte) error {
	_, err := s.conn.Write(payload)
	return err
}

func (s *sender) close() { _ = s.conn.Close() }
