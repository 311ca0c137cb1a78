package pathmtu

import (
	"testing"
)

// checkSchedule checks a schedule of n nodes, k peers a round, from round start: each round
// every node probes k distinct others and is probed by k; RoundsToCover rounds probe every
// ordered pair.
func checkSchedule(t *testing.T, n, k, start int) {
	t.Helper()
	want := min(k, n-1)
	covered := make([]bool, n*n)
	pairs := 0
	for r := start; r < start+RoundsToCover(n, k); r++ {
		probedBy := make([]int, n)
		for i := range n {
			peers := Peers(i, n, r, k)
			if len(peers) != want {
				t.Fatalf("n=%d k=%d round %d: node %d probes %d peers, want %d", n, k, r, i, len(peers), want)
			}
			seen := map[int]bool{}
			for _, p := range peers {
				if p == i || p < 0 || p >= n || seen[p] {
					t.Fatalf("n=%d k=%d round %d: node %d probes %v", n, k, r, i, peers)
				}
				seen[p] = true
				probedBy[p]++
				if !covered[i*n+p] {
					covered[i*n+p] = true
					pairs++
				}
			}
		}
		for p, c := range probedBy {
			if c != want {
				t.Fatalf("n=%d k=%d round %d: node %d probed by %d, want %d", n, k, r, p, c, want)
			}
		}
	}
	if pairs != n*(n-1) {
		t.Errorf("n=%d k=%d from round %d: %d rounds probed %d of %d ordered pairs", n, k, start, RoundsToCover(n, k), pairs, n*(n-1))
	}
}

func TestPeers(t *testing.T) {
	for _, n := range []int{2, 3, 4, 5, 7, 10, 64, 101} {
		for _, k := range []int{1, 2, 3, 5, 200} {
			for _, start := range []int{0, 1, 17, 1 << 40} {
				checkSchedule(t, n, k, start)
			}
		}
	}
	if p := Peers(0, 1, 0, 3); p != nil {
		t.Errorf("one node probes %v, want nobody", p)
	}
}

func TestRoundsToCover(t *testing.T) {
	for _, tt := range []struct{ n, k, want int }{
		{5000, 3, 1667}, // the README's figure
		{3, 3, 1},
		{1, 3, 0},
		{10, 1, 9},
	} {
		if got := RoundsToCover(tt.n, tt.k); got != tt.want {
			t.Errorf("RoundsToCover(%d, %d) = %d, want %d", tt.n, tt.k, got, tt.want)
		}
	}
}

// FuzzPeers: any schedule covers the pair graph in RoundsToCover rounds, evenly.
func FuzzPeers(f *testing.F) {
	f.Add(5000, 3, 12345)
	f.Add(6, 4, -3)
	f.Fuzz(func(t *testing.T, n, k, start int) {
		if n < 2 || n > 300 || k < 1 || k > 400 || start < -1<<50 || start > 1<<50 {
			return
		}
		checkSchedule(t, n, k, start)
	})
}

func BenchmarkPeers(b *testing.B) {
	// One round for one node of 5,000.
	for b.Loop() {
		Peers(1234, 5000, 987654, 3)
	}
}
