package probe

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/mtu-operator/mtu-operator/internal/plan/pathmtu"
)

// PathMeasurement is what PathMTU found on a path.
type PathMeasurement struct {
	// MTU is the largest IP packet seen to cross with fragmentation forbidden; 0 when not even
	// the floor did.
	MTU int
	// Exact: one byte more was seen not to cross (or MTU is the size expected).
	Exact bool
	// Probes is how many sizes were probed.
	Probes int
}

// PathMTU measures the largest IP packet that crosses to target with fragmentation forbidden,
// between floor and expected: ICMPDF probes of the sizes pathmtu.Search chooses, each given
// timeout (a black hole answers nothing, so each size that fails there costs all of it; a
// router's report ends a probe at once). It returns an error only when a probe could not be
// sent at all; a path that carries less is a measurement, not an error.
func PathMTU(ctx context.Context, target netip.Addr, expected, floor int, timeout time.Duration) (PathMeasurement, error) {
	search := pathmtu.New(expected, floor)
	for {
		size, ok := search.Next()
		if !ok {
			break
		}
		err := ICMPDF(target, size, timeout).Probe(ctx)
		if errors.Is(err, ErrCannotProbe) {
			return PathMeasurement{}, err
		}
		if ctx.Err() != nil {
			return PathMeasurement{}, ctx.Err()
		}
		var tooBig *TooBigError
		reported := 0
		if errors.As(err, &tooBig) {
			reported = tooBig.MTU
		}
		search.Record(size, err == nil, reported)
	}
	mtu, exact := search.Result()
	return PathMeasurement{MTU: mtu, Exact: exact, Probes: search.Probes()}, nil
}
