// Package version tells which build of loyalty is running: the version and
// the commit it was built from. Both come from the build information Go
// records in the binary (the module version of `go install
// module@version`, the VCS revision of a build in a git checkout), unless
// the build sets them:
//
//	go build -ldflags "-X github.com/loyaltyhq/loyalty/internal/version.Version=v1.4.0 \
//	  -X github.com/loyaltyhq/loyalty/internal/version.Commit=$(git rev-parse HEAD)" ./cmd/loyalty
package version

import (
	"runtime/debug"
	"sync"
)

// Version and Commit, when set with -ldflags -X, win over the build
// information.
var (
	Version string
	Commit  string
)

// Info is what the binary knows of its build.
type Info struct {
	// Version is a release (v1.4.0), a pseudo-version of a commit, or
	// "devel" for a build that recorded none.
	Version string `json:"version"`
	// Commit is the VCS revision, with "-modified" when the work tree had
	// uncommitted changes, or "unknown" (a build with -buildvcs=false).
	Commit string `json:"commit"`
}

var (
	once sync.Once
	info Info
)

// Get returns the running build's version and commit.
func Get() Info {
	once.Do(func() { info = read(Version, Commit, debug.ReadBuildInfo) })
	return info
}

// read works Info out of the -X values and the build information.
func read(version, commit string, buildInfo func() (*debug.BuildInfo, bool)) Info {
	out := Info{Version: version, Commit: commit}
	if bi, ok := buildInfo(); ok {
		if out.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			out.Version = bi.Main.Version
		}
		if out.Commit == "" {
			var rev string
			var modified bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if rev != "" && modified {
				rev += "-modified"
			}
			out.Commit = rev
		}
	}
	if out.Version == "" {
		out.Version = "devel"
	}
	if out.Commit == "" {
		out.Commit = "unknown"
	}
	return out
}

// String is "loyalty VERSION (COMMIT)", the commit cut to 12 characters.
func (i Info) String() string {
	c := i.Commit
	if len(c) > 12 && c != "unknown" {
		c = c[:12] + c[len(c)-len(trailer(c)):]
	}
	return "loyalty " + i.Version + " (" + c + ")"
}

// trailer is the "-modified" a commit may end with.
func trailer(c string) string {
	const m = "-modified"
	if len(c) > len(m) && c[len(c)-len(m):] == m {
		return m
	}
	return ""
}
