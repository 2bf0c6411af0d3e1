//go:build tools

// Pins Gitea's main package (module code.gitea.io/gitea, which calls itself
// gitea.dev) so `go mod tidy` keeps its whole dependency graph in go.sum.
package tools

import _ "gitea.dev"
