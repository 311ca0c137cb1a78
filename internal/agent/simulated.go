package agent

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// Simulated is an agent without a kernel: it follows the NodeMTUState contract as the real
// agent does (report on every spec; with Converge, commit the spec's MTUs; pin what the spec
// pins until its policy's transition releases it, which it acts on without a report; check its paths when
// asked; never retry a failed attempt), for tests and benchmarks of the controller. It lives
// beside the real agent and shares its report code, so the two cannot drift apart.
type Simulated struct {
	Client client.Client
	Node   string
	// Underlay is the node's NIC MTU until a spec sets another; Address its underlay address.
	Underlay int32
	Address  string
	// Devices are the MTUs of the CNI's devices present on the node, by name.
	Devices map[string]int32
	// Stale are the stale pods it reports.
	Stale []mtuv1alpha1.StalePod
	// Refuse makes every change fail its probe, as a node that loses its peers would.
	Refuse bool

	mu  sync.Mutex // guards the fields above once Run has started
	pin *int32     // the route MTU pinned "in the kernel"
	// spec is the last spec acted on; released is each policy's transition's
	// pinsReleasedGeneration.
	spec     mtuv1alpha1.NodeMTUStateSpec
	released map[string]int64
	// original is the NIC's MTU before the first change, as the real agent's journal keeps it.
	original int32
	// stopped: the agent does not run; the node keeps what it has.
	stopped bool
}

// Pinned is the route MTU the simulated node has pinned now; nil when none.
func (s *Simulated) Pinned() *int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pin
}

// Stop stops the agent, as a crash does; Start starts it again.
func (s *Simulated) Stop() { s.setStopped(true) }

// Start starts a stopped agent again.
func (s *Simulated) Start() { s.setStopped(false) }

func (s *Simulated) setStopped(stopped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = stopped
}

// SetRefuse sets Refuse while the agent runs.
func (s *Simulated) SetRefuse(refuse bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Refuse = refuse
}

// UnderlayMTU is the simulated NIC's MTU now.
func (s *Simulated) UnderlayMTU() int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Underlay
}

// Run reports until ctx ends, polling its NodeMTUState.
func (s *Simulated) Run(ctx context.Context, every time.Duration) {
	for ctx.Err() == nil {
		_ = s.Step(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

// Step acts on the node's spec once, if the agent has not reported on it yet.
func (s *Simulated) Step(ctx context.Context) error {
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return nil
	}
	state := &mtuv1alpha1.NodeMTUState{}
	if err := s.Client.Get(ctx, types.NamespacedName{Name: s.Node}, state); err != nil {
		if apierrors.IsNotFound(err) {
			s.forget()
		}
		return client.IgnoreNotFound(err)
	}
	if name := state.Spec.Policy; name != "" {
		t := &mtuv1alpha1.NetworkMTUTransition{}
		if err := s.Client.Get(ctx, types.NamespacedName{Name: name}, t); err == nil {
			s.SeeTransition(t)
		}
	}
	return s.Act(ctx, state)
}

// SeeTransition acts on a transition's release of route pins, as the real agent does on a
// watch event of it: it drops a pin that is released, and reports nothing.
func (s *Simulated) SeeTransition(t *mtuv1alpha1.NetworkMTUTransition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released == nil {
		s.released = map[string]int64{}
	}
	s.released[t.Spec.Policy] = t.Spec.PinsReleasedGeneration
	if s.releasedLocked(s.spec) {
		s.pin = nil
	}
}

// releasedLocked: the policy's transition released the pins of spec's generation.
func (s *Simulated) releasedLocked(spec mtuv1alpha1.NodeMTUStateSpec) bool {
	return spec.Policy != "" && mtuv1alpha1.PinReleased(s.released[spec.Policy], spec.PolicyGeneration)
}

// forget: no policy manages the node any more, so routes get their own MTU back.
func (s *Simulated) forget() {
	s.mu.Lock()
	s.pin = nil
	s.mu.Unlock()
}

// Watch acts on every version of the node's NodeMTUState that the API server sends, through
// one watch restricted to the node's own object by a field selector, and on every
// NetworkMTUTransition, through a watch of them all, as each real agent's cache holds them; it
// returns when ctx ends. The watches are opened again when the API server closes them.
func (s *Simulated) Watch(ctx context.Context, c client.WithWatch) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchEvents(ctx, c, &mtuv1alpha1.NetworkMTUTransitionList{}, func(e watch.Event) {
			if t, ok := e.Object.(*mtuv1alpha1.NetworkMTUTransition); ok && e.Type != watch.Deleted {
				s.SeeTransition(t)
			}
		})
	}()
	defer func() { <-done }()
	watchEvents(ctx, c, &mtuv1alpha1.NodeMTUStateList{}, func(e watch.Event) {
		state, ok := e.Object.(*mtuv1alpha1.NodeMTUState)
		switch {
		case !ok:
		case e.Type == watch.Deleted:
			s.forget()
		default:
			// A conflict means a newer version is on its way, and is acted on then.
			_ = s.Act(ctx, state)
		}
	}, client.MatchingFields{"metadata.name": s.Node})
	return nil
}

// watchEvents hands every event of a watch of list to act until ctx ends, opening the watch
// again when the API server closes it.
func watchEvents(ctx context.Context, c client.WithWatch, list client.ObjectList, act func(watch.Event), opts ...client.ListOption) {
	for ctx.Err() == nil {
		w, err := c.Watch(ctx, list, opts...)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for e := range w.ResultChan() {
			act(e)
		}
		w.Stop()
	}
}

// Act reports on state, and converges when it says so, unless the agent reported on this
// version of the spec already.
func (s *Simulated) Act(ctx context.Context, state *mtuv1alpha1.NodeMTUState) error {
	if state.Status.ObservedGeneration >= state.Generation && state.Status.UnderlayMTU != 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	base := state.DeepCopy()
	spec, status := state.Spec, &state.Status
	last := status.LastTransaction
	failedBefore := last != nil && last.Outcome != mtuv1alpha1.TransactionCommitted && last.PolicyGeneration == spec.PolicyGeneration && last.Attempt == spec.Attempt
	if spec.Phase == mtuv1alpha1.PhaseConverge && !failedBefore {
		s.converge(spec, status)
	}
	if v := status.Verification; spec.Verify && (v == nil || v.PolicyGeneration != spec.PolicyGeneration || v.Attempt != spec.Attempt) {
		status.Verification = &mtuv1alpha1.Verification{PolicyGeneration: spec.PolicyGeneration, Attempt: spec.Attempt, Passed: !s.Refuse, Time: metav1.Now()}
	}
	status.Underlay = []mtuv1alpha1.UnderlayInterface{{Name: "eth0", MTU: s.Underlay, DefaultRoute: true}}
	status.UnderlayMTU = s.Underlay
	status.OriginalUnderlay = nil
	if s.original != 0 {
		status.OriginalUnderlay = []mtuv1alpha1.OriginalMTU{{Name: "eth0", MTU: s.original}}
	}
	if s.Address != "" {
		status.UnderlayAddresses = []string{s.Address}
	}
	s.spec = spec
	switch {
	case spec.RouteMTU != nil && s.releasedLocked(spec):
		// Released by the policy before the agent got to it: the status keeps what it said.
		s.pin = nil
	default:
		status.RouteMTU, s.pin = spec.RouteMTU, spec.RouteMTU
	}
	status.Interfaces = nil
	for _, i := range spec.Interfaces {
		m, ok := s.Devices[i.Name]
		status.Interfaces = append(status.Interfaces, mtuv1alpha1.InterfaceState{Name: i.Name, MTU: m, Present: ok})
	}
	status.StalePods, status.StalePodCount = s.Stale, int32(len(s.Stale))
	setConverged(state)
	status.ObservedGeneration = state.Generation
	return s.Client.Status().Patch(ctx, state, client.MergeFrom(base), client.FieldOwner(FieldManager))
}

// converge changes the simulated devices as one transaction.
func (s *Simulated) converge(spec mtuv1alpha1.NodeMTUStateSpec, status *mtuv1alpha1.NodeMTUStateStatus) {
	var changes []mtuv1alpha1.InterfaceChange
	if spec.UnderlayMTU != nil && *spec.UnderlayMTU != s.Underlay {
		changes = append(changes, mtuv1alpha1.InterfaceChange{Name: "eth0", From: s.Underlay, To: *spec.UnderlayMTU})
	}
	for _, i := range spec.Interfaces {
		if m, ok := s.Devices[i.Name]; ok && m != i.MTU {
			changes = append(changes, mtuv1alpha1.InterfaceChange{Name: i.Name, From: m, To: i.MTU})
		}
	}
	if len(changes) == 0 {
		return
	}
	t := &mtuv1alpha1.Transaction{PolicyGeneration: spec.PolicyGeneration, Attempt: spec.Attempt, Outcome: mtuv1alpha1.TransactionCommitted, Changes: changes, Time: metav1.Now()}
	if s.Refuse {
		t.Outcome, t.Reason, t.Message = mtuv1alpha1.TransactionRolledBack, "ProbeFailed", "probe failed: simulated"
	} else {
		if spec.UnderlayMTU != nil && *spec.UnderlayMTU != s.Underlay {
			if s.original == 0 {
				s.original = s.Underlay
			}
			s.Underlay = *spec.UnderlayMTU
		}
		for _, i := range spec.Interfaces {
			if _, ok := s.Devices[i.Name]; ok {
				s.Devices[i.Name] = i.MTU
			}
		}
	}
	status.LastTransaction = t
}
