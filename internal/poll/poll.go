// Package poll waits in tests for a condition that others make true.
package poll

import (
	"testing"
	"time"
)

// Eventually polls check until it returns nil, and fails the test with the last error after
// timeout.
func Eventually(t testing.TB, what string, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
