package remediate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DefaultRetryAfter is how soon Evict asks to be called again when pods are still
// terminating, or blocked without the API server suggesting a delay.
const DefaultRetryAfter = 10 * time.Second

// EvictResult counts what Evict did. Every listed pod is counted once, in one of Evicted,
// InFlight, Blocked, Bare, Gone, Waiting or Failed.
type EvictResult struct {
	// Evicted pods were evicted by this call.
	Evicted int
	// InFlight pods were terminating already (they have a deletionTimestamp); they count
	// against the limit.
	InFlight int
	// Blocked pods' evictions were refused for now (429), typically by a
	// PodDisruptionBudget.
	Blocked int
	// Bare pods have no controller to recreate them: they are reported, never evicted.
	Bare int
	// Gone pods no longer exist (or were replaced by a pod of the same name).
	Gone int
	// Waiting pods are left for a later call because the limit was reached.
	Waiting int
	// Failed lists "namespace/name: error" for pods that failed otherwise.
	Failed []string
	// RetryAfter is when to call again: the API server's suggestion when it made one,
	// otherwise DefaultRetryAfter while anything is left to do; zero when nothing is.
	RetryAfter time.Duration
}

// Evict evicts the pods that a controller owns through the Eviction API, so that
// PodDisruptionBudgets apply, with at most limit of the listed pods terminating at once:
// listed pods that are terminating already count against limit, and only the rest of it is
// started. Pods are taken in namespace/name order, so repeated calls make steady progress.
// Pods without a controller are reported as Report does, never evicted. An error on one pod
// is recorded in Failed and the others continue; the error returned is the context's.
func Evict(ctx context.Context, c client.Client, rec events.EventRecorder, pods []StalePod, limit int) (EvictResult, error) {
	var res EvictResult
	fail := func(p StalePod, err error) { res.Failed = append(res.Failed, fmt.Sprintf("%s: %v", p, err)) }

	// Gather: which listed pods still exist, which are terminating, which have a controller.
	type candidate struct {
		p   StalePod
		pod *corev1.Pod
	}
	var candidates []candidate
	for _, p := range inOrder(pods) {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		pod, err := getPod(ctx, c, p)
		switch {
		case apierrors.IsNotFound(err):
			res.Gone++
		case err != nil:
			fail(p, err)
		case pod.DeletionTimestamp != nil:
			res.InFlight++
		case metav1.GetControllerOf(pod) == nil:
			if _, err := report(ctx, c, rec, pod, p); apierrors.IsNotFound(err) {
				res.Gone++
			} else if err != nil {
				fail(p, err)
			} else {
				res.Bare++
			}
		default:
			candidates = append(candidates, candidate{p, pod})
		}
	}

	// Evict as many as the limit leaves room for.
	budget := limit - res.InFlight
	var suggested time.Duration
	for _, cand := range candidates {
		if res.Evicted >= budget {
			res.Waiting++
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		err := evict(ctx, c, cand.pod)
		switch {
		case err == nil:
			res.Evicted++
			if rec != nil {
				rec.Eventf(cand.pod, nil, corev1.EventTypeNormal, ReasonStaleMTUEvicted, ActionEvict,
					"Evicted to renew the stale interface MTU %s; %s",
					mtuText(cand.p), recreatedBy(cand.pod))
			}
		case apierrors.IsNotFound(err), apierrors.IsConflict(err) && replaced(ctx, c, cand.pod):
			res.Gone++
		case apierrors.IsTooManyRequests(err):
			res.Blocked++
			if s, ok := apierrors.SuggestsClientDelay(err); ok && s > 0 {
				suggested = max(suggested, time.Duration(s)*time.Second)
			}
			if rec != nil {
				rec.Eventf(cand.pod, nil, corev1.EventTypeWarning, ReasonEvictionBlocked, ActionEvict,
					"Eviction to renew the stale interface MTU %d (expected %d) refused for now, will retry: %s",
					cand.p.ObservedMTU, cand.p.ExpectedMTU, truncate(blockedBecause(err), maxReasonBytes))
			}
		default:
			fail(cand.p, err)
		}
	}

	switch {
	case suggested > 0:
		res.RetryAfter = suggested
	case res.Evicted+res.InFlight+res.Blocked+res.Waiting+len(res.Failed) > 0:
		res.RetryAfter = DefaultRetryAfter
	}
	return res, nil
}

// evict asks the API server to evict this very pod (not a later one of the same name), with
// the pod's own termination grace period.
func evict(ctx context.Context, c client.Client, pod *corev1.Pod) error {
	return c.SubResource("eviction").Create(ctx, pod, &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(pod.UID))},
	})
}

// replaced reports whether pod no longer exists as the object it was: after a conflict, the
// UID precondition may be what failed.
func replaced(ctx context.Context, c client.Client, pod *corev1.Pod) bool {
	now := &corev1.Pod{}
	err := c.Get(ctx, client.ObjectKeyFromObject(pod), now)
	return apierrors.IsNotFound(err) || (err == nil && now.UID != pod.UID)
}

// recreatedBy names the controller that recreates pod.
func recreatedBy(pod *corev1.Pod) string {
	owner := metav1.GetControllerOf(pod)
	return fmt.Sprintf("its controller %s %s recreates it with the new MTU", owner.Kind, owner.Name)
}

// blockedBecause is the API server's explanation of a refused eviction, with the
// PodDisruptionBudget's own message when it gives one.
func blockedBecause(err error) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return err.Error()
	}
	parts := []string{strings.TrimSuffix(status.Status().Message, ".")}
	if d := status.Status().Details; d != nil {
		for _, cause := range d.Causes {
			if cause.Message != "" {
				parts = append(parts, strings.TrimSuffix(cause.Message, "."))
			}
		}
	}
	return strings.Join(parts, ": ")
}
