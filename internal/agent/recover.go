package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/node/journal"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/routepin"
	"github.com/mtu-operator/mtu-operator/internal/node/txn"
)

// maxInterruptions is how many times a change may be cut short by the agent stopping before
// the agent gives up on it: a change that kills the agent (or the node) every time is a
// failure, not something to try forever.
const maxInterruptions = 2

// ReasonInterrupted is the transaction reason of a change the agent gave up on because it kept
// stopping during it.
const ReasonInterrupted = "Interrupted"

// Recovered is what an agent found in its journal when it started.
type Recovered struct {
	// Pinner holds the routes pinned before the restart, so they are kept or released.
	Pinner *routepin.Pinner
	// Undone says what was undone of a transaction the previous process did not finish.
	Undone *txn.Result
}

// Recover reads the node's journal before the agent does anything else, and without the API
// server: an unfinished transaction is undone (each link still at its new MTU gets its former
// one back, checked), and counted, so the reconcile runs it again whole, with its probe; the
// routes pinned before are handed to the returned Pinner, which keeps or releases them as the
// NodeMTUState says. With no journal it returns a Pinner that remembers nothing.
func Recover(ctx context.Context, links netdev.Interfaces, j *journal.Journal) (Recovered, error) {
	if j == nil {
		return Recovered{Pinner: routepin.New(links)}, nil
	}
	rec := j.Record()
	out := Recovered{Pinner: routepin.NewRecorded(links, j.SetPins, rec.Pins...)}
	if len(rec.Pins) > 0 {
		log.FromContext(ctx).Info("routes pinned before the restart", "routes", len(rec.Pins))
	}
	p := rec.Transaction
	if p == nil {
		return out, nil
	}
	res := txn.Transaction{Links: links}.Undo(p.Changes)
	out.Undone = &res
	log.FromContext(ctx).Info("undid a change the agent had not finished", "outcome", res.Outcome, "reason", res.Reason)
	if res.Outcome == txn.Failed {
		return out, fmt.Errorf("undoing the change the agent had not finished: %s", res.Reason)
	}
	if p.Undone {
		return out, nil // stopped again before the change ran again: nothing more to count
	}
	p.Interruptions++
	p.Undone = true
	// Kept until the change runs again (or is given up): if the agent stops again before that,
	// the count survives, and undoing it again changes nothing.
	if err := j.SetTransaction(p); err != nil {
		return out, err
	}
	return out, nil
}

// interruptionsOf is how many times the agent stopped during the change the spec asks for.
func (r *Reconciler) interruptionsOf(spec mtuv1alpha1.NodeMTUStateSpec) int {
	if r.Journal == nil {
		return 0
	}
	p := r.Journal.Record().Transaction
	if p == nil || p.PolicyGeneration != spec.PolicyGeneration || p.Attempt != spec.Attempt {
		return 0
	}
	return p.Interruptions
}

// giveUp records a change that the agent stopped during too often as rolled back, so that
// it is not tried again until a person asks (as for any failed change).
func (r *Reconciler) giveUp(ctx context.Context, state *mtuv1alpha1.NodeMTUState, interruptions int) {
	record := &mtuv1alpha1.Transaction{
		PolicyGeneration: state.Spec.PolicyGeneration,
		Attempt:          state.Spec.Attempt,
		Outcome:          mtuv1alpha1.TransactionRolledBack,
		Reason:           ReasonInterrupted,
		Message:          fmt.Sprintf("the agent stopped %d times while making this change and undid it each time it started; not tried again until retried (check the agent's logs and the node's kernel log)", interruptions),
		Time:             metav1.Now(),
	}
	if err := r.Journal.SetTransaction(nil); err != nil {
		log.FromContext(ctx).Error(err, "clearing the journal's transaction")
	}
	state.Status.LastTransaction = record
	r.last = record.DeepCopy()
	r.transactionEnded(ctx, state, record)
}

// forgetUndone drops the record of a change undone on start that no longer needs to run (the
// node is at its target some other way, or the spec moved on).
func (r *Reconciler) forgetUndone(ctx context.Context) {
	if r.Journal == nil {
		return
	}
	if p := r.Journal.Record().Transaction; p != nil && p.Undone {
		if err := r.Journal.SetTransaction(nil); err != nil {
			log.FromContext(ctx).Error(err, "clearing the journal's transaction")
		}
	}
}

// originalUnderlay reports the underlay MTUs the journal recorded before the operator first
// changed them, sorted by name.
func (r *Reconciler) originalUnderlay() []mtuv1alpha1.OriginalMTU {
	if r.Journal == nil {
		return nil
	}
	originals := r.Journal.Record().OriginalMTUs
	var out []mtuv1alpha1.OriginalMTU
	for _, name := range slices.Sorted(maps.Keys(originals)) {
		if len(out) < 8 {
			out = append(out, mtuv1alpha1.OriginalMTU{Name: name, MTU: int32(originals[name])})
		}
	}
	return out
}
