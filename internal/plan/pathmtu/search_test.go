package pathmtu

import (
	"testing"
)

// path is a path for the search to measure: packets up to carries cross; a larger one meets,
// when reportsAt is set and the packet is larger than it, a router that reports reportsAt, and
// otherwise vanishes (a black hole: a switch port that drops what it cannot carry).
type path struct {
	carries, reportsAt int
}

func (p path) probe(size int) (crossed bool, reported int) {
	if size <= p.carries {
		return true, 0
	}
	if p.reportsAt != 0 && size > p.reportsAt {
		return false, p.reportsAt
	}
	return false, 0
}

// measure runs a search over p and returns its result, the sizes it probed, and how many of
// them vanished (each costs a probe's whole timeout).
func measure(t testing.TB, expected, floor int, p path) (mtu int, exact bool, probed []int, silent int) {
	t.Helper()
	s := New(expected, floor)
	for {
		size, ok := s.Next()
		if !ok {
			break
		}
		if len(probed) > MaxProbes(expected, floor) {
			t.Fatalf("search of %d (floor %d) over %+v does not end: probed %v", expected, floor, p, probed)
		}
		probed = append(probed, size)
		crossed, reported := p.probe(size)
		if !crossed && reported == 0 {
			silent++
		}
		s.Record(size, crossed, reported)
	}
	mtu, exact = s.Result()
	if s.Probes() != len(probed) {
		t.Errorf("Probes() = %d, probed %d", s.Probes(), len(probed))
	}
	return mtu, exact, probed, silent
}

func TestSearch(t *testing.T) {
	tests := []struct {
		name              string
		expected, floor   int
		path              path
		want              int
		exact             bool
		maxProbes, silent int
	}{
		{"the path carries what the NICs do: one probe", 9000, 1280, path{carries: 9000}, 9000, true, 1, 0},
		{"more than expected: still one probe", 1500, 1280, path{carries: 9000}, 1500, true, 1, 0},
		{"a router reports 1500: one more probe confirms it", 9000, 1280, path{carries: 1500, reportsAt: 1500}, 1500, true, 2, 0},
		{"a switch port at 1500 says nothing: bisected", 9000, 1280, path{carries: 1500}, 1500, true, MaxProbes(9000, 1280), 14},
		{"a router reports 4000, a black hole beyond carries 1500", 9000, 1280, path{carries: 1500, reportsAt: 4000}, 1500, true, MaxProbes(9000, 1280), 13},
		{"nothing crosses: the peer is down, two probes", 9000, 1280, path{}, 0, false, 2, 2},
		{"less than the floor crosses", 9000, 1280, path{carries: 1000}, 0, false, 2, 2},
		{"exactly the floor crosses", 9000, 1280, path{carries: 1280}, 1280, true, MaxProbes(9000, 1280), 14},
		{"one byte short of expected", 9000, 1280, path{carries: 8999}, 8999, true, MaxProbes(9000, 1280), 1},
		{"a report below the floor is no hint", 9000, 1280, path{carries: 576, reportsAt: 576}, 0, false, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, exact, probed, silent := measure(t, tt.expected, tt.floor, tt.path)
			if got != tt.want || exact != tt.exact {
				t.Errorf("measured %d (exact %t), want %d (exact %t); probed %v", got, exact, tt.want, tt.exact, probed)
			}
			if len(probed) > tt.maxProbes {
				t.Errorf("probed %d sizes %v, want at most %d", len(probed), probed, tt.maxProbes)
			}
			if silent > tt.silent {
				t.Errorf("%d probes vanished (each a whole timeout), want at most %d; probed %v", silent, tt.silent, probed)
			}
		})
	}
}

func TestMaxProbes(t *testing.T) {
	for _, tt := range []struct{ expected, floor, want int }{
		{9000, 1280, 3 + 13}, // 7720 sizes between: 2^13 = 8192
		{1500, 1280, 3 + 8},  // 220: 2^8 = 256
		{1500, 1500, 3},
		{1280, 1500, 3}, // expected below the floor: the floor is what is expected
	} {
		if got := MaxProbes(tt.expected, tt.floor); got != tt.want {
			t.Errorf("MaxProbes(%d, %d) = %d, want %d", tt.expected, tt.floor, got, tt.want)
		}
	}
}

// FuzzSearch: over any path that does not change while measured, the search ends within
// MaxProbes and measures exactly what the path carries, clamped to [floor, expected] (0 below
// the floor).
func FuzzSearch(f *testing.F) {
	f.Add(9000, 1280, 1500, 0)
	f.Add(9000, 1280, 1500, 4000)
	f.Add(1500, 1280, 1400, 1400)
	f.Add(9000, 68, 0, 0)
	f.Fuzz(func(t *testing.T, expected, floor, carries, reportsAt int) {
		if expected < 68 || expected > 65535 || floor < 1 || floor > 65535 || carries < 0 || carries > 70000 {
			return
		}
		// A hop that reports reportsAt drops everything larger, so the path carries no more.
		if reportsAt != 0 && (reportsAt < carries || reportsAt > 70000) {
			return
		}
		got, exact, probed, _ := measure(t, expected, floor, path{carries: carries, reportsAt: reportsAt})
		want := min(carries, max(expected, floor))
		if carries < floor {
			want = 0
		}
		if got != want || exact != (want != 0) {
			t.Errorf("expected %d, floor %d, path %d (reports %d): measured %d (exact %t), want %d; probed %v",
				expected, floor, carries, reportsAt, got, exact, want, probed)
		}
	})
}

// TestSearchEndsWhateverThePathSays: paths that contradict themselves (a link flapping while
// measured) or a hop that reports one byte less than every probe (a liar, or a chain of ever
// smaller hops) still end the search within MaxProbes.
func TestSearchEndsWhateverThePathSays(t *testing.T) {
	for name, answer := range map[string]func(probe, size int) (bool, int){
		"flapping":            func(probe, size int) (bool, int) { return probe%2 == 1 && size != 9000, 0 },
		"one byte less, each": func(_, size int) (bool, int) { return false, size - 1 },
	} {
		t.Run(name, func(t *testing.T) {
			s := New(9000, 1280)
			probes := 0
			for {
				size, ok := s.Next()
				if !ok {
					break
				}
				probes++
				if probes > MaxProbes(9000, 1280) {
					t.Fatalf("still probing after %d probes", probes)
				}
				crossed, reported := answer(probes, size)
				s.Record(size, crossed, reported)
			}
			if mtu, _ := s.Result(); mtu > 9000 {
				t.Errorf("measured %d, more than expected", mtu)
			}
		})
	}
}
