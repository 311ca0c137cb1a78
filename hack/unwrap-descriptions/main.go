// Command unwrap-descriptions rewrites, in place, the descriptions of the CRD files it is given
// so that `kubectl explain` shows sentences (crddoc.Unwrap); make manifests runs it after
// controller-gen.
package main

import (
	"fmt"
	"os"

	"github.com/mtu-operator/mtu-operator/internal/crddoc"
)

func main() {
	for _, file := range os.Args[1:] {
		if err := unwrap(file); err != nil {
			fmt.Fprintf(os.Stderr, "unwrap-descriptions: %s: %v\n", file, err)
			os.Exit(1)
		}
	}
}

func unwrap(file string) error {
	in, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	out, err := crddoc.UnwrapDocument(in)
	if err != nil {
		return err
	}
	return os.WriteFile(file, out, 0o644)
}
