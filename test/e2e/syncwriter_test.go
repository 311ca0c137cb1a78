package e2e

import (
	"strings"
	"sync"
)

// syncWriter lets the manager and agents log into one buffer from their goroutines.
type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
