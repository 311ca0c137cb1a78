package traffic

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netns"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
)

// arrival is called for each datagram of a subscribed run, with its sequence number and the
// size of the IP packet that carried it. It must not cancel a subscription.
type arrival func(seq uint64, size int)

// receiver is the one socket on Port for one IP family in a destination namespace, shared by
// every Probe and Prober sending there: two sockets cannot both bind the port. It hands each
// datagram to the subscriber of its run ID.
type receiver struct {
	key  receiverKey
	conn *net.UDPConn
	done chan struct{} // closed when the reading goroutine has ended

	mu          sync.Mutex
	subscribers map[runID]arrival

	refs int // guarded by receivers.mu
}

// receiverKey names a receiver: one socket per IP family. Go decides once per process, in
// the namespace of the thread that first asks, whether a "udp" socket can be dual-stack; asked
// in a pod whose loopback is down, it says no and listens on IPv4 only.
type receiverKey struct {
	ns namespaceID
	v4 bool
}

// receivers holds the open receivers.
var receivers = struct {
	sync.Mutex
	byKey map[receiverKey]*receiver
}{byKey: map[receiverKey]*receiver{}}

// subscription is a run's interest in the datagrams reaching one receiver.
type subscription struct {
	r   *receiver
	run runID
}

// subscribe opens, or shares, the receiver for dst's family in to's namespace and hands it
// the datagrams of run.
func subscribe(to Endpoint, dst netip.Addr, run runID, fn arrival) (*subscription, error) {
	ns, id, err := openNamespace(to.NetnsFile)
	if err != nil {
		return nil, err
	}
	defer ns.Close()

	key := receiverKey{ns: id, v4: dst.Is4()}
	receivers.Lock()
	defer receivers.Unlock()
	r, ok := receivers.byKey[key]
	if !ok {
		if r, err = listen(ns, key); err != nil {
			return nil, fmt.Errorf("receiving in %s: %w", to.NetnsFile, err)
		}
		receivers.byKey[key] = r
	}
	r.refs++
	r.mu.Lock()
	r.subscribers[run] = fn
	r.mu.Unlock()
	return &subscription{r: r, run: run}, nil
}

// stale reports whether file no longer holds the receiver's namespace.
func (s *subscription) stale(file string) bool { return !stillAt(file, s.r.key.ns) }

// cancel ends the subscription; the last one closes the receiver and waits for its goroutine.
// After cancel returns the run's arrival function is not called again.
func (s *subscription) cancel() {
	r := s.r
	r.mu.Lock()
	delete(r.subscribers, s.run)
	r.mu.Unlock()

	receivers.Lock()
	r.refs--
	last := r.refs == 0
	if last {
		delete(receivers.byKey, r.key)
	}
	receivers.Unlock()
	if last {
		_ = r.conn.Close() // ends the read
		<-r.done
	}
}

// listen binds Port on every address of the key's family in the namespace and starts reading.
func listen(ns netns.NsHandle, key receiverKey) (*receiver, error) {
	network, unspecified := "udp6", netip.IPv6Unspecified()
	if key.v4 {
		network, unspecified = "udp4", netip.IPv4Unspecified()
	}
	var conn *net.UDPConn
	err := netdev.InNamespace(ns, func() (err error) {
		conn, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(unspecified, Port)))
		return err
	})
	if err != nil {
		return nil, err
	}
	r := &receiver{key: key, conn: conn, done: make(chan struct{}), subscribers: map[runID]arrival{}}
	go r.read()
	return r, nil
}

func (r *receiver) read() {
	defer close(r.done)
	buf := make([]byte, maxSize)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // an error queued on the socket; the next read goes on
		}
		run, seq, ok := decode(buf[:n])
		if !ok {
			continue
		}
		// Called under the lock, so that none runs after its subscription is canceled.
		r.mu.Lock()
		if fn := r.subscribers[run]; fn != nil {
			fn(seq, headerLen(from.Addr().Unmap())+n)
		}
		r.mu.Unlock()
	}
}
