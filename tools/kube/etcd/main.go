// Command etcd is the etcd server (go.etcd.io/etcd/server/v3 at the version k8s.io/kubernetes pins),
// built from this module so Warden's Kubernetes tests need no download but the Go module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
