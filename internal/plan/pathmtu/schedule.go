package pathmtu

// Peers returns the k peers node i of n probes in round r: the nodes at offsets
// 1 + (r·k + j) mod (n-1), j < k, round the ring of nodes in a fixed order (by name, say).
//
// Every node uses the same offsets in a round, so each offset is a rotation of the ring: every
// node is probed by exactly k others per round (no node is a hot spot, none is left out), and
// probes k distinct peers (all n-1 when k ≥ n-1). The offsets advance by k each round, so any
// RoundsToCover consecutive rounds probe every ordered pair of nodes at least once: the whole
// pair graph in ceil((n-1)/k) rounds, at n·k probes a round.
func Peers(i, n, r, k int) []int {
	if n < 2 || k < 1 || i < 0 || i >= n {
		return nil
	}
	k = min(k, n-1)
	start := (r%(n-1) + n - 1) % (n - 1) * k
	peers := make([]int, 0, k)
	for j := range k {
		offset := 1 + (start+j)%(n-1)
		peers = append(peers, (i+offset)%n)
	}
	return peers
}

// RoundsToCover is how many consecutive rounds of Peers probe every ordered pair of n nodes,
// k peers a round.
func RoundsToCover(n, k int) int {
	if n < 2 || k < 1 {
		return 0
	}
	k = min(k, n-1)
	return (n - 1 + k - 1) / k
}
