package pathmtu

import (
	"testing"
)

func TestTargets(t *testing.T) {
	for _, tt := range []struct {
		s       string
		address string
		mtu     int
		err     bool
	}{
		{"192.168.100.11/9000", "192.168.100.11", 9000, false},
		{"fd00::1/1500", "fd00::1", 1500, false},
		{"192.168.100.11", "", 0, true},
		{"192.168.100.11/", "", 0, true},
		{"192.168.100.11/67", "", 0, true},
		{"192.168.100.11/65536", "", 0, true},
		{"node-a/9000", "", 0, true},
	} {
		a, m, err := ParseTarget(tt.s)
		if (err != nil) != tt.err {
			t.Errorf("ParseTarget(%q) error %v, want error %t", tt.s, err, tt.err)
			continue
		}
		if err == nil {
			if a.String() != tt.address || m != tt.mtu {
				t.Errorf("ParseTarget(%q) = %s, %d", tt.s, a, m)
			}
			if back := FormatTarget(a, m); back != tt.s {
				t.Errorf("FormatTarget(ParseTarget(%q)) = %q", tt.s, back)
			}
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	f.Add("192.168.100.11/9000")
	f.Add("fd00::1/1500")
	f.Fuzz(func(t *testing.T, s string) {
		a, m, err := ParseTarget(s)
		if err != nil {
			return
		}
		if a2, m2, err := ParseTarget(FormatTarget(a, m)); err != nil || a2 != a || m2 != m {
			t.Errorf("%q: %s/%d does not read back: %s/%d %v", s, a, m, a2, m2, err)
		}
	})
}
