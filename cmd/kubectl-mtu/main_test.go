package main

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestReorderPutsFlagsFirst(t *testing.T) {
	for _, tt := range []struct{ in, want []string }{
		{[]string{"retry", "--failed", "jumbo"}, []string{"--failed", "retry", "jumbo"}},
		{[]string{"status", "--kubeconfig", "k", "jumbo", "--context", "c"}, []string{"--kubeconfig", "k", "--context", "c", "status", "jumbo"}},
		{[]string{"--kubeconfig=k", "status"}, []string{"--kubeconfig=k", "status"}},
		{[]string{"retry", "--", "--odd-node"}, []string{"retry", "--odd-node"}},
	} {
		if got := reorder(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("reorder(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestBadUsageSaysHow: a command it does not know, or a retry without nodes, is an error that
// shows the usage, before any cluster is contacted.
func TestBadUsageSaysHow(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"retry"}, {"retry", "--failed", "a", "b"}, {"status", "a", "b"}, {"--nope", "status"}} {
		var out strings.Builder
		err := run(context.Background(), append(args, "--kubeconfig", "/nonexistent"), &out)
		if err == nil || !strings.Contains(err.Error(), "kubectl mtu status [POLICY]") {
			t.Errorf("run(%q) = %v, want an error with the usage", args, err)
		}
	}
	var out strings.Builder
	if err := run(context.Background(), nil, &out); err != nil || !strings.Contains(out.String(), "kubectl mtu retry NODE...") {
		t.Errorf("run() = %v, %q; want the usage", err, out.String())
	}
}
