package netdev

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// InNamespace runs fn with the calling OS thread switched into the network namespace ns and
// returns fn's error.
//
// A namespace belongs to an OS thread, not to a goroutine, so fn runs on a goroutine of its own
// locked to its thread for the whole call. Sockets fn opens stay in ns after it returns, but
// goroutines fn starts, and work the Go runtime hands to other threads (name resolution, the
// parallel dials of a dual-stack address), run in the namespace of the process: inside fn, open
// sockets directly and use IP literals.
//
// If the thread cannot be switched back it is left locked, so the runtime retires it when the
// goroutine ends instead of reusing it in the wrong namespace.
func InNamespace(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- inNamespaceLocked(ns, fn)
	}()
	return <-errc
}

// inNamespaceLocked runs on a locked thread and unlocks it only once it is back home.
func inNamespaceLocked(ns netns.NsHandle, fn func() error) (err error) {
	home, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("getting the current network namespace: %w", err)
	}
	defer home.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace %s: %w", ns, err)
	}
	defer func() {
		if restoreErr := netns.Set(home); restoreErr != nil {
			// Stay locked: the thread dies with this goroutine.
			err = errors.Join(err, fmt.Errorf("returning to network namespace %s: %w", home, restoreErr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}
