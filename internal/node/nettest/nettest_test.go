package nettest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func TestJudge(t *testing.T) {
	notRoot := privilege{reason: "not root (uid 1000 without CAP_SYS_ADMIN and CAP_NET_ADMIN)"}
	noNetns := privilege{reason: "this kernel has no network namespaces", absent: true}
	tests := []struct {
		name string
		p    privilege
		ci   bool
		want verdict
		msg  string
	}{
		{"privileged runs", privilege{ok: true}, false, run, ""},
		{"privileged runs in CI", privilege{ok: true}, true, run, ""},
		{"not root skips", notRoot, false, skip, "skipping privileged network test: not root"},
		{"not root on a capable machine fails in CI", notRoot, true, fail, "CI=true and this machine can run privileged network tests, but not root"},
		{"a kernel without the capability skips", noNetns, false, skip, "no network namespaces"},
		{"a kernel without the capability skips even in CI", noNetns, true, skip, "no network namespaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := judge(tt.p, tt.ci)
			if got != tt.want || !strings.Contains(msg, tt.msg) {
				t.Errorf("judge = %v %q, want %v with %q", got, msg, tt.want, tt.msg)
			}
		})
	}
}

func TestDiffReportsWhatChanged(t *testing.T) {
	before := hostState{links: []string{Prefix() + "a (index 7) mtu 1500"}, hostLinks: []string{"eth0 (index 2)"}, hostNS: "net:[1]"}
	if d := before.diff(before); len(d) != 0 {
		t.Errorf("diff of a state with itself = %v", d)
	}
	after := hostState{
		links:       []string{Prefix() + "a (index 7) mtu 9000"},
		hostLinks:   []string{"eth0 (index 2)", "cni0 (index 9)"},
		namedNS:     []string{Prefix() + "leftover"},
		mounts:      []string{"/tmp/x/pod"},
		nsHandles:   2,
		hostNS:      "net:[1]",
		threadNSOut: []string{"thread 42 in net:[7]"},
	}
	got := strings.Join(before.diff(after), "\n")
	for _, want := range []string{"a (index 7) mtu 9000", "appeared in the host's network namespace: [cni0 (index 9)]", "leftover", "still mounted: [/tmp/x/pod]", "2 network namespace handles left open", "thread 42 in net:[7]"} {
		if !strings.Contains(got, want) {
			t.Errorf("diff lacks %q:\n%s", want, got)
		}
	}
}

// TestSnapshotSeesOnlyThisRun: what another run (or the demo) makes in /run/netns is not
// this run's leak, and what this run makes there is.
func TestSnapshotSeesOnlyThisRun(t *testing.T) {
	RequirePrivileged(t)
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	before, err := snapshot()
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join("/run/netns", "mtt-another-run-"+strconv.Itoa(os.Getpid()))
	mine := filepath.Join("/run/netns", Prefix()+"mine")
	for _, f := range []string{other, mine} {
		if err := os.WriteFile(f, nil, 0o444); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(f) })
	}
	after, err := snapshot()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(before.diff(after), "\n")
	if !strings.Contains(got, Prefix()+"mine") || strings.Contains(got, "another-run") {
		t.Errorf("diff = %q, want this run's file only", got)
	}
}

// TestMountsAreTrackedUntilUnmounted: a namespace file mounted and not unmounted is a leak.
func TestMountsAreTrackedUntilUnmounted(t *testing.T) {
	ns := NewNamespace(t)
	path := filepath.Join(t.TempDir(), "pod")
	if err := Mount(fmt.Sprintf("/proc/self/fd/%d", int(ns.NS)), path); err != nil {
		t.Fatal(err)
	}
	if got, err := mountedByThisRun(); err != nil || !slices.Contains(got, path) {
		t.Errorf("mounted = %v, %v; want %s", got, err, path)
	}
	if err := Unmount(path); err != nil {
		t.Fatal(err)
	}
	if got, err := mountedByThisRun(); err != nil || slices.Contains(got, path) {
		t.Errorf("after Unmount, mounted = %v, %v", got, err)
	}
}

func TestUnescapeMountPoint(t *testing.T) {
	for escaped, want := range map[string]string{
		`/tmp/plain`:            "/tmp/plain",
		`/tmp/a\040b`:           "/tmp/a b",
		`/tmp/tab\011nl\012`:    "/tmp/tab\tnl\n",
		`/tmp/back\134slash`:    `/tmp/back\slash`,
		`/tmp/not\04an\escape\`: `/tmp/not\04an\escape\`,
	} {
		if got := unescapeMountPoint(escaped); got != want {
			t.Errorf("unescapeMountPoint(%q) = %q, want %q", escaped, got, want)
		}
	}
}

func TestLeakedGoroutinesFindsThisPackagesGoroutines(t *testing.T) {
	release, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		<-release
	}()
	if got := leakedGoroutines(); !strings.Contains(got, "nettest.TestLeakedGoroutinesFindsThisPackagesGoroutines") {
		t.Errorf("leakedGoroutines did not report a running goroutine of this package:\n%s", got)
	}
	close(release)
	select {
	case <-exited:
	case <-time.After(time.Second):
		t.Fatal("the goroutine did not exit")
	}
}

func TestNewNamespaceIsEmptyAndSeparate(t *testing.T) {
	ns := NewNamespace(t)
	links, err := ns.NL.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Errorf("a new namespace has links %v, want only lo", links)
	}
	host, err := hostLinks()
	if err != nil {
		t.Fatal(err)
	}
	ns.AddVeth(t, "nettest0", "nettest1", ns, 1500)
	if after, _ := hostLinks(); strings.Join(after, ",") != strings.Join(host, ",") {
		t.Errorf("creating links in the namespace changed the host's: %v → %v", host, after)
	}
}

func TestAddLinkSkipsALinkTypeTheKernelLacks(t *testing.T) {
	ns := NewNamespace(t)
	var skipped bool
	t.Run("dummy", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		ns.AddLink(t, &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "dummy0"}})
	})
	if skipped {
		return // this kernel has no dummy links, and the subtest said so
	}
	if _, err := ns.NL.LinkByName("dummy0"); err != nil {
		t.Errorf("AddLink neither skipped nor created dummy0: %v", err)
	}
}
