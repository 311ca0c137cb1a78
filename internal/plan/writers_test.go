package plan

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWritersSince(t *testing.T) {
	written := time.Date(2026, 11, 30, 3, 12, 5, 600_000_000, time.UTC)
	at := func(s int) *metav1.Time { return &metav1.Time{Time: time.Date(2026, 11, 30, 3, 12, s, 0, time.UTC)} }
	entries := []metav1.ManagedFieldsEntry{
		{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(1)}, // the install, before the operator
		{Manager: "mtu-operator-manager", Operation: metav1.ManagedFieldsOperationApply, Time: at(5)},
		{Manager: "argocd-controller", Operation: metav1.ManagedFieldsOperationApply, Time: at(40)},
		{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(9)},
		{Manager: "helm", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(5)}, // in the second of the write: may be after it
		{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(50), Subresource: "status"},
		{Manager: "untimed", Operation: metav1.ManagedFieldsOperationUpdate},
	}
	got := WritersSince(entries, "mtu-operator-manager", written)
	want := "helm (Update at 2026-11-30T03:12:05Z), kubectl-edit (Update at 2026-11-30T03:12:09Z), argocd-controller (Apply at 2026-11-30T03:12:40Z)"
	if s := DescribeWriters(got); s != want {
		t.Errorf("writers %s\nwant    %s", s, want)
	}
	if s := DescribeWriters(nil); s != "another writer" {
		t.Errorf("no writers: %q", s)
	}
}
