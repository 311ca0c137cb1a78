package probe

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Header sizes that make up an echo request of a given total size.
const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	icmpHeaderLen = 8
)

// resendEvery is how often an unanswered echo is sent again (with the next sequence number), so
// one lost packet does not fail the probe.
const resendEvery = 500 * time.Millisecond

// ICMPDF returns a Prober that sends ICMP echo requests of exactly size bytes (the whole IP
// packet: IP header, ICMP header and payload) to target with fragmentation forbidden, and
// passes when a matching echo reply of the same size comes back within timeout.
//
// On IPv4 the socket sets the Don't-Fragment bit; on IPv6 it sets IPV6_DONTFRAG (IPv6 routers
// never fragment). A device or hop that cannot carry size bytes therefore drops the packet or
// answers "fragmentation needed" / "packet too big" (reported at once) instead of passing it in
// pieces. The socket uses the PMTUDISC_PROBE mode: DF is set but the kernel's cached path MTU
// and route MTU metrics are ignored, so the probe measures the wire as it is now, not an
// exception remembered from an earlier failure or a route MTU pinned on purpose.
//
// It needs a raw socket (root or CAP_NET_RAW).
func ICMPDF(target netip.Addr, size int, timeout time.Duration) Prober {
	return icmpDF{target: target.Unmap(), size: size, timeout: timeoutOrDefault(timeout)}
}

type icmpDF struct {
	target  netip.Addr
	size    int
	timeout time.Duration
}

func (p icmpDF) String() string {
	return fmt.Sprintf("ICMP echo of %d bytes to %s without fragmentation", p.size, p.target)
}

func (p icmpDF) headerLen() int {
	if p.target.Is4() {
		return ipv4HeaderLen + icmpHeaderLen
	}
	return ipv6HeaderLen + icmpHeaderLen
}

func (p icmpDF) Probe(ctx context.Context) error {
	if !p.target.IsValid() {
		return fmt.Errorf("ICMP probe: no target address: %w", ErrCannotProbe)
	}
	if p.size < p.headerLen() || p.size > 65535 {
		return fmt.Errorf("%s: the size must be between %d (the headers) and 65535: %w", p, p.headerLen(), ErrCannotProbe)
	}
	// The caller's deadline may come first; the error names the limit that applied.
	limit := p.timeout
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < limit {
		limit = time.Until(deadline).Round(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	conn, err := listenNoFragment(ctx, p.target.Is4())
	if err != nil {
		return fmt.Errorf("%s: opening a raw ICMP socket: %w", p, errors.Join(err, ErrCannotProbe))
	}
	defer conn.Close()
	// A read blocked on the socket returns when ctx ends, whatever its deadline.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()

	e, err := newEcho(p.size - p.headerLen())
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	dst := &net.IPAddr{IP: p.target.AsSlice()}
	buf := make([]byte, max(p.size, 1500)+ipv6HeaderLen)
	// dropped notes a request the kernel dropped on the way out, to explain a timeout.
	var dropped error
	for {
		switch err := e.send(conn, dst, p.target.Is4()); {
		case errors.Is(err, unix.EMSGSIZE):
			return fmt.Errorf("%s: the outgoing device's MTU is smaller: %w", p, err)
		case errors.Is(err, unix.ENOBUFS):
			// A full queue, or a veth whose peer refused the packet: a loss like any
			// other, so wait and resend.
			dropped = err
		case err != nil:
			return fmt.Errorf("%s: sending: %w", p, err)
		}
		wait := time.Now().Add(resendEvery)
		if deadline, ok := ctx.Deadline(); ok && deadline.Before(wait) {
			wait = deadline
		}
		if err := conn.SetReadDeadline(wait); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for {
			n, from, err := conn.ReadFrom(buf)
			if ctx.Err() != nil {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					if dropped != nil {
						return fmt.Errorf("%s: no reply within %s (requests were dropped on the way out: %w)", p, limit, dropped)
					}
					return fmt.Errorf("%s: no reply within %s", p, limit)
				}
				return fmt.Errorf("%s: %w", p, ctx.Err())
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break // time to send again
			}
			if err != nil {
				return fmt.Errorf("%s: receiving: %w", p, err)
			}
			src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			done, err := e.match(buf[:n], src.Unmap(), p.target)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if done {
				return nil
			}
		}
	}
}

// ErrCannotProbe marks a probe that could not be sent at all (no raw socket, a size out of
// range): it says nothing about the path.
var ErrCannotProbe = errors.New("the probe could not be sent")

// listenNoFragment opens a raw ICMP socket that never fragments what it sends.
func listenNoFragment(ctx context.Context, v4 bool) (*net.IPConn, error) {
	network, address := "ip6:ipv6-icmp", "::"
	if v4 {
		network, address = "ip4:icmp", "0.0.0.0"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var sockErr error
		err := c.Control(func(fd uintptr) {
			if v4 {
				sockErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
				return
			}
			sockErr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE),
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1))
		})
		if err != nil {
			return err
		}
		if sockErr != nil {
			return fmt.Errorf("forbidding fragmentation: %w", sockErr)
		}
		return nil
	}}
	pc, err := lc.ListenPacket(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return pc.(*net.IPConn), nil
}

// echo is the state of one probe's echo requests.
type echo struct {
	id      int
	seq     int
	sent    map[int]bool
	payload []byte
}

func newEcho(payloadLen int) (*echo, error) {
	var b [2]byte
	payload := make([]byte, payloadLen)
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	// A random payload lets a reply be told from another prober's with the same id.
	if _, err := rand.Read(payload); err != nil {
		return nil, err
	}
	return &echo{id: int(binary.BigEndian.Uint16(b[:])), sent: map[int]bool{}, payload: payload}, nil
}

func (e *echo) send(conn *net.IPConn, dst *net.IPAddr, v4 bool) error {
	e.seq++
	var typ icmp.Type = ipv6.ICMPTypeEchoRequest
	if v4 {
		typ = ipv4.ICMPTypeEcho
	}
	// For ICMPv6 the kernel fills in the checksum, which covers a pseudo-header.
	b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: e.id, Seq: e.seq, Data: e.payload}}).Marshal(nil)
	if err != nil {
		return err
	}
	e.sent[e.seq] = true
	_, err = conn.WriteTo(b, dst)
	return err
}

// match examines one received ICMP message (without its IP header). It returns true for the
// reply to one of our requests, an error for a report that our request cannot pass, and false
// for anything else (other programs' ICMP traffic reaches every raw socket).
func (e *echo) match(b []byte, from, target netip.Addr) (bool, error) {
	proto := 1 // ICMP
	if target.Is6() {
		proto = 58 // ICMPv6
	}
	m, _ := icmp.ParseMessage(proto, b)
	if m == nil {
		return false, nil // malformed, so not a reply to us
	}
	switch body := m.Body.(type) {
	case *icmp.Echo:
		if (m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply) || from != target ||
			body.ID != e.id || !e.sent[body.Seq] {
			return false, nil
		}
		if !bytes.Equal(body.Data, e.payload) {
			return false, fmt.Errorf("the reply from %s carried %d payload bytes, not the %d sent", from, len(body.Data), len(e.payload))
		}
		return true, nil
	case *icmp.PacketTooBig:
		if e.ours(body.Data, ipv6HeaderLen) {
			return false, &TooBigError{From: from, MTU: body.MTU}
		}
	case *icmp.DstUnreach:
		ipLen := ipv6HeaderLen
		if target.Is4() && len(body.Data) > 0 {
			ipLen = int(body.Data[0]&0x0f) * 4
		}
		if !e.ours(body.Data, ipLen) {
			return false, nil
		}
		if m.Type == ipv4.ICMPTypeDestinationUnreachable && m.Code == 4 && len(b) >= 8 {
			return false, &TooBigError{From: from, MTU: int(binary.BigEndian.Uint16(b[6:8]))}
		}
		return false, fmt.Errorf("%s reports destination unreachable (code %d)", from, m.Code)
	}
	return false, nil
}

// TooBigError is a hop's report that a probe is larger than it forwards: ICMP "fragmentation
// needed" (IPv4) or "packet too big" (IPv6), with the MTU the hop names (0 when it names none,
// as old IPv4 routers do).
type TooBigError struct {
	From netip.Addr
	MTU  int
}

func (e *TooBigError) Error() string {
	if e.From.Is4() {
		return fmt.Sprintf("%s reports fragmentation needed, next-hop MTU %d", e.From, e.MTU)
	}
	return fmt.Sprintf("%s reports packet too big, MTU %d", e.From, e.MTU)
}

// ours reports whether an ICMP error's quoted packet (IP header of ipLen bytes, then the start
// of the ICMP message) is one of our echo requests.
func (e *echo) ours(quoted []byte, ipLen int) bool {
	if len(quoted) < ipLen+icmpHeaderLen {
		return false
	}
	q := quoted[ipLen:]
	id, seq := int(binary.BigEndian.Uint16(q[4:6])), int(binary.BigEndian.Uint16(q[6:8]))
	return id == e.id && e.sent[seq]
}
