// Package journal keeps what a node agent must not forget when its process dies: the MTU
// transaction it had started and not finished, and the routes it pinned with their original
// MTU metrics. The record is a small JSON file on the node (a hostPath in the DaemonSet),
// written atomically before each kernel change, so a restarted agent undoes what it left half
// done and releases what it pinned, without asking the API server: a node that a bad MTU cut
// off must still recover.
//
// The transaction and the pins belong to one boot of the node: the kernel's links and routes do
// not survive a reboot, so they are dropped when a record of an earlier boot is opened. The
// original MTUs of the underlay interfaces are kept: they are what the node had before the
// operator, whatever booted since.
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mtu-operator/mtu-operator/internal/node/routepin"
	"github.com/mtu-operator/mtu-operator/internal/node/txn"
)

// BootIDFile names the current boot of the kernel.
const BootIDFile = "/proc/sys/kernel/random/boot_id"

// Pending is a transaction started and not yet ended.
type Pending struct {
	// PolicyGeneration and Attempt are those of the NodeMTUState spec it worked towards.
	PolicyGeneration int64 `json:"policyGeneration"`
	Attempt          int32 `json:"attempt,omitempty"`
	// Changes are in the order they are applied.
	Changes []txn.Change `json:"changes"`
	Started time.Time    `json:"started"`
	// Interruptions counts the earlier runs of this same change that the process did not
	// finish; the agent gives up on a change that keeps killing it.
	Interruptions int `json:"interruptions,omitempty"`
	// Undone says a restarted agent undid the change and it has not run again since.
	Undone bool `json:"undone,omitempty"`
}

// Record is the journal's content.
type Record struct {
	// BootID is the boot the record belongs to.
	BootID      string              `json:"bootID"`
	Transaction *Pending            `json:"transaction,omitempty"`
	Pins        []routepin.Original `json:"pins,omitempty"`
	// OriginalMTUs are the MTUs the underlay interfaces had before the operator first changed
	// them; an entry, once there, is never replaced.
	OriginalMTUs map[string]int `json:"originalMTUs,omitempty"`
}

// Journal is the record of one node's agent in one file. It is safe for concurrent use.
type Journal struct {
	path string

	mu  sync.Mutex
	rec Record
}

// Open reads the journal at path, creating its directory when needed. A missing file is an
// empty record; a record of another boot is dropped (and said so by dropped). A file that does
// not parse is an error: guessing could undo the wrong change.
func Open(path, bootID string) (j *Journal, rec Record, dropped bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, Record{}, false, fmt.Errorf("creating the journal's directory: %w", err)
	}
	j = &Journal{path: path, rec: Record{BootID: bootID}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return j, j.rec, false, nil
	}
	if err != nil {
		return nil, Record{}, false, fmt.Errorf("reading the journal: %w", err)
	}
	var read Record
	if err := json.Unmarshal(b, &read); err != nil {
		return nil, Record{}, false, fmt.Errorf("the journal %s does not parse (move it away to start afresh): %w", path, err)
	}
	if read.BootID != bootID {
		// The node rebooted: the kernel state the record describes is gone, not the originals.
		j.rec.OriginalMTUs = read.OriginalMTUs
		return j, clone(j.rec), true, j.write(j.rec)
	}
	j.rec = read
	return j, read, false, nil
}

// BootID reads the kernel's boot ID.
func BootID() (string, error) {
	b, err := os.ReadFile(BootIDFile)
	if err != nil {
		return "", fmt.Errorf("reading the boot ID: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Record returns a copy of the record as last written.
func (j *Journal) Record() Record {
	j.mu.Lock()
	defer j.mu.Unlock()
	return clone(j.rec)
}

// SetTransaction records the transaction under way, or none, and the original MTU of each
// underlay interface it changes for the first time.
func (j *Journal) SetTransaction(p *Pending) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	next := clone(j.rec)
	next.Transaction = nil
	if p != nil {
		cp := *p
		cp.Changes = append([]txn.Change(nil), p.Changes...)
		next.Transaction = &cp
		for _, c := range p.Changes {
			if _, known := next.OriginalMTUs[c.Link]; c.Role == txn.Underlay && !known {
				if next.OriginalMTUs == nil {
					next.OriginalMTUs = map[string]int{}
				}
				next.OriginalMTUs[c.Link] = c.From
			}
		}
	}
	return j.commit(next)
}

// SetPins records the pinned routes and their originals.
func (j *Journal) SetPins(pins []routepin.Original) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	next := clone(j.rec)
	next.Pins = append([]routepin.Original(nil), pins...)
	return j.commit(next)
}

// commit writes next and keeps it as the record once it is on disk.
func (j *Journal) commit(next Record) error {
	if err := j.write(next); err != nil {
		return err
	}
	j.rec = next
	return nil
}

// write replaces the file atomically: a crash leaves the old record or the new one, whole.
func (j *Journal) write(rec Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(j.path), filepath.Base(j.path)+".*")
	if err != nil {
		return fmt.Errorf("writing the journal: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the journal: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the journal: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the journal: %w", err)
	}
	if err := os.Rename(tmp.Name(), j.path); err != nil {
		return fmt.Errorf("writing the journal: %w", err)
	}
	if dir, err := os.Open(filepath.Dir(j.path)); err == nil {
		_ = dir.Sync() // the rename itself survives a power loss
		dir.Close()
	}
	return nil
}

func clone(r Record) Record {
	out := Record{BootID: r.BootID, Pins: append([]routepin.Original(nil), r.Pins...), OriginalMTUs: maps.Clone(r.OriginalMTUs)}
	if r.Transaction != nil {
		p := *r.Transaction
		p.Changes = append([]txn.Change(nil), r.Transaction.Changes...)
		out.Transaction = &p
	}
	return out
}
