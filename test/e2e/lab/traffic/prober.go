package traffic

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// LossGrace is how long a prober's datagram may take to arrive before it counts as lost.
// Between pods on one machine a datagram takes well under a millisecond; the rest covers the
// first datagrams to a new neighbor, which wait for its ARP or neighbor discovery reply.
const LossGrace = time.Second

// Prober sends datagrams of several sizes between two endpoints in the background, one per
// size per interval, and counts what arrives. Its reports never count a datagram in flight
// as lost.
//
// A prober lets go of an endpoint's sockets as soon as its namespace file no longer holds the
// namespace they were opened in: a socket would keep a deleted pod's namespace, and its links,
// alive and answering. It tries to reopen them on every round, so a namespace mounted again
// at the same file is picked up; until then datagrams to it are lost, and sends from it fail
// with SourceGone.
type Prober struct {
	sizes    []int
	interval time.Duration
	run      runID
	tally    *tally
	seq      uint64 // owned by the sending goroutine

	// pair is owned by the sending goroutine, and by Stop once it has ended.
	pair  *pair
	moves chan move
	stop  chan struct{}
	done  chan struct{}

	// reporting serializes Mark and Stop, which wait for windows to settle.
	reporting sync.Mutex
	stopOnce  sync.Once
}

// move asks the sending goroutine to switch to other endpoints.
type move struct {
	pair   *pair
	result chan error
}

// Start opens sockets between from and to and sends, every interval, one datagram of each
// size (whole IP packets, headers included). Stop it to end its goroutines and close its
// sockets.
func Start(from, to Endpoint, sizes []int, interval time.Duration) (*Prober, error) {
	if interval <= 0 {
		return nil, fmt.Errorf("interval %s: must be positive", interval)
	}
	sizes = slices.Compact(slices.Sorted(slices.Values(sizes)))
	if len(sizes) == 0 {
		return nil, errors.New("no sizes to probe")
	}
	p := &Prober{
		sizes: sizes, interval: interval, run: newRunID(), tally: newTally(sizes, LossGrace),
		moves: make(chan move), stop: make(chan struct{}), done: make(chan struct{}),
	}
	pr, err := p.newPair(from, to)
	if err != nil {
		return nil, err
	}
	if err := pr.refresh(); err != nil {
		pr.close()
		return nil, err
	}
	p.pair = pr
	go p.send()
	return p, nil
}

func (p *Prober) newPair(from, to Endpoint) (*pair, error) {
	src, dst, err := parseEndpoints(from, to)
	if err != nil {
		return nil, err
	}
	for _, size := range p.sizes {
		if err := checkSize(size, dst); err != nil {
			return nil, err
		}
	}
	return &pair{from: from, to: to, src: src, dst: dst, sizes: p.sizes, run: p.run, arrived: p.tally.arrived}, nil
}

// SetEndpoints moves the prober to other endpoints, as when pods are replaced: it closes the
// old sockets and opens new ones. Datagrams still on their way to the old receiver are lost.
// An error opening the new sockets does not stop the move: the prober keeps trying on every
// round, and counts the datagrams meanwhile as lost.
func (p *Prober) SetEndpoints(from, to Endpoint) error {
	pr, err := p.newPair(from, to)
	if err != nil {
		return err
	}
	m := move{pair: pr, result: make(chan error, 1)}
	select {
	case p.moves <- m:
		return <-m.result
	case <-p.done:
		return errors.New("the prober is stopped")
	}
}

// send is the sending goroutine.
func (p *Prober) send() {
	defer close(p.done)
	buf := make([]byte, maxSize)
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		p.round(buf)
		select {
		case <-p.stop:
			return
		case m := <-p.moves:
			p.pair.close()
			p.pair = m.pair
			m.result <- p.pair.refresh()
			// The next round waits for the ticker, keeping one datagram per interval.
			select {
			case <-p.stop:
				return
			case <-ticker.C:
			}
		case <-ticker.C:
		}
	}
}

// round sends one datagram of each size.
func (p *Prober) round(buf []byte) {
	pr := p.pair
	_ = pr.refresh() // what stays closed shows as lost datagrams
	for _, size := range p.sizes {
		p.seq++
		seq := p.seq
		s := pr.senders[size]
		if s == nil {
			p.tally.with(func(l *ledger) { l.notSent(seq, size, time.Now(), pr.senderErr) })
			continue
		}
		payload := buf[:size-headerLen(pr.dst)]
		encode(payload, p.run, seq)
		p.tally.with(func(l *ledger) { l.sent(seq, size, time.Now()) })
		if err := s.send(payload); err != nil {
			p.tally.with(func(l *ledger) { l.failed(seq, kindOf(err)) })
		}
	}
	p.tally.with(func(l *ledger) { l.expire(time.Now()) })
}

// Snapshot returns the counts since Start. Datagrams sent less than LossGrace ago that have
// not arrived yet are in flight, not lost.
func (p *Prober) Snapshot() Report {
	var r Report
	p.tally.with(func(l *ledger) {
		l.expire(time.Now())
		r = l.report()
	})
	return r
}

// Mark returns the counts of the datagrams sent since the previous Mark (or Start). The window
// closes when Mark is called; Mark returns once each of its datagrams has arrived or been lost,
// at most LossGrace later, while the prober goes on sending into the next window. Call it right
// before and right after a step to get what the step cost.
func (p *Prober) Mark() Report {
	p.reporting.Lock()
	defer p.reporting.Unlock()
	var window int
	p.tally.with(func(l *ledger) { window = l.closeWindow() })
	_ = p.tally.settle(context.Background(), window) // cannot fail without a deadline
	var r Report
	p.tally.with(func(l *ledger) { r = l.takeWindow(window) })
	return r
}

// Stop stops sending, waits at most LossGrace for the datagrams in flight, closes the sockets
// and returns the counts since Start. Mark still returns the datagrams sent between the last
// Mark and Stop.
func (p *Prober) Stop() Report {
	p.reporting.Lock()
	defer p.reporting.Unlock()
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
		var window int
		p.tally.with(func(l *ledger) { window = l.window })
		_ = p.tally.settle(context.Background(), window)
		p.pair.close()
	})
	return p.Snapshot()
}
