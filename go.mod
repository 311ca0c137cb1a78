module github.com/mtu-operator/mtu-operator

go 1.26.0
