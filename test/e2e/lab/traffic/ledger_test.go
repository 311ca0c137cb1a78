package traffic

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestLedgerCountsALossOnlyAfterTheGracePeriod(t *testing.T) {
	l := newLedger([]int{1400}, time.Second)
	l.sent(1, 1400, at(0))
	l.expire(at(999))
	if s := l.report().Size(1400); s.Lost != 0 || s.InFlight() != 1 {
		t.Errorf("before the grace period: %s, want 1 in flight and none lost", s)
	}
	l.expire(at(1000))
	if s := l.report().Size(1400); s.Lost != 1 || s.InFlight() != 0 || !s.FirstLoss.Equal(at(0)) || !s.LastLoss.Equal(at(0)) {
		t.Errorf("after the grace period: %s (losses %s to %s), want 1 lost, sent at %s", s, s.FirstLoss, s.LastLoss, at(0))
	}
	if l.arrived(1, 1400) {
		t.Error("a datagram arriving after it was counted lost was counted again")
	}
}

func TestLedgerCountsEachDatagramOnce(t *testing.T) {
	tests := []struct {
		name      string
		seq       uint64
		size      int
		delivered int
	}{
		{"ours", 1, 1400, 1},
		{"another run's or never sent", 2, 1400, 0},
		{"of another size", 1, 1300, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger([]int{1400}, time.Second)
			l.sent(1, 1400, at(0))
			l.arrived(tt.seq, tt.size)
			l.arrived(tt.seq, tt.size) // a duplicate
			if s := l.report().Size(1400); s.Delivered != tt.delivered || s.Sent != 1 {
				t.Errorf("%s, want sent 1, delivered %d", s, tt.delivered)
			}
		})
	}
}

func TestLedgerCountsAFailedSendAsLostAtOnce(t *testing.T) {
	l := newLedger([]int{1400, 1500}, time.Second)
	l.sent(1, 1500, at(0))
	l.failed(1, MessageTooLong)
	l.notSent(2, 1400, at(10), SourceGone)
	l.notSent(3, 1400, at(20), SourceGone)
	r := l.report()
	if got, want := r.String(), "1400 B: sent 2, lost 2, 2 source namespace gone\n1500 B: sent 1, lost 1, 1 message too long"; got != want {
		t.Errorf("report:\n%s\nwant\n%s", got, want)
	}
	if s := r.Size(1400); !s.FirstLoss.Equal(at(10)) || !s.LastLoss.Equal(at(20)) {
		t.Errorf("losses from %s to %s, want %s to %s", s.FirstLoss, s.LastLoss, at(10), at(20))
	}
}

func TestLedgerWindowsCountDatagramsByWhenTheyWereSent(t *testing.T) {
	l := newLedger([]int{1400}, time.Second)
	l.sent(1, 1400, at(0))
	l.sent(2, 1400, at(100))
	l.arrived(1, 1400)
	closed := l.closeWindow()
	l.sent(3, 1400, at(200))
	l.arrived(3, 1400)

	if by := l.settledBy(closed); !by.Equal(at(1100)) {
		t.Errorf("window settles by %s, want %s: a second after its last datagram", by, at(1100))
	}
	// The closed window's datagram arrives after the next window has begun.
	l.arrived(2, 1400)
	if by := l.settledBy(closed); !by.IsZero() {
		t.Errorf("window settles by %s once all arrived, want zero (settled)", by)
	}
	if s := l.takeWindow(closed).Size(1400); s.Sent != 2 || s.Delivered != 2 {
		t.Errorf("first window: %s, want its 2 datagrams, delivered", s)
	}
	if s := l.takeWindow(l.closeWindow()).Size(1400); s.Sent != 1 || s.Delivered != 1 {
		t.Errorf("second window: %s, want only the datagram sent in it", s)
	}
	if s := l.report().Size(1400); s.Sent != 3 || s.Delivered != 3 {
		t.Errorf("total: %s, want all 3", s)
	}
}

func TestReportString(t *testing.T) {
	r := Report{Sizes: []SizeReport{
		{Size: 1400, Sent: 120, Delivered: 120},
		{Size: 1450, Sent: 120, Delivered: 100, Lost: 19, Errors: map[ErrorKind]int{MessageTooLong: 3, HostUnreachable: 1}},
	}}
	want := "1400 B: sent 120, lost 0\n1450 B: sent 120, lost 19, 1 in flight, 3 message too long, 1 no route to host"
	if r.String() != want {
		t.Errorf("String() =\n%s\nwant\n%s", r, want)
	}
}

func TestPayloadsFromOthersAreNotOurs(t *testing.T) {
	run := runID{1, 2, 3, 4, 5, 6, 7, 8}
	buf := make([]byte, 100)
	encode(buf, run, 42)
	if got, seq, ok := decode(buf); !ok || got != run || seq != 42 {
		t.Errorf("decode(encode(run, 42)) = %v %d %t", got, seq, ok)
	}
	for _, payload := range [][]byte{buf[:payloadHeader-1], []byte(strings.Repeat("x", 100))} {
		if _, _, ok := decode(payload); ok {
			t.Errorf("decode(%q) accepted a payload that is not ours", payload)
		}
	}
}

func TestCheckSizeBounds(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")
	tests := []struct {
		size int
		to   netip.Addr
		ok   bool
	}{
		{48, v4, true}, // IPv4 and UDP headers and the payload header
		{47, v4, false},
		{68, v6, true},
		{67, v6, false},
		{65535, v6, true},
		{65536, v4, false},
	}
	for _, tt := range tests {
		if err := checkSize(tt.size, tt.to); (err == nil) != tt.ok {
			t.Errorf("checkSize(%d, %s) = %v, want ok %t", tt.size, tt.to, err, tt.ok)
		}
	}
}

func TestBadEndpointsAreRefused(t *testing.T) {
	dir := t.TempDir()
	good := Endpoint{NetnsFile: dir + "/a", IP: "10.0.0.1"}
	if err := os.WriteFile(dir+"/plain", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		from, to Endpoint
		want     string
	}{
		{"no address", good, Endpoint{NetnsFile: dir + "/b"}, "destination"},
		{"mixed families", good, Endpoint{NetnsFile: dir + "/b", IP: "fd00::2"}, "different IP families"},
		{"no namespace file", good, Endpoint{IP: "10.0.0.2"}, "namespace file"},
		{"a namespace file that is not there", good, Endpoint{NetnsFile: dir + "/b", IP: "10.0.0.2"}, "no network namespace at " + dir + "/b"},
		{"a file that is not a namespace", good, Endpoint{NetnsFile: dir + "/plain", IP: "10.0.0.2"}, "not a namespace file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Probe(t.Context(), tt.from, tt.to, 1400, 1, time.Second); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Probe = %v, want an error with %q", err, tt.want)
			}
			if p, err := Start(tt.from, tt.to, []int{1400}, time.Second); err == nil || !strings.Contains(err.Error(), tt.want) {
				if p != nil {
					p.Stop()
				}
				t.Errorf("Start = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
