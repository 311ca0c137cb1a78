// Package v1alpha1 holds the v1alpha1 API of the networking.mtu-operator.io group.
// +kubebuilder:object:generate=true
// +groupName=networking.mtu-operator.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "networking.mtu-operator.io", Version: "v1alpha1"}

	// SchemeBuilder registers the API's types with a scheme. The API package depends only on
	// apimachinery, so other projects can import it cheaply.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &NetworkMTUPolicy{}, &NetworkMTUPolicyList{}, &NodeMTUState{}, &NodeMTUStateList{}, &NetworkMTUTransition{}, &NetworkMTUTransitionList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
