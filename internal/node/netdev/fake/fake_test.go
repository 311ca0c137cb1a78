package fake_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mtu-operator/mtu-operator/internal/mtu"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev"
	"github.com/mtu-operator/mtu-operator/internal/node/netdev/fake"
)

func TestFakeRecordsCallsAndInjectsErrors(t *testing.T) {
	f := fake.New(netdev.Link{Name: "eth0", MTU: 1500, Up: true}, netdev.Link{Name: "flannel.1", MTU: 1450})
	busy := errors.New("device busy")
	f.FailCalls(fake.Call{Method: fake.MethodSetMTU, Link: "flannel.1", MTU: 8950}, busy)

	if err := f.SetMTU("eth0", 9000); err != nil {
		t.Fatalf("SetMTU eth0: %v", err)
	}
	if err := f.SetMTU("flannel.1", 8950); !errors.Is(err, busy) {
		t.Errorf("SetMTU flannel.1 8950 = %v, want the injected error", err)
	}
	if err := f.SetMTU("flannel.1", 1400); err != nil {
		t.Errorf("SetMTU flannel.1 1400 = %v: the failure should only match 8950", err)
	}
	if err := f.SetMTU("cni0", 1450); !errors.Is(err, netdev.ErrLinkNotFound) {
		t.Errorf("SetMTU of a missing link = %v, want ErrLinkNotFound", err)
	}
	if err := f.SetMTU("eth0", 0); err == nil {
		t.Error("SetMTU 0 succeeded")
	}

	var got []string
	for _, c := range f.Calls() {
		got = append(got, c.String())
	}
	want := []string{"SetMTU eth0 9000", "SetMTU flannel.1 8950", "SetMTU flannel.1 1400", "SetMTU cni0 1450", "SetMTU eth0 0"}
	if !slices.Equal(got, want) {
		t.Errorf("Calls = %v, want %v", got, want)
	}
	if l, _ := f.Link("flannel.1"); l.MTU != 1400 {
		t.Errorf("flannel.1 MTU = %d, want 1400 (the failed call has no effect)", l.MTU)
	}
	f.ClearFailures()
	if err := f.SetMTU("flannel.1", 8950); err != nil {
		t.Errorf("SetMTU after ClearFailures: %v", err)
	}
}

func TestFakeDefaultRouteLinks(t *testing.T) {
	f := fake.New(netdev.Link{Name: "eth0", Index: 2}, netdev.Link{Name: "eth1", Index: 3})
	f.AddRoute(netdev.Route{Family: mtu.IPv4, Dst: netip.MustParsePrefix("0.0.0.0/0"), LinkIndex: 2})
	f.AddRoute(netdev.Route{Family: mtu.IPv6, Dst: netip.MustParsePrefix("::/0"), NextHopLinks: []int{2, 3}})
	f.AddRoute(netdev.Route{Family: mtu.IPv4, Dst: netip.MustParsePrefix("0.0.0.0/0"), LinkIndex: 3, Table: 100})
	got, err := f.DefaultRouteLinks()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[mtu.IPv4], []int{2}) || !slices.Equal(got[mtu.IPv6], []int{2, 3}) {
		t.Errorf("DefaultRouteLinks = %v", got)
	}
}

func TestFakeWatchLinks(t *testing.T) {
	f := fake.New(netdev.Link{Name: "eth0", MTU: 1500})
	ctx, cancel := context.WithCancel(t.Context())
	updates, err := f.WatchLinks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The fake never blocks on a slow watcher: queue everything before reading.
	if err := f.SetMTU("eth0", 9000); err != nil {
		t.Fatal(err)
	}
	f.PutLink(netdev.Link{Name: "flannel.1", MTU: 8950})
	f.RemoveLink("eth0")

	want := []netdev.LinkUpdate{
		{Link: netdev.Link{Name: "eth0", Index: 1, MTU: 9000}},
		{Link: netdev.Link{Name: "flannel.1", Index: 2, MTU: 8950}},
		{Link: netdev.Link{Name: "eth0", Index: 1, MTU: 9000}, Deleted: true},
	}
	for _, w := range want {
		select {
		case got := <-updates:
			if got != w {
				t.Errorf("update = %+v, want %+v", got, w)
			}
		case <-time.After(time.Second):
			t.Fatalf("no update %+v within 1s", w)
		}
	}
	cancel()
	select {
	case _, ok := <-updates:
		if ok {
			t.Error("an update after the context ended")
		}
	case <-time.After(time.Second):
		t.Fatal("the channel stayed open after the context ended")
	}
}
