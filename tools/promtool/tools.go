//go:build tools

// Package promtool pins Prometheus' promtool, which the tests of the alerting rules run
// (make promtool). It is a module of its own so that Prometheus' dependencies do not move the
// versions the other tools are built with.
package promtool

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
