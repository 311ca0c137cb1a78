package remediate

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/mtu-operator/mtu-operator/internal/kubescheme"
)

func TestInOrderSortsAndDropsRepeats(t *testing.T) {
	got := inOrder([]StalePod{
		{Namespace: "b", Name: "a", ObservedMTU: 1},
		{Namespace: "a", Name: "z"},
		{Namespace: "a", Name: "b", ObservedMTU: 2},
		{Namespace: "a", Name: "b", ObservedMTU: 3},
	})
	want := []StalePod{{Namespace: "a", Name: "b", ObservedMTU: 2}, {Namespace: "a", Name: "z"}, {Namespace: "b", Name: "a", ObservedMTU: 1}}
	if !slices.Equal(got, want) {
		t.Errorf("inOrder: %v, want %v", got, want)
	}
}

func TestStaleText(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  StalePod
		want string
	}{
		{"with a reason", StalePod{ObservedMTU: 1450, ExpectedMTU: 1500, Reason: "1450 predates the switch from VXLAN to None"},
			"1450 (expected 1500): 1450 predates the switch from VXLAN to None; " + fixOwned},
		{"without", StalePod{ObservedMTU: 1500, ExpectedMTU: 8950}, "1500 (expected 8950); " + fixOwned},
		{"long reason cut at a character", StalePod{ObservedMTU: 1, ExpectedMTU: 2, Reason: "x" + strings.Repeat("é", maxReasonBytes)},
			"1 (expected 2): x" + strings.Repeat("é", maxReasonBytes/2-1) + "; " + fixOwned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := staleText(tc.pod, fixOwned); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestEvictHonoursTheServersDelay checks RetryAfter against refusals envtest cannot produce
// quickly (a 429 with Retry-After makes client-go wait and retry by itself).
func TestEvictHonoursTheServersDelay(t *testing.T) {
	scheme, err := kubescheme.New()
	if err != nil {
		t.Fatal(err)
	}
	controller := true
	owned := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web", UID: "u", Controller: &controller}}
	for _, tc := range []struct {
		name    string
		refusal map[string]error
		want    time.Duration
	}{
		{"evicted, to see them go", map[string]error{}, DefaultRetryAfter},
		{"the server's delay", map[string]error{"a": apierrors.NewTooManyRequests("budget", 30)}, 30 * time.Second},
		{"the longest of them", map[string]error{"a": apierrors.NewTooManyRequests("budget", 30), "b": apierrors.NewTooManyRequests("budget", 45)}, 45 * time.Second},
		{"a polite default", map[string]error{"a": apierrors.NewTooManyRequests("budget", 0)}, DefaultRetryAfter},
		{"after a failure", map[string]error{"a": errors.New("boom")}, DefaultRetryAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var objs []client.Object
			var list []StalePod
			for _, name := range []string{"a", "b"} {
				objs = append(objs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, OwnerReferences: owned}})
				list = append(list, StalePod{Namespace: "ns", Name: name})
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
				SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj, subObj client.Object, opts ...client.SubResourceCreateOption) error {
					if _, ok := subObj.(*policyv1.Eviction); !ok || sub != "eviction" {
						t.Errorf("created %T on %s, not an Eviction", subObj, sub)
					}
					if err := tc.refusal[obj.GetName()]; err != nil {
						return err
					}
					// Evicted: the pod goes at once, so that nothing is left in flight.
					return c.Delete(ctx, obj)
				},
			}).Build()
			res, err := Evict(context.Background(), c, nil, list, 5)
			if err != nil {
				t.Fatal(err)
			}
			if res.RetryAfter != tc.want {
				t.Errorf("RetryAfter %s, want %s (%+v)", res.RetryAfter, tc.want, res)
			}
			// Once the pods are gone there is nothing to come back for.
			for _, o := range objs {
				_ = c.Delete(context.Background(), o)
			}
			if res, err := Evict(context.Background(), c, nil, list, 5); err != nil || res.RetryAfter != 0 || res.Gone != 2 {
				t.Errorf("Evict of pods gone: %+v, %v; want RetryAfter 0", res, err)
			}
		})
	}
}

func TestBlockedBecauseQuotesTheBudget(t *testing.T) {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
		Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget db needs 2 healthy pods and has 2 currently",
	})
	want := "Cannot evict pod as it would violate the pod's disruption budget: The disruption budget db needs 2 healthy pods and has 2 currently"
	if got := blockedBecause(err); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
