// Package kubescheme builds the scheme both binaries and the tests use: Kubernetes' built-in
// types and this project's API.
package kubescheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	mtuv1alpha1 "github.com/mtu-operator/mtu-operator/api/v1alpha1"
)

// New returns a scheme with the built-in types and NetworkMTUPolicy and NodeMTUState.
func New() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := mtuv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, nil
}
