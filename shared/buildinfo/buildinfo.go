// Package buildinfo carries the version stamped into every Outpost binary at
// build time with -ldflags "-X github.com/outpost-iot/outpost/shared/buildinfo.Version=...".
package buildinfo

import "runtime/debug"

// Version is the release version, set by the linker; "dev" when unset.
var Version = "dev"

// String returns the version, falling back to the VCS revision recorded by
// the Go toolchain when the linker did not set one.
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return Version
}
