// Package version holds the build identity of a mop binary. The linker sets the
// variables (see the Makefile's LDFLAGS) so that `--version`, /healthz and the
// build_info metric all report the same thing an operator deployed.
package version

import (
	"fmt"
	"runtime"
)

// Set with -ldflags "-X github.com/chat5202ol/mop/pkg/version.Version=...".
var (
	Version = "dev"
	Commit  = "none"
	Date    = "unknown"
)

// Info is the build identity as reported by /healthz and /readyz.
type Info struct {
	Service string `json:"service"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
	Go      string `json:"go"`
}

// Get returns the build identity of service.
func Get(service string) Info {
	return Info{Service: service, Version: Version, Commit: Commit, Date: Date, Go: runtime.Version()}
}

// String is the one-line form printed by --version.
func (i Info) String() string {
	return fmt.Sprintf("%s %s (commit %s, built %s, %s)", i.Service, i.Version, i.Commit, i.Date, i.Go)
}
