package version

import (
	"runtime/debug"
	"testing"
)

func TestRead(t *testing.T) {
	rev := "0123456789abcdef0123456789abcdef01234567"
	build := func(version string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: version}, Settings: settings}, true
		}
	}
	for _, tc := range []struct {
		name            string
		version, commit string
		bi              func() (*debug.BuildInfo, bool)
		want            Info
		str             string
	}{
		{"go install module@v1.4.0", "", "", build("v1.4.0", debug.BuildSetting{Key: "vcs.revision", Value: rev}),
			Info{"v1.4.0", rev}, "loyalty v1.4.0 (0123456789ab)"},
		{"a checkout with changes", "", "", build("(devel)", debug.BuildSetting{Key: "vcs.revision", Value: rev}, debug.BuildSetting{Key: "vcs.modified", Value: "true"}),
			Info{"devel", rev + "-modified"}, "loyalty devel (0123456789ab-modified)"},
		{"-buildvcs=false", "", "", build("(devel)"), Info{"devel", "unknown"}, "loyalty devel (unknown)"},
		{"-ldflags -X wins", "v2.0.0", "cafe", build("v1.4.0", debug.BuildSetting{Key: "vcs.revision", Value: rev}),
			Info{"v2.0.0", "cafe"}, "loyalty v2.0.0 (cafe)"},
		{"no build info", "", "", func() (*debug.BuildInfo, bool) { return nil, false }, Info{"devel", "unknown"}, "loyalty devel (unknown)"},
	} {
		got := read(tc.version, tc.commit, tc.bi)
		if got != tc.want || got.String() != tc.str {
			t.Errorf("%s: %+v %q, want %+v %q", tc.name, got, got.String(), tc.want, tc.str)
		}
	}
}
