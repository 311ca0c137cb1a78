package traffic

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// SizeReport counts the datagrams of one size. Every datagram sent is, in the end, delivered
// or lost; until then it is in flight.
type SizeReport struct {
	// Size of the IP packets, headers included.
	Size int
	// Sent counts the datagrams the prober tried to send, Delivered those the receiver got.
	Sent, Delivered int
	// Lost counts the datagrams that did not arrive within the grace period, and the sends
	// that failed (which are also counted in Errors).
	Lost int
	// Errors counts the failed sends by kind.
	Errors map[ErrorKind]int
	// FirstLoss and LastLoss are when the first and last lost datagram were sent; zero when
	// none was lost.
	FirstLoss, LastLoss time.Time
}

// InFlight counts the datagrams sent but neither delivered nor lost yet.
func (s SizeReport) InFlight() int { return s.Sent - s.Delivered - s.Lost }

// String is a line like "1450 B: sent 120, lost 3, 3 message too long".
func (s SizeReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d B: sent %d, lost %d", s.Size, s.Sent, s.Lost)
	if n := s.InFlight(); n > 0 {
		fmt.Fprintf(&b, ", %d in flight", n)
	}
	for _, kind := range slices.Sorted(maps.Keys(s.Errors)) {
		fmt.Fprintf(&b, ", %d %s", s.Errors[kind], kind)
	}
	return b.String()
}

// Report counts a prober's datagrams, one entry per size, smallest first.
type Report struct {
	Sizes []SizeReport
}

// Size returns the counts of one size; zero counts if the report has none of it.
func (r Report) Size(size int) SizeReport {
	for _, s := range r.Sizes {
		if s.Size == size {
			return s
		}
	}
	return SizeReport{Size: size}
}

// String prints one line per size.
func (r Report) String() string {
	lines := make([]string, len(r.Sizes))
	for i, s := range r.Sizes {
		lines[i] = s.String()
	}
	return strings.Join(lines, "\n")
}

// ledger does a prober's accounting, apart from any socket so that it can be tested with
// made-up times. Time is divided into windows, numbered from 0, that a datagram belongs to by
// when it was sent: a mark closes one and starts the next, and the window's report is ready
// once its last datagram is delivered or lost.
type ledger struct {
	sizes []int
	// grace is how long a datagram may take to arrive before it counts as lost.
	grace   time.Duration
	pending map[uint64]pendingDatagram
	total   map[int]*SizeReport
	windows map[int]map[int]*SizeReport
	window  int
}

type pendingDatagram struct {
	size   int
	sentAt time.Time
	window int
}

func newLedger(sizes []int, grace time.Duration) *ledger {
	l := &ledger{sizes: sizes, grace: grace, pending: map[uint64]pendingDatagram{}, windows: map[int]map[int]*SizeReport{}}
	l.total = l.newCounts()
	l.windows[0] = l.newCounts()
	return l
}

func (l *ledger) newCounts() map[int]*SizeReport {
	counts := make(map[int]*SizeReport, len(l.sizes))
	for _, size := range l.sizes {
		counts[size] = &SizeReport{Size: size}
	}
	return counts
}

// update applies change to the total counts and to those of window.
func (l *ledger) update(window, size int, change func(*SizeReport)) {
	change(l.total[size])
	if counts, ok := l.windows[window]; ok {
		change(counts[size])
	}
}

// sent records a datagram about to be sent. Record it before sending: it may arrive before
// the send returns.
func (l *ledger) sent(seq uint64, size int, at time.Time) {
	l.pending[seq] = pendingDatagram{size: size, sentAt: at, window: l.window}
	l.update(l.window, size, func(s *SizeReport) { s.Sent++ })
}

// failed records that sending datagram seq failed: it is lost at once.
func (l *ledger) failed(seq uint64, kind ErrorKind) {
	d, ok := l.pending[seq]
	if !ok {
		return
	}
	delete(l.pending, seq)
	l.update(d.window, d.size, func(s *SizeReport) {
		if s.Errors == nil {
			s.Errors = map[ErrorKind]int{}
		}
		s.Errors[kind]++
		lose(s, d.sentAt)
	})
}

// notSent records a datagram that could not even be attempted (no socket): sent and lost.
func (l *ledger) notSent(seq uint64, size int, at time.Time, kind ErrorKind) {
	l.sent(seq, size, at)
	l.failed(seq, kind)
}

func lose(s *SizeReport, sentAt time.Time) {
	s.Lost++
	if s.FirstLoss.IsZero() || sentAt.Before(s.FirstLoss) {
		s.FirstLoss = sentAt
	}
	if sentAt.After(s.LastLoss) {
		s.LastLoss = sentAt
	}
}

// arrived records datagram seq arriving in an IP packet of size bytes. It reports whether it
// counted: a duplicate, a datagram already counted lost, or one of another size does not.
func (l *ledger) arrived(seq uint64, size int) bool {
	d, ok := l.pending[seq]
	if !ok || d.size != size {
		return false
	}
	delete(l.pending, seq)
	l.update(d.window, d.size, func(s *SizeReport) { s.Delivered++ })
	return true
}

// expire counts as lost the datagrams that have not arrived within the grace period by now.
func (l *ledger) expire(now time.Time) {
	for seq, d := range l.pending {
		if now.Sub(d.sentAt) >= l.grace {
			delete(l.pending, seq)
			l.update(d.window, d.size, func(s *SizeReport) { lose(s, d.sentAt) })
		}
	}
}

// closeWindow starts a new window and returns the number of the one it closed.
func (l *ledger) closeWindow() int {
	closed := l.window
	l.window++
	l.windows[l.window] = l.newCounts()
	return closed
}

// settledBy returns when window and all before it will be settled: the moment their last
// datagram in flight expires. It is zero when nothing of theirs is in flight.
func (l *ledger) settledBy(window int) time.Time {
	var latest time.Time
	for _, d := range l.pending {
		if d.window <= window && d.sentAt.After(latest) {
			latest = d.sentAt
		}
	}
	if latest.IsZero() {
		return latest
	}
	return latest.Add(l.grace)
}

// takeWindow returns a closed window's counts and forgets them.
func (l *ledger) takeWindow(window int) Report {
	counts := l.windows[window]
	delete(l.windows, window)
	return reportOf(l.sizes, counts)
}

// report returns the counts since the start.
func (l *ledger) report() Report { return reportOf(l.sizes, l.total) }

func reportOf(sizes []int, counts map[int]*SizeReport) Report {
	r := Report{Sizes: make([]SizeReport, 0, len(sizes))}
	for _, size := range sizes {
		s := SizeReport{Size: size}
		if c, ok := counts[size]; ok {
			s = *c
			s.Errors = maps.Clone(c.Errors)
		}
		r.Sizes = append(r.Sizes, s)
	}
	return r
}
