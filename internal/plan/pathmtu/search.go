// Package pathmtu decides which sizes an agent probes to measure a path's MTU: the largest IP
// packet that crosses to a peer with fragmentation forbidden.
//
// A black hole (a switch port at 1500 between two 9000-byte NICs) drops what it cannot carry
// and says nothing, so each failed probe costs its whole timeout; a router that cannot forward
// says "fragmentation needed" / "packet too big" with the MTU it can carry, at once. The search
// therefore probes the expected size first (the common case: it passes, one probe), then uses
// a reported MTU when one comes (one more probe confirms it), and otherwise checks the floor
// (is the peer reachable at all?) before it bisects. A report is believed for the sizes above
// what it names (RFC 1191), but the size it names is probed before it counts: a later hop may
// carry less.
package pathmtu

// Search is one measurement. Its zero value is not usable; use New.
type Search struct {
	expected, floor int
	// passed is the largest size seen to cross (0: none yet); failed the smallest seen not to
	// (0: none yet). Every size up to passed crosses, none from failed on.
	passed, failed int
	// hinted is a size a report named, to probe next.
	hinted int
	probes int
}

// New starts a measurement of a path expected to carry expected bytes; sizes below floor are
// not probed (a path that carries less is reported as carrying less than floor).
func New(expected, floor int) *Search {
	floor = max(floor, 1)
	return &Search{expected: max(expected, floor), floor: floor}
}

// MaxProbes bounds the probes a search of expected and floor takes on a path that does not
// change meanwhile: the expected size, a reported size, the floor, and a bisection of what
// lies between. A search stops there whatever it saw (a path that flaps).
func MaxProbes(expected, floor int) int {
	n := 3
	for span := max(expected, floor) - max(floor, 1); span > 1; span = (span + 1) / 2 {
		n++
	}
	return n
}

// Next returns the size to probe next, or false when the search is over.
func (s *Search) Next() (int, bool) {
	switch {
	case s.probes == 0:
		return s.expected, true
	case s.probes >= MaxProbes(s.expected, s.floor):
		return 0, false
	case s.passed == s.expected:
		return 0, false
	case s.failed != 0 && s.failed <= s.floor:
		// Not even the floor crosses: nothing between to look for.
		return 0, false
	case s.failed != 0 && s.passed == s.failed-1:
		return 0, false
	case s.hinted != 0:
		return s.hinted, true
	case s.passed == 0:
		return s.floor, true
	default:
		return s.passed + (s.failed-s.passed)/2, true
	}
}

// Record records what probing size did: crossed, or not; reported is the MTU a hop named in
// its "fragmentation needed" / "packet too big" report (0: no report, the packet vanished).
func (s *Search) Record(size int, crossed bool, reported int) {
	s.probes++
	if s.hinted == size {
		s.hinted = 0
	}
	if crossed {
		s.passed = max(s.passed, size)
		if s.failed != 0 && s.failed <= s.passed {
			// A path that changed while measured: the newest evidence wins.
			s.failed = 0
		}
		return
	}
	if s.failed == 0 || size < s.failed {
		s.failed = size
	}
	if s.passed >= s.failed {
		s.passed = 0
	}
	// A report names what a hop carries: nothing larger crosses it, and the size it names is
	// probed next, since a later hop may carry less. A size it names that is no smaller than
	// what just failed, or not above what crossed, says nothing new.
	if reported >= s.floor && reported < size && reported > s.passed {
		s.failed = min(s.failed, reported+1)
		s.hinted = reported
	}
}

// Result is what the search found: the largest size seen to cross (0 when not even the floor
// did), and whether it is exact (one byte more was seen not to cross, or it is the expected
// size).
func (s *Search) Result() (mtu int, exact bool) {
	if s.passed == 0 {
		return 0, false
	}
	return s.passed, s.passed == s.expected || s.failed == s.passed+1
}

// Probes is how many probes the search took.
func (s *Search) Probes() int { return s.probes }
