package pathmtu

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// FormatTarget writes a node as the probing schedule lists it: "address/mtu".
func FormatTarget(address netip.Addr, mtu int) string {
	return address.String() + "/" + strconv.Itoa(mtu)
}

// ParseTarget reads a node of the probing schedule.
func ParseTarget(s string) (netip.Addr, int, error) {
	address, mtu, ok := strings.Cut(s, "/")
	if !ok {
		return netip.Addr{}, 0, fmt.Errorf("probe target %q: want address/mtu", s)
	}
	a, err := netip.ParseAddr(address)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("probe target %q: %w", s, err)
	}
	m, err := strconv.Atoi(mtu)
	if err != nil || m < 68 || m > 65535 {
		return netip.Addr{}, 0, fmt.Errorf("probe target %q: the MTU must be a number from 68 to 65535", s)
	}
	return a, m, nil
}
