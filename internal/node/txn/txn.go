// Package txn changes the MTUs of a node's links as one transaction: apply every change in a
// safe order, probe that the node still talks to what it must, then commit, or restore every
// link to its former MTU. A wrong MTU cuts a node off silently (small packets pass, large ones
// vanish), so no change is kept without evidence that it works.
package txn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/probe"
)

// Role is what a link does in the node's network. It decides the order of the changes.
type Role string

// The roles, from the bottom of the stack (what carries) to the top (what is carried).
const (
	// Underlay is a physical interface between nodes.
	Underlay Role = "Underlay"
	// Tunnel is an encapsulation device (flannel.1, vxlan.calico, tunl0, antrea's
	// genev_sys_6081) whose packets the underlay carries.
	Tunnel Role = "Tunnel"
	// Bridge is a bridge pods are attached to (cni0).
	Bridge Role = "Bridge"
	// Gateway is the node-side gateway interface of the pod network (antrea-gw0).
	Gateway Role = "Gateway"
	// Pod is a pod's interface or the host end of its veth.
	Pod Role = "Pod"
)

// rank orders the roles: a link of a lower rank carries the traffic of higher ones.
var rank = map[Role]int{Underlay: 0, Tunnel: 1, Bridge: 2, Gateway: 2, Pod: 3}

// Change is one link's MTU change.
type Change struct {
	Link string `json:"link"`
	// From is the MTU the link has before the change, and gets back on rollback.
	From int `json:"from"`
	// To is the MTU to set.
	To   int  `json:"to"`
	Role Role `json:"role"`
}

func (c Change) String() string { return fmt.Sprintf("%s %d→%d", c.Link, c.From, c.To) }

// Outcome is how a transaction ended.
type Outcome string

// The outcomes.
const (
	// Committed: every change is applied and the probe passed.
	Committed Outcome = "Committed"
	// RolledBack: the node is as it was before: the applied changes were undone and checked,
	// or nothing could be applied.
	RolledBack Outcome = "RolledBack"
	// Failed: undoing the changes failed; Reason names each link left at the wrong MTU.
	Failed Outcome = "Failed"
)

// Result says how a transaction ended and why.
type Result struct {
	Outcome Outcome
	// Reason is a sentence for people: what was done, what failed.
	Reason string
	// Applied are the changes that were made, in the order they were made. On RolledBack
	// and Failed they are the changes that had to be undone.
	Applied []Change
}

// DefaultProbeTimeout is the probe's time limit when Transaction.ProbeTimeout is 0.
const DefaultProbeTimeout = 10 * time.Second

// Transaction applies MTU changes to the links of one network namespace.
type Transaction struct {
	// Links is the namespace's links.
	Links netdev.Interfaces
	// Probe decides, after the changes, whether to keep them. Nil commits without probing.
	Probe probe.Prober
	// ProbeTimeout bounds the probe; a probe still running then counts as failed.
	ProbeTimeout time.Duration
	// Record, when set, is called with the changes in the order they will be applied, after
	// they are checked and before the first one: a record that survives the process lets a
	// restarted agent undo a transaction it did not finish (Undo). If it fails, nothing is
	// applied.
	Record func([]Change) error
}

// Order returns the changes that change something (To differs from From) in the order to apply
// them.
//
// The rule is that no device is ever larger than what carries it: a tunnel larger than its
// underlay, or a pod larger than its bridge, sends packets the device below drops (the kernel
// even refuses to raise a VXLAN device above its parent's MTU less the overhead). So a growing
// MTU is applied bottom-up (underlay, tunnel, bridge and gateway, pods) and a shrinking one
// top-down (pods first, underlay last). When some links grow and others shrink, every shrink is
// applied first, top-down, then every grow, bottom-up. Given a consistent start and a consistent
// end, no step breaks the rule: a shrinking link only gets smaller, so its carriers (not yet
// touched) still fit it, and what it carries has either already shrunk to a final MTU no larger
// than its new one or will grow later from an old MTU below its final one; a growing link's
// carriers have all reached their final MTU, at least its own, before it grows. Links of one
// role keep their given order.
func Order(changes []Change) []Change {
	var shrinks, grows []Change
	for _, c := range changes {
		switch {
		case c.To < c.From:
			shrinks = append(shrinks, c)
		case c.To > c.From:
			grows = append(grows, c)
		}
	}
	slices.SortStableFunc(shrinks, func(a, b Change) int { return rank[b.Role] - rank[a.Role] })
	slices.SortStableFunc(grows, func(a, b Change) int { return rank[a.Role] - rank[b.Role] })
	return append(shrinks, grows...)
}

// Run applies the changes in Order, probes, and commits or rolls back. It never panics on links
// that disappear: a link gone before it could be changed aborts the transaction, and a link gone
// before it could be restored has nothing left to restore. If ctx ends before the probe passes,
// the changes are rolled back.
func (t Transaction) Run(ctx context.Context, changes []Change) Result {
	if err := validate(changes); err != nil {
		return Result{Outcome: RolledBack, Reason: "nothing applied: " + err.Error()}
	}
	ordered := Order(changes)
	if len(ordered) == 0 {
		return Result{Outcome: Committed, Reason: "nothing to change"}
	}
	if err := t.checkFrom(ordered); err != nil {
		return Result{Outcome: RolledBack, Reason: "nothing applied: " + err.Error()}
	}
	if t.Record != nil {
		if err := t.Record(ordered); err != nil {
			return Result{Outcome: RolledBack, Reason: "nothing applied: recording the change before making it: " + err.Error()}
		}
	}

	var applied []Change
	for _, c := range ordered {
		if err := ctx.Err(); err != nil {
			return t.rollBack(applied, fmt.Sprintf("interrupted before %s: %v", c, err))
		}
		if err := t.Links.SetMTU(c.Link, c.To); err != nil {
			return t.rollBack(applied, err.Error())
		}
		applied = append(applied, c)
	}

	if err := t.probe(ctx); err != nil {
		return t.rollBack(applied, "probe failed: "+err.Error())
	}
	reason := fmt.Sprintf("applied %s", describe(applied))
	if t.Probe != nil {
		reason += "; probe passed"
	}
	return Result{Outcome: Committed, Reason: reason, Applied: applied}
}

func validate(changes []Change) error {
	seen := map[string]bool{}
	for _, c := range changes {
		if c.Link == "" {
			return errors.New("a change has no link name")
		}
		if seen[c.Link] {
			return fmt.Errorf("link %s is changed twice", c.Link)
		}
		seen[c.Link] = true
		if _, ok := rank[c.Role]; !ok {
			return fmt.Errorf("link %s has unknown role %q", c.Link, c.Role)
		}
		if c.From <= 0 || c.To <= 0 {
			return fmt.Errorf("link %s: MTUs must be positive, got %d→%d", c.Link, c.From, c.To)
		}
	}
	return nil
}

// checkFrom makes sure every link exists at its From MTU, so a rollback restores what was
// really there rather than a stale plan's idea of it.
func (t Transaction) checkFrom(changes []Change) error {
	links, err := t.Links.Links()
	if err != nil {
		return err
	}
	for _, c := range changes {
		l, ok := find(links, c.Link)
		if !ok {
			return fmt.Errorf("link %s: %w", c.Link, netdev.ErrLinkNotFound)
		}
		if l.MTU != c.From {
			return fmt.Errorf("link %s has MTU %d, not the %d the change starts from", c.Link, l.MTU, c.From)
		}
	}
	return nil
}

// probe runs the prober with the timeout, and stops waiting at the timeout even for a prober
// that ignores its context.
func (t Transaction) probe(ctx context.Context) error {
	if t.Probe == nil {
		return ctx.Err()
	}
	timeout := t.ProbeTimeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- t.Probe.Probe(ctx) }()
	select {
	case err := <-errc:
		if err == nil {
			// A pass that arrives after the caller gave up does not count.
			err = ctx.Err()
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("no verdict within %s: %w", timeout, ctx.Err())
	}
}

// Undo rolls back a transaction that a process started and did not finish (it was killed
// between Record and the outcome): every recorded change whose link is at its To MTU is
// restored, in reverse order, and checked, as a failed probe's rollback would. A link at its
// From MTU was not reached yet; a link at another MTU was changed by someone else since, and is
// left as it is and named.
func (t Transaction) Undo(recorded []Change) Result {
	links, err := t.Links.Links()
	if err != nil {
		return Result{Outcome: Failed, Reason: "reading the links to undo an unfinished change: " + err.Error()}
	}
	var applied []Change
	var others []string
	for _, c := range recorded {
		l, ok := find(links, c.Link)
		switch {
		case !ok || l.MTU == c.From:
		case l.MTU == c.To:
			applied = append(applied, c)
		default:
			others = append(others, fmt.Sprintf("%s (now %d, changed by someone else)", c.Link, l.MTU))
		}
	}
	cause := "the change " + describe(recorded) + " was interrupted"
	if len(others) > 0 {
		cause += "; left as found: " + strings.Join(others, ", ")
	}
	return t.rollBack(applied, cause)
}

// rollBack restores the applied changes in reverse order, checks the links by reading them
// again, and reports.
func (t Transaction) rollBack(applied []Change, cause string) Result {
	if len(applied) == 0 {
		return Result{Outcome: RolledBack, Reason: cause + "; nothing had been applied"}
	}
	var failures, gone []string
	for _, c := range slices.Backward(applied) {
		if err := t.Links.SetMTU(c.Link, c.From); err != nil {
			if errors.Is(err, netdev.ErrLinkNotFound) {
				gone = append(gone, c.Link)
				continue
			}
			failures = append(failures, err.Error())
		}
	}

	links, err := t.Links.Links()
	if err != nil {
		failures = append(failures, "checking the rollback: "+err.Error())
	} else {
		for _, c := range applied {
			if slices.Contains(gone, c.Link) {
				continue
			}
			l, ok := find(links, c.Link)
			switch {
			case !ok:
				gone = append(gone, c.Link)
			case l.MTU != c.From:
				failures = append(failures, fmt.Sprintf("%s is left at MTU %d instead of %d", c.Link, l.MTU, c.From))
			}
		}
	}

	reason := cause
	if len(gone) > 0 {
		reason += fmt.Sprintf("; %s disappeared, nothing to restore there", strings.Join(gone, ", "))
	}
	if len(failures) > 0 {
		return Result{Outcome: Failed, Reason: reason + "; rollback failed: " + strings.Join(failures, "; "), Applied: applied}
	}
	return Result{Outcome: RolledBack, Reason: reason + "; restored " + describeFrom(applied, gone), Applied: applied}
}

func find(links []netdev.Link, name string) (netdev.Link, bool) {
	i := slices.IndexFunc(links, func(l netdev.Link) bool { return l.Name == name })
	if i < 0 {
		return netdev.Link{}, false
	}
	return links[i], true
}

func describe(changes []Change) string {
	parts := make([]string, len(changes))
	for i, c := range changes {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

func describeFrom(changes []Change, except []string) string {
	var parts []string
	for _, c := range changes {
		if !slices.Contains(except, c.Link) {
			parts = append(parts, fmt.Sprintf("%s to %d", c.Link, c.From))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}
