package traffic

import (
	"context"
	"crypto/rand"
	"errors"
	"net/netip"
	"sync"
	"time"
)

// tally is a ledger shared by the goroutine that sends and the receiver's goroutine.
type tally struct {
	mu     sync.Mutex
	ledger *ledger
	// arrivals wakes a settle wait when a datagram is delivered.
	arrivals chan struct{}
}

func newTally(sizes []int, grace time.Duration) *tally {
	return &tally{ledger: newLedger(sizes, grace), arrivals: make(chan struct{}, 1)}
}

// arrived is the receiver's arrival function.
func (t *tally) arrived(seq uint64, size int) {
	t.mu.Lock()
	counted := t.ledger.arrived(seq, size)
	t.mu.Unlock()
	if counted {
		select {
		case t.arrivals <- struct{}{}:
		default:
		}
	}
}

// with runs fn on the ledger under the lock.
func (t *tally) with(fn func(*ledger)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fn(t.ledger)
}

// settle waits until every datagram of window and the windows before it is delivered or lost,
// at most the grace period after the last was sent.
func (t *tally) settle(ctx context.Context, window int) error {
	for {
		var by time.Time
		t.with(func(l *ledger) {
			l.expire(time.Now())
			by = l.settledBy(window)
		})
		if by.IsZero() {
			return nil
		}
		timer := time.NewTimer(time.Until(by))
		select {
		case <-t.arrivals:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
		timer.Stop()
	}
}

func newRunID() runID {
	var run runID
	_, _ = rand.Read(run[:]) // never fails
	return run
}

// errNoNamespace marks a failure to open an endpoint's namespace file.
var errNoNamespace = errors.New("no network namespace")

// pair is the sockets between two endpoints: a sender per size in the source's namespace,
// and a subscription to the receiver in the destination's. Each size has a socket of its own
// because the kernel reports a router's ICMP error on the next send from the same socket,
// whatever its size.
type pair struct {
	from, to Endpoint
	src, dst netip.Addr
	sizes    []int
	run      runID
	arrived  arrival

	senders map[int]*sender
	// senderErr is why a size has no sender.
	senderErr ErrorKind
	sub       *subscription
}

// refresh drops the sockets whose namespace file no longer holds their namespace and opens
// what is missing. It returns what failed to open.
func (p *pair) refresh() error {
	if p.senders == nil {
		p.senders = map[int]*sender{}
	}
	for size, s := range p.senders {
		if !stillAt(p.from.NetnsFile, s.ns) {
			s.close()
			delete(p.senders, size)
		}
	}
	if p.sub != nil && p.sub.stale(p.to.NetnsFile) {
		p.sub.cancel()
		p.sub = nil
	}
	var errs []error
	if p.sub == nil {
		var err error
		if p.sub, err = subscribe(p.to, p.dst, p.run, p.arrived); err != nil {
			errs = append(errs, err)
		}
	}
	for _, size := range p.sizes {
		if p.senders[size] != nil {
			continue
		}
		s, err := openSender(p.from, p.src, p.dst)
		if err != nil {
			p.senderErr = kindOf(err)
			if errors.Is(err, errNoNamespace) {
				p.senderErr = SourceGone
			}
			errs = append(errs, err)
			break // the next would fail alike
		}
		p.senders[size] = s
	}
	return errors.Join(errs...)
}

func (p *pair) close() {
	for size, s := range p.senders {
		s.close()
		delete(p.senders, size)
	}
	if p.sub != nil {
		p.sub.cancel()
		p.sub = nil
	}
}
