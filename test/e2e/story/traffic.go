package story

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mtu-operator/mtu-operator/test/e2e/lab/traffic"
)

// Crossing is a claim about packets after a step: the largest IP packet that crosses, with
// fragmentation forbidden, from a pod on From to a pod on To. One byte more must not.
type Crossing struct {
	From, To string
	Size     int
	// Why says what limits it, for a reader.
	Why string
}

func (c Crossing) String() string {
	return fmt.Sprintf("%s → %s: %d B (%s)", c.From, c.To, c.Size, c.Why)
}

// crossingTries and crossingWait: a few datagrams of each size, each given a second.
const (
	crossingTries = 3
	crossingWait  = time.Second
)

// CheckCrossings sends datagrams between pods as each crossing says: every one at its size
// must arrive, none one byte larger.
func (w *World) CheckCrossings(ctx context.Context, cs []Crossing) error {
	var errs []error
	for _, c := range cs {
		from, err := w.PodOn(ctx, c.From)
		if err != nil {
			return err
		}
		to, err := w.PodOn(ctx, c.To)
		if err != nil {
			return err
		}
		fits, err := traffic.Probe(ctx, from, to, c.Size, crossingTries, crossingWait)
		if err != nil {
			return err
		}
		if fits.Delivered != fits.Sent {
			errs = append(errs, fmt.Errorf("%s: %d B from %s to %s: %s, want every one delivered%s", c, c.Size, from.IP, to.IP, fits, w.pinsOn(c.From, c.To)))
		}
		tooBig, err := traffic.Probe(ctx, from, to, c.Size+1, crossingTries, crossingWait)
		if err != nil {
			return err
		}
		if tooBig.Delivered != 0 {
			errs = append(errs, fmt.Errorf("%s: %d B from %s to %s: %s, want none delivered", c, c.Size+1, from.IP, to.IP, tooBig))
		}
	}
	return errors.Join(errs...)
}

// pinsOn says which routes the nodes pin, for a crossing that fails: a pin left behind is the
// first suspect.
func (w *World) pinsOn(nodes ...string) string {
	var b strings.Builder
	for _, name := range nodes {
		pinned, err := w.Node(name).PinnedRoutes()
		switch {
		case err != nil:
			fmt.Fprintf(&b, "; %s: %v", name, err)
		case len(pinned) > 0:
			fmt.Fprintf(&b, "; %s pins %s", name, strings.Join(pinned, ", "))
		}
	}
	return b.String()
}

// Path is a pair of nodes the background traffic flows between, from a pod on From to a
// pod on To, at Sizes.
type Path struct {
	From, To string
	Sizes    []int
}

func (p Path) String() string { return p.From + " → " + p.To }

// RoutableSize fits every path in the story at every moment: the smallest pod MTU in play
// (1450, on node-c) less a margin. A datagram of this size lost is an outage.
const RoutableSize = 1400

// TrafficPaths is the story's background traffic: the small size everywhere, and full jumbo
// frames between the two nodes that carry them from the start. (Jumbo frames to node-c are
// checked after each step instead: a datagram sent while node-c's bridge is still small
// brings back an ICMP report, and the sender's kernel would remember the small path MTU for
// ten minutes.)
var TrafficPaths = []Path{
	{From: "node-a", To: "node-b", Sizes: []int{RoutableSize, 8950}},
	{From: "node-a", To: "node-c", Sizes: []int{RoutableSize}},
}

// Traffic is datagrams sent in the background between pods on different nodes while the
// story runs, following the pods when they are replaced.
type Traffic struct {
	w       *World
	paths   []Path
	probers []*traffic.Prober // by path
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

// trafficInterval is how often each path sends one datagram of each size.
const trafficInterval = 50 * time.Millisecond

// StartTraffic starts the background traffic on paths.
func (w *World) StartTraffic(ctx context.Context, paths []Path) (_ *Traffic, err error) {
	t := &Traffic{w: w}
	defer func() {
		if err != nil {
			t.Stop()
		}
	}()
	for _, p := range paths {
		from, to, err := w.endpoints(ctx, p)
		if err != nil {
			return nil, err
		}
		pr, err := traffic.Start(from, to, p.Sizes, trafficInterval)
		if err != nil {
			return nil, fmt.Errorf("traffic %s: %w", p, err)
		}
		t.paths, t.probers = append(t.paths, p), append(t.probers, pr)
	}
	followCtx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.done.Go(func() { t.follow(followCtx) })
	return t, nil
}

func (w *World) endpoints(ctx context.Context, p Path) (from, to traffic.Endpoint, err error) {
	if from, err = w.PodOn(ctx, p.From); err != nil {
		return from, to, err
	}
	to, err = w.PodOn(ctx, p.To)
	return from, to, err
}

// follow moves each prober to the pods now running when the ones it used are replaced (the
// evictions): datagrams sent to a pod that is gone are lost, as they would be.
func (t *Traffic) follow(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	current := make([][2]traffic.Endpoint, len(t.paths))
	for i := range t.paths {
		current[i][0], current[i][1], _ = t.w.endpoints(ctx, t.paths[i])
	}
	for {
		for i, p := range t.paths {
			from, to, err := t.w.endpoints(ctx, p)
			if err != nil {
				continue
			}
			if now := [2]traffic.Endpoint{from, to}; current[i] != now {
				// A failed move is retried by the prober itself on every round.
				_ = t.probers[i].SetEndpoints(from, to)
				current[i] = now
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// PathReport is what one path sent and lost.
type PathReport struct {
	Path   Path
	Report traffic.Report
}

// Mark returns, by path, what was sent and lost since the previous Mark.
func (t *Traffic) Mark() []PathReport {
	out := make([]PathReport, len(t.paths))
	for i, pr := range t.probers {
		out[i] = PathReport{t.paths[i], pr.Mark()}
	}
	return out
}

// Stop stops the traffic and returns the totals by path.
func (t *Traffic) Stop() []PathReport {
	if t.cancel != nil {
		t.cancel()
	}
	t.done.Wait()
	out := make([]PathReport, len(t.paths))
	for i, pr := range t.probers {
		out[i] = PathReport{t.paths[i], pr.Stop()}
	}
	return out
}
