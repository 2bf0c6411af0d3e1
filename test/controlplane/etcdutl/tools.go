//go:build tools

// Pins etcdutl for `go build go.etcd.io/etcd/etcdutl/v3`.
package tools

import _ "go.etcd.io/etcd/etcdutl/v3"
