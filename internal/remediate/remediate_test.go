package remediate

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const ownedText = "1450 (expected 1500): 1450 predates the switch from VXLAN to None; delete the pod so its controller recreates it with the new MTU"

func TestReportAnnotatesEachPodOnceWithOneEvent(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createPod(t, ns, "web-a", podOpts{annotations: map[string]string{"team": "payments"}})
	createPod(t, ns, "web-b", podOpts{})
	createPod(t, ns, "debug", podOpts{bare: true})
	rec := &recorder{}
	list := []StalePod{stale(ns, "web-b"), stale(ns, "debug"), stale(ns, "web-a"), stale(ns, "deleted-already")}

	res, err := Report(ctx, env.Client, rec, list)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ReportResult{Reported: 3, Gone: 1}); res != want {
		t.Fatalf("first Report: %+v, want %+v", res, want)
	}
	a := getPodT(t, ns, "web-a")
	if got := a.Annotations[StaleMTUAnnotation]; got != ownedText {
		t.Errorf("web-a annotated %q, want %q", got, ownedText)
	}
	if a.Annotations["team"] != "payments" {
		t.Errorf("the patch touched other annotations: %v", a.Annotations)
	}
	if !slices.ContainsFunc(a.ManagedFields, func(m metav1.ManagedFieldsEntry) bool { return m.Manager == fieldManager }) {
		t.Errorf("no field manager %s on the pod: %v", fieldManager, a.ManagedFields)
	}
	if got := getPodT(t, ns, "debug").Annotations[StaleMTUAnnotation]; !strings.HasSuffix(got, "delete and recreate it yourself") {
		t.Errorf("the bare pod is told %q, not to recreate it itself", got)
	}
	versions := map[string]string{}
	for _, name := range []string{"web-a", "web-b", "debug"} {
		pod := getPodT(t, ns, name)
		versions[name] = pod.ResourceVersion
		e := waitForEvents(t, pod, 1, corev1.EventTypeWarning, ReasonStaleMTU)[0]
		if e.Action != ActionReport || !strings.Contains(e.Note, "1450 (expected 1500)") || !strings.Contains(e.Note, "delete") {
			t.Errorf("Event on %s: action %q, note %q", name, e.Action, e.Note)
		}
	}

	calls := rec.count()
	res, err = Report(ctx, env.Client, rec, list)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ReportResult{AlreadyReported: 3, Gone: 1}); res != want {
		t.Fatalf("second Report: %+v, want %+v", res, want)
	}
	if rec.count() != calls {
		t.Errorf("the second Report emitted Events: %v", rec.calls[calls:])
	}
	for name, rv := range versions {
		if got := getPodT(t, ns, name).ResourceVersion; got != rv {
			t.Errorf("the second Report wrote pod %s (resourceVersion %s, was %s)", name, got, rv)
		}
	}

	// A new expectation is news: the annotation changes and one more Event says so.
	changed := stale(ns, "web-a")
	changed.ExpectedMTU = 8950
	res, err = Report(ctx, env.Client, rec, []StalePod{changed})
	if err != nil || res != (ReportResult{Reported: 1}) {
		t.Fatalf("Report of a changed expectation: %+v, %v", res, err)
	}
	a = getPodT(t, ns, "web-a")
	if got := a.Annotations[StaleMTUAnnotation]; !strings.HasPrefix(got, "1450 (expected 8950)") {
		t.Errorf("web-a annotated %q after the expectation changed", got)
	}
	waitForEvents(t, a, 2, corev1.EventTypeWarning, ReasonStaleMTU)
}

func TestClearReportRemovesOnlyTheAnnotation(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createPod(t, ns, "web-a", podOpts{annotations: map[string]string{"team": "payments"}})
	createPod(t, ns, "web-b", podOpts{})
	if _, err := Report(ctx, env.Client, nil, []StalePod{stale(ns, "web-a"), stale(ns, "web-b")}); err != nil {
		t.Fatal(err)
	}

	if err := ClearReport(ctx, env.Client, ns, "web-a"); err != nil {
		t.Fatal(err)
	}
	a := getPodT(t, ns, "web-a")
	if _, ok := a.Annotations[StaleMTUAnnotation]; ok || a.Annotations["team"] != "payments" {
		t.Errorf("annotations after ClearReport: %v", a.Annotations)
	}
	if got := getPodT(t, ns, "web-b").Annotations[StaleMTUAnnotation]; got != ownedText {
		t.Errorf("ClearReport of web-a changed web-b: %q", got)
	}
	if err := ClearReport(ctx, env.Client, ns, "web-a"); err != nil {
		t.Fatal(err)
	}
	if got := getPodT(t, ns, "web-a").ResourceVersion; got != a.ResourceVersion {
		t.Errorf("ClearReport of a pod without the annotation wrote it")
	}
	if err := ClearReport(ctx, env.Client, ns, "deleted-already"); err != nil {
		t.Errorf("ClearReport of a missing pod: %v", err)
	}
}

func TestEvictNeverEvictsBarePods(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createPod(t, ns, "web-1", podOpts{})
	createPod(t, ns, "debug", podOpts{bare: true})
	rec := &recorder{}
	list := []StalePod{stale(ns, "debug"), stale(ns, "web-1")}

	res, err := Evict(ctx, env.Client, rec, list, 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := (EvictResult{Evicted: 1, Bare: 1, RetryAfter: DefaultRetryAfter}); !equal(res, want) {
		t.Fatalf("Evict: %+v, want %+v", res, want)
	}
	if got := terminating(t, ns, "web-1", "debug"); !slices.Equal(got, []string{"web-1"}) {
		t.Errorf("terminating: %v, want only web-1", got)
	}
	debug := getPodT(t, ns, "debug")
	if got := debug.Annotations[StaleMTUAnnotation]; !strings.HasSuffix(got, "no controller owns the pod: delete and recreate it yourself") {
		t.Errorf("the bare pod is annotated %q", got)
	}
	waitForEvents(t, debug, 1, corev1.EventTypeWarning, ReasonStaleMTU)
	evicted := waitForEvents(t, getPodT(t, ns, "web-1"), 1, corev1.EventTypeNormal, ReasonStaleMTUEvicted)[0]
	if evicted.Action != ActionEvict || !strings.Contains(evicted.Note, "ReplicaSet web") || !strings.Contains(evicted.Note, "1450 (expected 1500)") {
		t.Errorf("eviction Event: action %q, note %q", evicted.Action, evicted.Note)
	}

	// Again: web-1 is in flight, debug reported already.
	calls := rec.count()
	res, err = Evict(ctx, env.Client, rec, list, 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := (EvictResult{InFlight: 1, Bare: 1, RetryAfter: DefaultRetryAfter}); !equal(res, want) {
		t.Fatalf("second Evict: %+v, want %+v", res, want)
	}
	if rec.count() != calls {
		t.Errorf("the second Evict emitted Events: %v", rec.calls[calls:])
	}
	if getPodT(t, ns, "debug").ResourceVersion != debug.ResourceVersion {
		t.Errorf("the second Evict wrote the bare pod")
	}
}

func TestEvictStartsNoMoreThanTheLimit(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	names := []string{"web-0", "web-1", "web-2", "web-3", "web-4", "web-5"}
	var list []StalePod
	for _, n := range names {
		createPod(t, ns, n, podOpts{})
		list = append([]StalePod{stale(ns, n)}, list...) // reversed: the order must not matter
	}
	startTerminating(t, ns, "web-4")

	res, err := Evict(ctx, env.Client, nil, list, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := (EvictResult{InFlight: 1, Evicted: 2, Waiting: 3, RetryAfter: DefaultRetryAfter}); !equal(res, want) {
		t.Fatalf("Evict: %+v, want %+v", res, want)
	}
	if got, want := terminating(t, ns, names...), []string{"web-0", "web-1", "web-4"}; !slices.Equal(got, want) {
		t.Fatalf("terminating: %v, want %v (the first in name order, and the one already going)", got, want)
	}

	// Nothing finished: nothing more starts.
	res, err = Evict(ctx, env.Client, nil, list, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := (EvictResult{InFlight: 3, Waiting: 3, RetryAfter: DefaultRetryAfter}); !equal(res, want) {
		t.Fatalf("Evict while the limit is reached: %+v, want %+v", res, want)
	}

	// Two finish: two more start.
	finishTerminating(t, ns, "web-0")
	finishTerminating(t, ns, "web-4")
	res, err = Evict(ctx, env.Client, nil, list, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := (EvictResult{Gone: 2, InFlight: 1, Evicted: 2, Waiting: 1, RetryAfter: DefaultRetryAfter}); !equal(res, want) {
		t.Fatalf("Evict after two finished: %+v, want %+v", res, want)
	}
	if got, want := terminating(t, ns, "web-1", "web-2", "web-3", "web-5"), []string{"web-1", "web-2", "web-3"}; !slices.Equal(got, want) {
		t.Fatalf("terminating: %v, want %v", got, want)
	}
}

func TestEvictRespectsPodDisruptionBudgets(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	db := map[string]string{"app": "db"}
	createPod(t, ns, "db-0", podOpts{labels: db, ownerKind: "StatefulSet"})
	createPod(t, ns, "db-1", podOpts{labels: db, ownerKind: "StatefulSet"})
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &intstr.IntOrString{Type: intstr.Int, IntVal: 2},
			Selector:     &metav1.LabelSelector{MatchLabels: db},
		},
	}
	if err := env.Client.Create(ctx, pdb); err != nil {
		t.Fatal(err)
	}
	setDisruptionsAllowed(t, pdb, 0)
	rec := &recorder{}
	list := []StalePod{stale(ns, "db-0"), stale(ns, "db-1")}

	res, err := Evict(ctx, env.Client, rec, list, 5)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocked != 2 || res.Evicted != 0 || len(res.Failed) != 0 || res.RetryAfter <= 0 {
		t.Fatalf("Evict against a budget allowing no disruption: %+v, want 2 blocked and a RetryAfter", res)
	}
	if got := terminating(t, ns, "db-0", "db-1"); len(got) != 0 {
		t.Fatalf("terminating despite the budget: %v", got)
	}
	blocked := waitForEvents(t, getPodT(t, ns, "db-0"), 1, corev1.EventTypeWarning, ReasonEvictionBlocked)[0]
	if !strings.Contains(blocked.Note, "disruption budget db") {
		t.Errorf("the blocked Event does not name the budget: %q", blocked.Note)
	}

	setDisruptionsAllowed(t, pdb, 1)
	res, err = Evict(ctx, env.Client, rec, list, 5)
	if err != nil {
		t.Fatal(err)
	}
	if res.Evicted != 1 || res.Blocked != 1 || len(res.Failed) != 0 || res.RetryAfter <= 0 {
		t.Fatalf("Evict against a budget allowing one disruption: %+v, want 1 evicted and 1 blocked", res)
	}
	if got := terminating(t, ns, "db-0", "db-1"); !slices.Equal(got, []string{"db-0"}) {
		t.Fatalf("terminating: %v, want db-0", got)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pdb), pdb); err != nil {
		t.Fatal(err)
	}
	if pdb.Status.DisruptionsAllowed != 0 {
		t.Errorf("the budget allows %d more disruptions after the eviction", pdb.Status.DisruptionsAllowed)
	}
}

// setDisruptionsAllowed writes the budget's status as the disruption controller would (envtest
// runs none).
func setDisruptionsAllowed(t *testing.T, pdb *policyv1.PodDisruptionBudget, allowed int32) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pdb), pdb); err != nil {
		t.Fatal(err)
	}
	pdb.Status.ObservedGeneration = pdb.Generation
	pdb.Status.DisruptionsAllowed = allowed
	pdb.Status.CurrentHealthy = 2 + allowed
	pdb.Status.DesiredHealthy = 2
	pdb.Status.ExpectedPods = 2 + allowed
	if err := env.Client.Status().Update(ctx, pdb); err != nil {
		t.Fatal(err)
	}
}

func TestEvictCountsVanishedPodsAndCollectsFailures(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createPod(t, ns, "web-0", podOpts{})
	createPod(t, ns, "web-1", podOpts{})
	createPod(t, ns, "shared", podOpts{labels: map[string]string{"app": "shared"}})
	finishTerminating(t, ns, "web-0")
	// Two budgets on one pod: the Eviction API refuses with an internal error.
	for _, name := range []string{"one", "two"} {
		pdb := &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: policyv1.PodDisruptionBudgetSpec{
				MaxUnavailable: &intstr.IntOrString{Type: intstr.Int, IntVal: 1},
				Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shared"}},
			},
		}
		if err := env.Client.Create(ctx, pdb); err != nil {
			t.Fatal(err)
		}
	}

	res, err := Evict(ctx, env.Client, nil, []StalePod{stale(ns, "web-0"), stale(ns, "shared"), stale(ns, "web-1"), stale(ns, "never-was")}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if res.Gone != 2 || res.Evicted != 1 || len(res.Failed) != 1 || !strings.HasPrefix(res.Failed[0], ns+"/shared: ") {
		t.Fatalf("Evict: %+v, want web-0 and never-was gone, web-1 evicted, shared failed", res)
	}
	if got := terminating(t, ns, "web-1", "shared"); !slices.Equal(got, []string{"web-1"}) {
		t.Errorf("terminating: %v, want web-1", got)
	}
}

// equal compares results, Failed included.
func equal(a, b EvictResult) bool {
	return slices.Equal(a.Failed, b.Failed) &&
		a.Evicted == b.Evicted && a.InFlight == b.InFlight && a.Blocked == b.Blocked && a.Bare == b.Bare &&
		a.Gone == b.Gone && a.Waiting == b.Waiting && a.RetryAfter == b.RetryAfter
}
