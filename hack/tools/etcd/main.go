// Command etcd is upstream etcd's server, built from its Go module at the
// version pinned in go.mod, for the project's local test cluster.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
