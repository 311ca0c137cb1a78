// Package probe checks that a node still talks to what it must after an MTU change, so a
// transaction can commit or roll back on evidence rather than hope.
//
// A Prober is anything with Probe(ctx) error. TCP checks that a service (the API server) still
// accepts connections; ICMPDF checks that a path carries packets of a given size without
// fragmentation, which is what an MTU change can break while small packets still pass; All
// combines probers; InNamespace runs one inside a network namespace.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
)

// Prober checks one thing and returns an error saying what failed. It must return once ctx
// ends.
type Prober interface {
	Probe(ctx context.Context) error
}

// Func adapts a function to a Prober.
type Func func(ctx context.Context) error

// Probe calls f.
func (f Func) Probe(ctx context.Context) error { return f(ctx) }

// DefaultTimeout is used by probers given a timeout of 0.
const DefaultTimeout = 5 * time.Second

func timeoutOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

// TCP returns a Prober that opens a TCP connection to address (host:port) and closes it. It
// proves the service is reachable and accepting connections; the handshake's packets are small,
// so use ICMPDF to prove the path carries full-size packets.
func TCP(address string, timeout time.Duration) Prober {
	return tcpProbe{address: address, timeout: timeoutOrDefault(timeout)}
}

type tcpProbe struct {
	address string
	timeout time.Duration
}

func (p tcpProbe) String() string { return "TCP connect to " + p.address }

func (p tcpProbe) Probe(ctx context.Context) error {
	d := net.Dialer{Timeout: p.timeout}
	conn, err := d.DialContext(ctx, "tcp", p.address)
	if errors.Is(err, syscall.ECONNREFUSED) {
		// The host answered (a reset): the node reaches it. A server that is down (an API
		// server restarting) says nothing about the node's network, and must not roll back
		// its change.
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return conn.Close()
}

// All returns a Prober that runs probers in order and fails with the first failure, without
// running the rest: each failure is reason enough to roll back, and the rest would only spend
// the transaction's probe time.
func All(probers ...Prober) Prober {
	return all(probers)
}

type all []Prober

func (a all) Probe(ctx context.Context) error {
	for _, p := range a {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("probes interrupted: %w", err)
		}
		if err := p.Probe(ctx); err != nil {
			return err
		}
	}
	return nil
}

// InNamespace returns a Prober that runs p with its sockets in the network namespace ns (see
// netdev.InNamespace: p must open its sockets on the calling goroutine and use IP literals,
// as TCP with an IP address and ICMPDF do). The caller keeps ns open while the Prober is used.
func InNamespace(ns netns.NsHandle, p Prober) Prober {
	return nsProbe{ns: ns, p: p}
}

type nsProbe struct {
	ns netns.NsHandle
	p  Prober
}

func (n nsProbe) String() string { return fmt.Sprintf("%v in network namespace %s", n.p, n.ns) }

func (n nsProbe) Probe(ctx context.Context) error {
	var probeErr error
	if err := netdev.InNamespace(n.ns, func() error {
		probeErr = n.p.Probe(ctx)
		return nil
	}); err != nil {
		return errors.Join(probeErr, err)
	}
	return probeErr
}
