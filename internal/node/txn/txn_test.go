package txn_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev/fake"
	"github.com/mtu-operator/mtu-operator/internal/node/nettest"
	"github.com/mtu-operator/mtu-operator/internal/node/probe"
	"github.com/mtu-operator/mtu-operator/internal/node/txn"
)

func TestMain(m *testing.M) { os.Exit(nettest.Main(m)) }

func names(changes []txn.Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.Link
	}
	return out
}

func TestOrder(t *testing.T) {
	grow := func(link string, role txn.Role) txn.Change {
		return txn.Change{Link: link, From: 1500, To: 9000, Role: role}
	}
	shrink := func(link string, role txn.Role) txn.Change {
		return txn.Change{Link: link, From: 9000, To: 1500, Role: role}
	}
	same := func(link string, role txn.Role) txn.Change {
		return txn.Change{Link: link, From: 1450, To: 1450, Role: role}
	}

	tests := []struct {
		name    string
		changes []txn.Change
		want    []string
	}{
		{
			name: "growing: underlay, tunnel, bridge and gateway, pods",
			changes: []txn.Change{
				grow("pod-a", txn.Pod), grow("cni0", txn.Bridge), grow("flannel.1", txn.Tunnel),
				grow("pod-b", txn.Pod), grow("antrea-gw0", txn.Gateway), grow("eth0", txn.Underlay),
			},
			want: []string{"eth0", "flannel.1", "cni0", "antrea-gw0", "pod-a", "pod-b"},
		},
		{
			name: "shrinking: pods first, underlay last",
			changes: []txn.Change{
				shrink("eth0", txn.Underlay), shrink("flannel.1", txn.Tunnel), shrink("pod-a", txn.Pod),
				shrink("cni0", txn.Bridge), shrink("pod-b", txn.Pod),
			},
			want: []string{"pod-a", "pod-b", "cni0", "flannel.1", "eth0"},
		},
		{
			name: "mixed: every shrink top-down, then every grow bottom-up",
			changes: []txn.Change{
				grow("eth0", txn.Underlay), shrink("tunl0", txn.Tunnel), grow("pod-a", txn.Pod),
				shrink("pod-b", txn.Pod), grow("cni0", txn.Bridge),
			},
			want: []string{"pod-b", "tunl0", "eth0", "cni0", "pod-a"},
		},
		{
			name:    "changes that change nothing are dropped",
			changes: []txn.Change{same("eth0", txn.Underlay), grow("flannel.1", txn.Tunnel), same("pod-a", txn.Pod)},
			want:    []string{"flannel.1"},
		},
		{
			name: "nothing to do",
			want: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := names(txn.Order(tt.changes)); !slices.Equal(got, tt.want) {
				t.Errorf("Order = %v, want %v", got, tt.want)
			}
		})
	}
}

// node is a fake node: an underlay, a VXLAN tunnel, a bridge and two pod veths at 1500/1450.
func node() *fake.Netdev {
	return fake.New(
		netdev.Link{Name: "lo", MTU: 65536, Up: true, Kind: netdev.KindLoopback},
		netdev.Link{Name: "eth0", MTU: 1500, Up: true, Kind: netdev.KindDevice},
		netdev.Link{Name: "flannel.1", MTU: 1450, Up: true, Kind: "vxlan"},
		netdev.Link{Name: "cni0", MTU: 1450, Up: true, Kind: "bridge"},
		netdev.Link{Name: "veth-a", MTU: 1450, Up: true, Kind: "veth"},
		netdev.Link{Name: "veth-b", MTU: 1450, Up: true, Kind: "veth"},
	)
}

// toJumbo raises the fake node to a 9000-byte underlay, listed in no particular order.
var toJumbo = []txn.Change{
	{Link: "veth-a", From: 1450, To: 8950, Role: txn.Pod},
	{Link: "cni0", From: 1450, To: 8950, Role: txn.Bridge},
	{Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay},
	{Link: "veth-b", From: 1450, To: 8950, Role: txn.Pod},
	{Link: "flannel.1", From: 1450, To: 8950, Role: txn.Tunnel},
}

func pass() probe.Prober { return probe.Func(func(context.Context) error { return nil }) }

func fail(msg string) probe.Prober {
	return probe.Func(func(context.Context) error { return errors.New(msg) })
}

// setMTUCalls returns the SetMTU calls as "link mtu" strings.
func setMTUCalls(f *fake.Netdev) []string {
	var out []string
	for _, c := range f.Calls() {
		if c.Method == fake.MethodSetMTU {
			out = append(out, c.String())
		}
	}
	return out
}

func mtus(t *testing.T, f *fake.Netdev) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, name := range []string{"eth0", "flannel.1", "cni0", "veth-a", "veth-b"} {
		if l, ok := f.Link(name); ok {
			out[name] = l.MTU
		}
	}
	return out
}

var before = map[string]int{"eth0": 1500, "flannel.1": 1450, "cni0": 1450, "veth-a": 1450, "veth-b": 1450}

func TestRunCommitsWhenTheProbePasses(t *testing.T) {
	f := node()
	res := txn.Transaction{Links: f, Probe: pass()}.Run(t.Context(), toJumbo)

	if res.Outcome != txn.Committed {
		t.Fatalf("Outcome = %s (%s), want Committed", res.Outcome, res.Reason)
	}
	wantCalls := []string{"SetMTU eth0 9000", "SetMTU flannel.1 8950", "SetMTU cni0 8950", "SetMTU veth-a 8950", "SetMTU veth-b 8950"}
	if got := setMTUCalls(f); !slices.Equal(got, wantCalls) {
		t.Errorf("calls = %v, want %v", got, wantCalls)
	}
	if got := names(res.Applied); !slices.Equal(got, []string{"eth0", "flannel.1", "cni0", "veth-a", "veth-b"}) {
		t.Errorf("Applied = %v", got)
	}
	want := map[string]int{"eth0": 9000, "flannel.1": 8950, "cni0": 8950, "veth-a": 8950, "veth-b": 8950}
	if got := mtus(t, f); !reflect.DeepEqual(got, want) {
		t.Errorf("MTUs = %v, want %v", got, want)
	}
}

func TestRunRollsBackWhenTheProbeFails(t *testing.T) {
	f := node()
	res := txn.Transaction{Links: f, Probe: fail("10.0.0.2 unreachable")}.Run(t.Context(), toJumbo)

	if res.Outcome != txn.RolledBack {
		t.Fatalf("Outcome = %s (%s), want RolledBack", res.Outcome, res.Reason)
	}
	if !strings.Contains(res.Reason, "probe failed: 10.0.0.2 unreachable") {
		t.Errorf("Reason %q does not give the probe's failure", res.Reason)
	}
	wantCalls := []string{
		"SetMTU eth0 9000", "SetMTU flannel.1 8950", "SetMTU cni0 8950", "SetMTU veth-a 8950", "SetMTU veth-b 8950",
		"SetMTU veth-b 1450", "SetMTU veth-a 1450", "SetMTU cni0 1450", "SetMTU flannel.1 1450", "SetMTU eth0 1500",
	}
	if got := setMTUCalls(f); !slices.Equal(got, wantCalls) {
		t.Errorf("calls =\n %v\nwant\n %v", got, wantCalls)
	}
	if got := mtus(t, f); !reflect.DeepEqual(got, before) {
		t.Errorf("MTUs after rollback = %v, want %v", got, before)
	}
	if len(res.Applied) != 5 {
		t.Errorf("Applied = %v, want the 5 undone changes", res.Applied)
	}
}

func TestRunRollsBackWhenTheProbeTimesOut(t *testing.T) {
	respectsContext := probe.Func(func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	release := make(chan struct{})
	defer close(release)
	ignoresContext := probe.Func(func(context.Context) error {
		<-release
		return nil
	})
	for name, p := range map[string]probe.Prober{"respects its context": respectsContext, "ignores its context": ignoresContext} {
		t.Run(name, func(t *testing.T) {
			f := node()
			start := time.Now()
			res := txn.Transaction{Links: f, Probe: p, ProbeTimeout: 50 * time.Millisecond}.Run(t.Context(), toJumbo)
			if res.Outcome != txn.RolledBack {
				t.Fatalf("Outcome = %s (%s), want RolledBack", res.Outcome, res.Reason)
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Run took %s with a 50ms probe timeout", elapsed)
			}
			if got := mtus(t, f); !reflect.DeepEqual(got, before) {
				t.Errorf("MTUs after rollback = %v, want %v", got, before)
			}
		})
	}
}

func TestRunRollsBackWhatWasAppliedWhenAChangeFails(t *testing.T) {
	f := node()
	f.FailCalls(fake.Call{Method: fake.MethodSetMTU, Link: "cni0", MTU: 8950}, errors.New("setting cni0 MTU to 8950: invalid argument"))
	probed := false
	res := txn.Transaction{Links: f, Probe: probe.Func(func(context.Context) error { probed = true; return nil })}.Run(t.Context(), toJumbo)

	if res.Outcome != txn.RolledBack {
		t.Fatalf("Outcome = %s (%s), want RolledBack", res.Outcome, res.Reason)
	}
	if probed {
		t.Error("the probe ran although a change failed")
	}
	if !strings.Contains(res.Reason, "setting cni0 MTU to 8950: invalid argument") {
		t.Errorf("Reason %q does not name the failed change", res.Reason)
	}
	wantCalls := []string{"SetMTU eth0 9000", "SetMTU flannel.1 8950", "SetMTU cni0 8950", "SetMTU flannel.1 1450", "SetMTU eth0 1500"}
	if got := setMTUCalls(f); !slices.Equal(got, wantCalls) {
		t.Errorf("calls = %v, want %v", got, wantCalls)
	}
	if got := names(res.Applied); !slices.Equal(got, []string{"eth0", "flannel.1"}) {
		t.Errorf("Applied = %v, want the two changes made before cni0 failed", got)
	}
	if got := mtus(t, f); !reflect.DeepEqual(got, before) {
		t.Errorf("MTUs after rollback = %v, want %v", got, before)
	}
}

func TestRunFailsNamingTheLinkWhoseRollbackFailed(t *testing.T) {
	f := node()
	f.FailCalls(fake.Call{Method: fake.MethodSetMTU, Link: "flannel.1", MTU: 1450}, errors.New("setting flannel.1 MTU to 1450: device busy"))
	res := txn.Transaction{Links: f, Probe: fail("no route")}.Run(t.Context(), toJumbo)

	if res.Outcome != txn.Failed {
		t.Fatalf("Outcome = %s (%s), want Failed", res.Outcome, res.Reason)
	}
	for _, want := range []string{"probe failed: no route", "setting flannel.1 MTU to 1450: device busy", "flannel.1 is left at MTU 8950 instead of 1450"} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("Reason %q lacks %q", res.Reason, want)
		}
	}
	// Everything else is restored all the same.
	want := map[string]int{"eth0": 1500, "flannel.1": 8950, "cni0": 1450, "veth-a": 1450, "veth-b": 1450}
	if got := mtus(t, f); !reflect.DeepEqual(got, want) {
		t.Errorf("MTUs = %v, want %v", got, want)
	}
}

func TestRunSurvivesLinksThatDisappear(t *testing.T) {
	t.Run("during the probe", func(t *testing.T) {
		f := node()
		podGone := probe.Func(func(context.Context) error {
			f.RemoveLink("veth-b") // the pod was deleted
			return errors.New("probe failed")
		})
		res := txn.Transaction{Links: f, Probe: podGone}.Run(t.Context(), toJumbo)
		if res.Outcome != txn.RolledBack {
			t.Fatalf("Outcome = %s (%s), want RolledBack", res.Outcome, res.Reason)
		}
		if !strings.Contains(res.Reason, "veth-b disappeared") {
			t.Errorf("Reason %q does not mention veth-b", res.Reason)
		}
		want := map[string]int{"eth0": 1500, "flannel.1": 1450, "cni0": 1450, "veth-a": 1450}
		if got := mtus(t, f); !reflect.DeepEqual(got, want) {
			t.Errorf("MTUs = %v, want %v", got, want)
		}
	})
	t.Run("before the transaction", func(t *testing.T) {
		f := node()
		f.RemoveLink("veth-a")
		res := txn.Transaction{Links: f, Probe: pass()}.Run(t.Context(), toJumbo)
		if res.Outcome != txn.RolledBack || !strings.Contains(res.Reason, "nothing applied: link veth-a: link not found") {
			t.Fatalf("Result = %+v, want RolledBack with nothing applied because veth-a is missing", res)
		}
		if got := setMTUCalls(f); len(got) != 0 {
			t.Errorf("calls = %v, want none", got)
		}
	})
	t.Run("between the check and the change", func(t *testing.T) {
		f := node()
		f.FailCalls(fake.Call{Method: fake.MethodSetMTU, Link: "veth-a"}, netdev.ErrLinkNotFound)
		res := txn.Transaction{Links: f, Probe: pass()}.Run(t.Context(), toJumbo)
		if res.Outcome != txn.RolledBack {
			t.Fatalf("Outcome = %s (%s), want RolledBack", res.Outcome, res.Reason)
		}
		if got := mtus(t, f); !reflect.DeepEqual(got, before) {
			t.Errorf("MTUs = %v, want %v", got, before)
		}
	})
}

func TestRunRefusesBadOrStaleChanges(t *testing.T) {
	tests := []struct {
		name    string
		changes []txn.Change
		want    string
	}{
		{"stale From", []txn.Change{{Link: "eth0", From: 1400, To: 9000, Role: txn.Underlay}}, "link eth0 has MTU 1500, not the 1400 the change starts from"},
		{"twice the same link", []txn.Change{{Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay}, {Link: "eth0", From: 1500, To: 1400, Role: txn.Underlay}}, "link eth0 is changed twice"},
		{"unknown role", []txn.Change{{Link: "eth0", From: 1500, To: 9000, Role: "Spine"}}, `link eth0 has unknown role "Spine"`},
		{"non-positive MTU", []txn.Change{{Link: "eth0", From: 1500, To: 0, Role: txn.Underlay}}, "MTUs must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := node()
			res := txn.Transaction{Links: f, Probe: pass()}.Run(t.Context(), tt.changes)
			if res.Outcome != txn.RolledBack || !strings.Contains(res.Reason, tt.want) {
				t.Errorf("Result = %+v, want RolledBack with %q", res, tt.want)
			}
			if got := setMTUCalls(f); len(got) != 0 {
				t.Errorf("calls = %v, want none", got)
			}
		})
	}
}

func TestRunRollsBackWhenItsContextEnds(t *testing.T) {
	f := node()
	ctx, cancel := context.WithCancel(t.Context())
	cancelDuringProbe := probe.Func(func(ctx context.Context) error {
		cancel() // the agent is shutting down
		<-ctx.Done()
		return ctx.Err()
	})
	res := txn.Transaction{Links: f, Probe: cancelDuringProbe}.Run(ctx, toJumbo)
	if res.Outcome != txn.RolledBack {
		t.Fatalf("Outcome = %s (%s), want RolledBack", res.Outcome, res.Reason)
	}
	if got := mtus(t, f); !reflect.DeepEqual(got, before) {
		t.Errorf("MTUs = %v, want %v", got, before)
	}
}

func TestRunWithNothingToChange(t *testing.T) {
	f := node()
	res := txn.Transaction{Links: f, Probe: fail("must not run")}.Run(t.Context(), []txn.Change{{Link: "eth0", From: 1500, To: 1500, Role: txn.Underlay}})
	if res.Outcome != txn.Committed || len(res.Applied) != 0 {
		t.Errorf("Result = %+v, want Committed with nothing applied", res)
	}
}

func TestUndoRestoresWhatAnInterruptedTransactionApplied(t *testing.T) {
	// Killed after eth0 and flannel.1 were raised, before cni0: cni0 is still at its From.
	// Someone set veth1 by hand since: it is left alone and named.
	f := fake.New(
		netdev.Link{Name: "eth0", MTU: 9000, Up: true},
		netdev.Link{Name: "flannel.1", MTU: 8950, Up: true},
		netdev.Link{Name: "cni0", MTU: 1450, Up: true},
		netdev.Link{Name: "veth1", MTU: 1400, Up: true},
	)
	recorded := []txn.Change{
		{Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay},
		{Link: "flannel.1", From: 1450, To: 8950, Role: txn.Tunnel},
		{Link: "cni0", From: 1450, To: 8950, Role: txn.Bridge},
		{Link: "veth1", From: 1450, To: 8950, Role: txn.Pod},
		{Link: "gone0", From: 1450, To: 8950, Role: txn.Pod},
	}
	res := txn.Transaction{Links: f}.Undo(recorded)
	if res.Outcome != txn.RolledBack {
		t.Fatalf("Undo: %s (%s), want RolledBack", res.Outcome, res.Reason)
	}
	if got := names(res.Applied); !reflect.DeepEqual(got, []string{"eth0", "flannel.1"}) {
		t.Errorf("undid %v, want the links found at their new MTU: eth0, flannel.1", got)
	}
	var set []string
	for _, c := range f.Calls() {
		if c.Method == fake.MethodSetMTU {
			set = append(set, c.String())
		}
	}
	if want := []string{"SetMTU flannel.1 1450", "SetMTU eth0 1500"}; !reflect.DeepEqual(set, want) {
		t.Errorf("kernel calls %v, want %v (the tunnel first: never larger than what carries it)", set, want)
	}
	for name, want := range map[string]int{"eth0": 1500, "flannel.1": 1450, "cni0": 1450, "veth1": 1400} {
		if l, _ := f.Link(name); l.MTU != want {
			t.Errorf("%s is %d after Undo, want %d", name, l.MTU, want)
		}
	}
	if !strings.Contains(res.Reason, "veth1 (now 1400, changed by someone else)") {
		t.Errorf("reason %q does not name the link changed by someone else", res.Reason)
	}

	// Undoing again (the agent stopped once more before the change ran again) changes nothing.
	f.ResetCalls()
	if res := (txn.Transaction{Links: f}).Undo(recorded); res.Outcome != txn.RolledBack || len(res.Applied) != 0 || len(f.Calls()) > 1 {
		t.Errorf("second Undo: %s, applied %v, calls %v; want nothing changed", res.Outcome, res.Applied, f.Calls())
	}
}

func TestRecordComesBeforeTheFirstChange(t *testing.T) {
	f := fake.New(netdev.Link{Name: "eth0", MTU: 1500, Up: true}, netdev.Link{Name: "flannel.1", MTU: 1450, Up: true})
	changes := []txn.Change{{Link: "flannel.1", From: 1450, To: 8950, Role: txn.Tunnel}, {Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay}}

	var recorded []txn.Change
	tx := txn.Transaction{Links: f, Record: func(ordered []txn.Change) error {
		if n := len(f.Calls()); n > 1 { // the Links read of checkFrom only
			t.Errorf("recorded after %d kernel calls: %v", n, f.Calls())
		}
		recorded = ordered
		return nil
	}}
	if res := tx.Run(context.Background(), changes); res.Outcome != txn.Committed {
		t.Fatalf("Run: %s (%s)", res.Outcome, res.Reason)
	}
	if got := names(recorded); !reflect.DeepEqual(got, []string{"eth0", "flannel.1"}) {
		t.Errorf("recorded %v, want the changes in the order applied", got)
	}

	// A record that cannot be written stops the transaction before it changes anything.
	g := fake.New(netdev.Link{Name: "eth0", MTU: 1500, Up: true})
	tx = txn.Transaction{Links: g, Record: func([]txn.Change) error { return errors.New("disk full") }}
	res := tx.Run(context.Background(), []txn.Change{{Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay}})
	if l, _ := g.Link("eth0"); res.Outcome != txn.RolledBack || l.MTU != 1500 || !strings.Contains(res.Reason, "disk full") {
		t.Errorf("with a failing record: %s (%s), eth0 %d; want nothing applied and the cause named", res.Outcome, res.Reason, l.MTU)
	}
}
