package plan

import (
	"slices"
	"time"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
	"github.com/mtu-operator/mtu-operator/internal/cni"
)

// MergeReplaced folds newly written changes into the replaced values a policy remembers. Each
// field keeps the value it had before the operator first changed it (what undo restores) and
// the latest value written; a field written back to its original value is forgotten.
func MergeReplaced(known []mtuv1alpha1.ConfigChange, written []mtuv1alpha1.ConfigChange) []mtuv1alpha1.ConfigChange {
	out := append([]mtuv1alpha1.ConfigChange(nil), known...)
	for _, w := range written {
		i := slices.IndexFunc(out, func(c mtuv1alpha1.ConfigChange) bool { return c.Resource == w.Resource && c.Path == w.Path })
		if i < 0 {
			out = append(out, w)
			continue
		}
		out[i].To = w.To
	}
	kept := out[:0]
	for _, c := range out {
		if c.From != c.To {
			kept = append(kept, c)
		}
	}
	return kept
}

// RememberedFor returns, for one resource and one document key prefix, the original values
// of the fields the operator changed, keyed by the editor's own path.
func RememberedFor(known []mtuv1alpha1.ConfigChange, resource, pathPrefix string) cni.Remembered {
	r := cni.Remembered{}
	for _, c := range known {
		if c.Resource == resource && c.From != "" && len(c.Path) > len(pathPrefix) && c.Path[:len(pathPrefix)] == pathPrefix {
			r[c.Path[len(pathPrefix):]] = c.From
		}
	}
	return r
}

// Drift policy: a field someone reverted is re-applied after a delay that doubles with each
// correction (5s, 10s, … up to 10 minutes) and starts over after an hour without drift.
const (
	driftFirstDelay = 5 * time.Second
	driftMaxDelay   = 10 * time.Minute
	driftForgetTime = time.Hour
)

// DriftDelay returns how long to wait before re-applying reverted fields, given the policy's
// earlier corrections; zero means now.
func DriftDelay(corrections int32, last *time.Time, now time.Time) time.Duration {
	if last == nil || corrections == 0 || now.Sub(*last) > driftForgetTime {
		return 0
	}
	delay := driftFirstDelay
	for i := int32(1); i < corrections && delay < driftMaxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, driftMaxDelay)
	if wait := delay - now.Sub(*last); wait > 0 {
		return wait
	}
	return 0
}
