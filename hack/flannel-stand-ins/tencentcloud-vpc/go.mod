// A stand-in for the Tencent Cloud VPC SDK module, whose zip the Go module proxy refuses
// (see hack/build-flannel-assets.sh). It declares only what flannel's tencent-vpc backend
// compiles against; every call fails.
module github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc

go 1.21
