package traffic

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// probeSpacing separates Probe's datagrams, as an application's paced sends would be: a burst
// could overflow the receiver's socket buffer, and the spacing lets a router's ICMP report
// reach the sending socket before the next send.
const probeSpacing = time.Millisecond

// Result is what a Probe saw.
type Result struct {
	// Sent counts the datagrams Probe tried to send, Delivered those the receiver got.
	Sent, Delivered int
	// Errors counts the sends that failed, by kind.
	Errors map[ErrorKind]int
}

// Accepted counts the sends that did not fail: datagrams that left the pod.
func (r Result) Accepted() int {
	n := r.Sent
	for _, count := range r.Errors {
		n -= count
	}
	return n
}

// String is a line like "sent 20, delivered 0, 19 message too long".
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d, delivered %d", r.Sent, r.Delivered)
	for _, kind := range slices.Sorted(maps.Keys(r.Errors)) {
		fmt.Fprintf(&b, ", %d %s", r.Errors[kind], kind)
	}
	return b.String()
}

// Probe sends count UDP datagrams of size bytes (the whole IP packet) with fragmentation
// forbidden from `from` to the receiver in `to`, a millisecond apart, and counts those that
// arrive. Each datagram has timeout to arrive. The error reports endpoints, sockets or a size
// that Probe could not use; a datagram that does not arrive or cannot be sent is a result,
// not an error.
func Probe(ctx context.Context, from, to Endpoint, size, count int, timeout time.Duration) (Result, error) {
	src, dst, err := parseEndpoints(from, to)
	if err != nil {
		return Result{}, err
	}
	if err := checkSize(size, dst); err != nil {
		return Result{}, err
	}
	if count < 1 || timeout <= 0 {
		return Result{}, fmt.Errorf("count %d and timeout %s: both must be positive", count, timeout)
	}
	t := newTally([]int{size}, timeout)
	pr := &pair{from: from, to: to, src: src, dst: dst, sizes: []int{size}, run: newRunID(), arrived: t.arrived}
	defer pr.close()
	if err := pr.refresh(); err != nil {
		return Result{}, err
	}

	payload := make([]byte, size-headerLen(dst))
	pace := time.NewTicker(probeSpacing)
	defer pace.Stop()
	for seq := range uint64(count) {
		if seq > 0 {
			select {
			case <-pace.C:
			case <-ctx.Done():
				return Result{}, ctx.Err()
			}
		}
		encode(payload, pr.run, seq)
		t.with(func(l *ledger) { l.sent(seq, size, time.Now()) })
		if err := pr.senders[size].send(payload); err != nil {
			t.with(func(l *ledger) { l.failed(seq, kindOf(err)) })
		}
	}
	if err := t.settle(ctx, 0); err != nil {
		return Result{}, err
	}
	var s SizeReport
	t.with(func(l *ledger) { s = l.report().Sizes[0] })
	return Result{Sent: s.Sent, Delivered: s.Delivered, Errors: s.Errors}, nil
}
