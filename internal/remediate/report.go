package remediate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ReportResult counts what Report did.
type ReportResult struct {
	// Reported pods were annotated now, with a Warning Event.
	Reported int
	// AlreadyReported pods carried the same annotation already: nothing was written.
	AlreadyReported int
	// Gone pods no longer exist.
	Gone int
}

// Report annotates each pod with StaleMTUAnnotation, saying what its MTU is, what it should
// be and how to fix it, and emits a Warning Event (reason StaleMTU) on it. A pod already
// carrying the same text gets neither a patch nor a new Event; a pod that no longer exists is
// counted as Gone. An error on one pod does not stop the others; the errors are returned
// together.
func Report(ctx context.Context, c client.Client, rec events.EventRecorder, pods []StalePod) (ReportResult, error) {
	var res ReportResult
	var errs []error
	for _, p := range inOrder(pods) {
		pod, err := getPod(ctx, c, p)
		if err == nil {
			var done reported
			done, err = report(ctx, c, rec, pod, p)
			switch done {
			case reportedNow:
				res.Reported++
			case reportedBefore:
				res.AlreadyReported++
			}
		}
		switch {
		case apierrors.IsNotFound(err):
			res.Gone++
		case err != nil:
			errs = append(errs, fmt.Errorf("reporting pod %s: %w", p, err))
		}
	}
	return res, errors.Join(errs...)
}

// ClearReport removes StaleMTUAnnotation from a pod whose MTU is current again. A pod without
// the annotation, or one that no longer exists, is left alone.
func ClearReport(ctx context.Context, c client.Client, namespace, name string) error {
	pod, err := getPod(ctx, c, StalePod{Namespace: namespace, Name: name})
	if err != nil {
		return client.IgnoreNotFound(err)
	}
	if _, ok := pod.Annotations[StaleMTUAnnotation]; !ok {
		return nil
	}
	return client.IgnoreNotFound(patchAnnotation(ctx, c, pod, nil))
}

type reported int

const (
	notReported reported = iota
	reportedNow
	reportedBefore
)

// report annotates pod, which p names, and emits the Event, unless the annotation says so
// already.
func report(ctx context.Context, c client.Client, rec events.EventRecorder, pod *corev1.Pod, p StalePod) (reported, error) {
	text := staleText(p, fixFor(pod))
	if pod.Annotations[StaleMTUAnnotation] == text {
		return reportedBefore, nil
	}
	if err := patchAnnotation(ctx, c, pod, &text); err != nil {
		return notReported, err
	}
	if rec != nil {
		rec.Eventf(pod, nil, corev1.EventTypeWarning, ReasonStaleMTU, ActionReport, "Stale interface MTU %s", text)
	}
	return reportedNow, nil
}

// patchAnnotation sets (or, with nil, removes) StaleMTUAnnotation and nothing else, with a
// JSON merge patch, and updates pod from the response.
func patchAnnotation(ctx context.Context, c client.Client, pod *corev1.Pod, value *string) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]*string{StaleMTUAnnotation: value}},
	})
	if err != nil {
		return err
	}
	return c.Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(fieldManager))
}

func getPod(ctx context.Context, c client.Client, p StalePod) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: p.Name}, pod); err != nil {
		return nil, err
	}
	return pod, nil
}
