package journal_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mtu-operator/mtu-operator/internal/node/journal"
	"github.com/mtu-operator/mtu-operator/internal/node/routepin"
	"github.com/mtu-operator/mtu-operator/internal/node/txn"
)

func open(t *testing.T, path, boot string) (*journal.Journal, journal.Record, bool) {
	t.Helper()
	j, rec, dropped, err := journal.Open(path, boot)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return j, rec, dropped
}

func TestARecordSurvivesTheProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "node-a.json")
	j, rec, dropped := open(t, path, "boot-1")
	if dropped || rec.Transaction != nil || len(rec.Pins) != 0 {
		t.Fatalf("a new journal holds %+v (dropped %v), want nothing", rec, dropped)
	}
	pending := &journal.Pending{PolicyGeneration: 3, Attempt: 1, Started: time.Unix(1700000000, 0).UTC(),
		Changes: []txn.Change{{Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay}, {Link: "flannel.1", From: 1450, To: 8950, Role: txn.Tunnel}}}
	pins := []routepin.Original{{Route: "10.244.2.0/24 via 10.244.2.0", LinkIndex: 3, MTU: 0, Pinned: 1450}}
	if err := j.SetTransaction(pending); err != nil {
		t.Fatal(err)
	}
	if err := j.SetPins(pins); err != nil {
		t.Fatal(err)
	}
	pending.Changes[0].To = 1 // the journal keeps its own copy

	_, again, dropped := open(t, path, "boot-1")
	want := journal.Record{BootID: "boot-1", Pins: pins, OriginalMTUs: map[string]int{"eth0": 1500}, Transaction: &journal.Pending{PolicyGeneration: 3, Attempt: 1, Started: time.Unix(1700000000, 0).UTC(),
		Changes: []txn.Change{{Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay}, {Link: "flannel.1", From: 1450, To: 8950, Role: txn.Tunnel}}}}
	if dropped || !reflect.DeepEqual(again, want) {
		t.Errorf("reopened: %+v (dropped %v), want %+v", again, dropped, want)
	}

	if err := j.SetTransaction(nil); err != nil {
		t.Fatal(err)
	}
	if _, again, _ = open(t, path, "boot-1"); again.Transaction != nil || len(again.Pins) != 1 {
		t.Errorf("after the transaction ended: %+v, want the pins only", again)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the journal's directory holds %d files, want the journal alone (no temporary file left)", len(entries))
	}
}

func TestARecordOfAnotherBootIsDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node-a.json")
	j, _, _ := open(t, path, "boot-1")
	if err := j.SetPins([]routepin.Original{{Route: "r", LinkIndex: 3, Pinned: 1450}}); err != nil {
		t.Fatal(err)
	}
	if err := j.SetTransaction(&journal.Pending{Changes: []txn.Change{{Link: "eth0", From: 1500, To: 9000, Role: txn.Underlay}, {Link: "cni0", From: 1450, To: 8950, Role: txn.Bridge}}}); err != nil {
		t.Fatal(err)
	}
	if err := j.SetTransaction(&journal.Pending{Changes: []txn.Change{{Link: "eth0", From: 9000, To: 1500, Role: txn.Underlay}}}); err != nil {
		t.Fatal(err)
	}
	_, rec, dropped := open(t, path, "boot-2")
	if !dropped || len(rec.Pins) != 0 || rec.Transaction != nil || rec.BootID != "boot-2" {
		t.Errorf("after a reboot: %+v (dropped %v), want an empty record of boot-2", rec, dropped)
	}
	if !reflect.DeepEqual(rec.OriginalMTUs, map[string]int{"eth0": 1500}) {
		t.Errorf("original MTUs after a reboot: %v, want eth0's first one (1500) only: the underlay's, kept", rec.OriginalMTUs)
	}
	if _, rec, dropped = open(t, path, "boot-2"); dropped || len(rec.Pins) != 0 {
		t.Errorf("the dropped record was not replaced on disk: %+v (dropped %v)", rec, dropped)
	}
}

func TestAJournalThatDoesNotParseIsAnErrorAndLeftAsItIs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node-a.json")
	if err := os.WriteFile(path, []byte(`{"bootID":"boot-1","transaction":{`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := journal.Open(path, "boot-1")
	if err == nil || !strings.Contains(err.Error(), "does not parse") {
		t.Fatalf("Open of a torn journal: %v, want a parse error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != `{"bootID":"boot-1","transaction":{` {
		t.Errorf("the journal was rewritten: %q", b)
	}
}

func TestBootID(t *testing.T) {
	id, err := journal.BootID()
	if err != nil {
		t.Fatal(err)
	}
	if len(id) < 32 {
		t.Errorf("boot ID %q looks wrong", id)
	}
}
