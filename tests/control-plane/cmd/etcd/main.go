// Command etcd is the upstream etcd server, built from its Go module at the
// version the pinned kube-apiserver release is tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
