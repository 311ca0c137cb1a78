//go:build tools

// Package tools pins the versions of the build tools the Makefile runs, so that every machine
// builds the same controller-gen, linter and benchstat from the Go module proxy.
package tools

import (
	_ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
	_ "golang.org/x/perf/cmd/benchstat"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
