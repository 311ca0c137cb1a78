package plan

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Writer is another field manager that changed an object after the operator wrote it.
type Writer struct {
	Manager   string
	Operation string
	Time      time.Time
}

func (w Writer) String() string {
	return fmt.Sprintf("%s (%s at %s)", w.Manager, w.Operation, w.Time.UTC().Format(time.RFC3339))
}

// WritersSince returns the field managers other than ours that changed the object since the
// operator wrote it (writtenAt), the earliest first, from its managedFields. Their times have
// seconds only: a change in the second of the write counts, as it may have come after it.
func WritersSince(entries []metav1.ManagedFieldsEntry, ours string, writtenAt time.Time) []Writer {
	var out []Writer
	for _, e := range entries {
		if e.Manager == ours || e.Subresource != "" || e.Time == nil || e.Time.Time.Before(writtenAt.Truncate(time.Second)) {
			continue
		}
		out = append(out, Writer{Manager: e.Manager, Operation: string(e.Operation), Time: e.Time.Time})
	}
	slices.SortStableFunc(out, func(a, b Writer) int { return a.Time.Compare(b.Time) })
	return out
}

// DescribeWriters names the writers for a message, "another writer" when none is known (an
// object whose managedFields were cleared).
func DescribeWriters(writers []Writer) string {
	if len(writers) == 0 {
		return "another writer"
	}
	parts := make([]string, 0, len(writers))
	for _, w := range writers {
		parts = append(parts, w.String())
	}
	return strings.Join(parts, ", ")
}
