package gitops

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/controllers"
	"github.com/mtu-operator/mtu-operator/internal/testenv"
)

var env *testenv.Env

// TestMain starts one API server for the package. The manager runs only inside
// TestControllerHealth: running for the whole package it would reconcile the policies whose
// status the other tests write by hand.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, testenv.Options{}, func(e *testenv.Env) func() { env = e; return nil }))
}

func newPolicy(name string, mode mtuv1alpha1.PolicyMode) *mtuv1alpha1.NetworkMTUPolicy {
	p := &mtuv1alpha1.NetworkMTUPolicy{}
	p.Name = name
	p.Spec.Underlay.MTU = new(int32(9000))
	p.Spec.Encapsulation.Type = mtuv1alpha1.EncapsulationVXLAN
	p.Spec.Mode = mode
	return p
}

func createPolicy(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatalf("creating %s: %v", p.Name, err)
	}
	t.Cleanup(func() {
		if err := env.Client.Delete(ctx, p); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting %s: %v", p.Name, err)
		}
	})
}

// writeStatus writes the policy's status through the status subresource as the operator
// shapes it: observedGeneration, and the conditions set with meta.SetStatusCondition.
func writeStatus(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy, observedGeneration int64, conditions []metav1.Condition) {
	t.Helper()
	p.Status.ObservedGeneration = observedGeneration
	p.Status.UnderlayMTU = 9000
	p.Status.PodMTU = 8950
	p.Status.IPFamilies = []mtuv1alpha1.IPFamily{mtuv1alpha1.IPv4}
	for _, c := range conditions {
		meta.SetStatusCondition(&p.Status.Conditions, c)
	}
	if err := env.Client.Status().Update(context.Background(), p); err != nil {
		t.Fatalf("writing status of %s: %v", p.Name, err)
	}
}

// readBack reads the policy from the API server as unstructured JSON, as Argo CD and kstatus
// see it.
func readBack(t *testing.T, name string) map[string]any {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(mtuv1alpha1.GroupVersion.WithKind("NetworkMTUPolicy"))
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, u); err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return u.Object
}

// TestHealthOfStoredPolicies: each status state, written through the status subresource and
// read back from the API server (timestamps as strings, generations as JSON numbers).
func TestHealthOfStoredPolicies(t *testing.T) {
	underlay := metav1.Condition{Type: mtuv1alpha1.ConditionUnderlayConsistent, Status: metav1.ConditionFalse,
		Reason: mtuv1alpha1.ReasonUnderlayMismatch, Message: mismatch}
	tests := []struct {
		name string
		mode mtuv1alpha1.PolicyMode
		// state writes the status; nil leaves the policy as created.
		state   func(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy)
		argo    string
		message string
		kstatus status.Status
	}{
		{
			// As in TestHealth, kstatus calls a policy without status Current.
			name: "no-status", argo: "Progressing", message: "Waiting for the operator to observe generation 1", kstatus: status.CurrentStatus,
		},
		{
			name: "ready",
			state: func(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy) {
				writeStatus(t, p, p.Generation, readyVerdict.Conditions(p.Generation))
			},
			argo: "Healthy", message: "pod MTU 8950 from underlay 9000 with VXLAN", kstatus: status.CurrentStatus,
		},
		{
			name: "dry-run", mode: mtuv1alpha1.ModeDryRun,
			state: func(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy) {
				writeStatus(t, p, p.Generation, readyVerdict.Conditions(p.Generation))
			},
			argo: "Healthy", message: "DryRun: pod MTU 8950", kstatus: status.CurrentStatus,
		},
		{
			name: "reconciling",
			state: func(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy) {
				writeStatus(t, p, p.Generation, progressingVerdict.Conditions(p.Generation))
			},
			argo: "Progressing", message: "waiting for node agents", kstatus: status.InProgressStatus,
		},
		{
			name: "stalled",
			state: func(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy) {
				writeStatus(t, p, p.Generation, stalledVerdict.Conditions(p.Generation))
			},
			argo: "Degraded", message: "PodMTUBelowFloor: pod MTU 1230", kstatus: status.FailedStatus,
		},
		{
			// kstatus ignores UnderlayConsistent (see TestHealth).
			name: "underlay-inconsistent",
			state: func(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy) {
				c := underlay
				c.ObservedGeneration = p.Generation
				writeStatus(t, p, p.Generation, append(readyVerdict.Conditions(p.Generation), c))
			},
			argo: "Degraded", message: mismatch, kstatus: status.CurrentStatus,
		},
		{
			// Ready for generation 1, then the user changes the spec.
			name: "stale-generation",
			state: func(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy) {
				writeStatus(t, p, p.Generation, readyVerdict.Conditions(p.Generation))
				p.Spec.Underlay.MTU = new(int32(1500))
				if err := env.Client.Update(context.Background(), p); err != nil {
					t.Fatal(err)
				}
				if p.Generation != 2 {
					t.Fatalf("generation %d after a spec change; want 2", p.Generation)
				}
			},
			argo: "Progressing", message: "Waiting for the operator to observe generation 2", kstatus: status.InProgressStatus,
		},
		{
			// kstatus does not read per-condition observedGeneration (see TestHealth).
			name: "stale-conditions",
			state: func(t *testing.T, p *mtuv1alpha1.NetworkMTUPolicy) {
				writeStatus(t, p, p.Generation, nil)
				p.Spec.Underlay.MTU = new(int32(1500))
				if err := env.Client.Update(context.Background(), p); err != nil {
					t.Fatal(err)
				}
				writeStatus(t, p, p.Generation, readyVerdict.Conditions(p.Generation-1))
			},
			argo: "Progressing", message: "Waiting for the operator to report Ready for generation 2", kstatus: status.CurrentStatus,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPolicy("stored-"+tc.name, tc.mode)
			createPolicy(t, p)
			if tc.state != nil {
				tc.state(t, p)
			}
			obj := readBack(t, p.Name)
			if tc.state != nil {
				// The stored shape the evaluators rely on.
				if g, ok := obj["status"].(map[string]any)["observedGeneration"].(int64); !ok || g == 0 {
					t.Fatalf("status.observedGeneration reads back as %T %v", obj["status"].(map[string]any)["observedGeneration"], g)
				}
			}
			checkHealth(t, obj, tc.argo, tc.message, tc.kstatus)
		})
	}
}

// TestControllerHealth runs the real reconciler and checks that, whatever state it reports,
// Argo CD and kstatus read it as the conditions say.
func TestControllerHealth(t *testing.T) {
	startManager(t)

	p := newPolicy("controller-jumbo-vxlan", mtuv1alpha1.ModeApply)
	createPolicy(t, p)
	checkControllerState(t, waitObserved(t, p.Name, 1))

	// Changing the spec (to DryRun) is observed and read the same way.
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Mode = mtuv1alpha1.ModeDryRun
	if err := env.Client.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	checkControllerState(t, waitObserved(t, p.Name, 2))
}

// startManager runs the controller as cmd/manager wires it, until the test ends (and so
// before the API server stops).
func startManager(t *testing.T) {
	t.Helper()
	testenv.SetLogger()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&controllers.NetworkMTUPolicyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	stop := testenv.StartManager(mgr)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// waitObserved waits until the policy is at generation and its status describes it.
func waitObserved(t *testing.T, name string, generation int64) map[string]any {
	t.Helper()
	var obj map[string]any
	testenv.Eventually(t, name+" observed", 30*time.Second, func() error {
		obj = readBack(t, name)
		u := unstructured.Unstructured{Object: obj}
		observed, _, _ := unstructured.NestedInt64(obj, "status", "observedGeneration")
		if u.GetGeneration() != generation || observed != generation {
			return fmt.Errorf("generation %d, observedGeneration %d; want both %d", u.GetGeneration(), observed, generation)
		}
		return nil
	})
	return obj
}

// checkControllerState checks the health of a policy the controller has just reconciled
// against the mapping TestHealth establishes for the conditions it carries.
func checkControllerState(t *testing.T, obj map[string]any) {
	t.Helper()
	var p mtuv1alpha1.NetworkMTUPolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &p); err != nil {
		t.Fatalf("decoding the policy: %v", err)
	}
	// The script trusts only conditions of the current generation; without a current Ready,
	// Argo CD would show the policy Progressing for ever.
	conds := map[string]*metav1.Condition{}
	for _, typ := range []string{mtuv1alpha1.ConditionReady, mtuv1alpha1.ConditionReconciling, mtuv1alpha1.ConditionStalled} {
		c := meta.FindStatusCondition(p.Status.Conditions, typ)
		if c == nil || c.ObservedGeneration != p.Generation {
			t.Fatalf("controller wrote %s as %+v; want it for generation %d", typ, c, p.Generation)
		}
		conds[typ] = c
	}
	ready, reconciling, stalled := conds[mtuv1alpha1.ConditionReady], conds[mtuv1alpha1.ConditionReconciling], conds[mtuv1alpha1.ConditionStalled]
	isTrue := func(c *metav1.Condition) bool { return c.Status == metav1.ConditionTrue }
	underlay := meta.FindStatusCondition(p.Status.Conditions, mtuv1alpha1.ConditionUnderlayConsistent)

	var argo, message string
	var kstatus status.Status
	switch {
	case isTrue(stalled):
		argo, message, kstatus = "Degraded", stalled.Reason+": "+stalled.Message, status.FailedStatus
	case underlay != nil && underlay.Status == metav1.ConditionFalse:
		argo, message, kstatus = "Degraded", underlay.Message, status.CurrentStatus
		if isTrue(reconciling) || !isTrue(ready) {
			kstatus = status.InProgressStatus
		}
	case isTrue(reconciling):
		argo, message, kstatus = "Progressing", reconciling.Message, status.InProgressStatus
	case isTrue(ready):
		argo, message, kstatus = "Healthy", ready.Message, status.CurrentStatus
		if p.Spec.Mode == mtuv1alpha1.ModeDryRun {
			message = "DryRun: " + message
		}
	default:
		argo, message, kstatus = "Progressing", ready.Message, status.InProgressStatus
	}
	t.Logf("generation %d: Ready=%s Reconciling=%s Stalled=%s -> Argo CD %s, kstatus %s", p.Generation,
		ready.Status, reconciling.Status, stalled.Status, argo, kstatus)
	checkHealth(t, obj, argo, message, kstatus)
}
