package http_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	lhttp "github.com/loyaltyhq/loyalty/http"
)

// TestConsoleCallsOnlyRoutesThatExist: the console is a client of the
// public API; every call its modules make names a /v1 route this server
// has, with that method (a call to a route another branch has not built
// yet would fail here).
func TestConsoleCallsOnlyRoutesThatExist(t *testing.T) {
	app := lhttp.NewServer(lhttp.Config{}).App()
	var routes []*regexp.Regexp
	var methods []string
	for _, r := range app.GetRoutes(true) {
		if !strings.HasPrefix(r.Path, "/v1/") {
			continue
		}
		routes = append(routes, regexp.MustCompile("^"+regexp.MustCompile(`:[a-z]+`).ReplaceAllString(r.Path, "[^/]+")+"$"))
		methods = append(methods, r.Method)
	}
	call := regexp.MustCompile("api\\(\"([A-Z]+)\", [\"`](/v1/[^\"`?]*)")
	interp := regexp.MustCompile(`\$\{[^}]*\}`)
	calls := 0
	err := filepath.WalkDir("console", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".js") || strings.Contains(path, "vendor") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range call.FindAllStringSubmatch(string(src), -1) {
			calls++
			p := interp.ReplaceAllString(m[2], "x")
			found := false
			for i, re := range routes {
				found = found || (methods[i] == m[1] && re.MatchString(p))
			}
			if !found {
				t.Errorf("%s calls %s %s, which is no route", path, m[1], m[2])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 20 {
		t.Errorf("found %d calls of the API in the console's modules; the pattern no longer reads them", calls)
	}
}

// TestConsoleServed: /console redirects to /console/, which serves the
// page, its modules as JavaScript and the vendored library's licence, with
// a policy that loads nothing from elsewhere.
func TestConsoleServed(t *testing.T) {
	s := newServer(t, false)
	nohttp := &server{t: t}
	res := nohttp.get(s.url + "/console/")
	if res.status != 200 || !strings.Contains(string(res.body), `<script type="module" src="app.js">`) ||
		!strings.Contains(res.header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("/console/: %d %v", res.status, res.header)
	}
	if js := nohttp.get(s.url + "/console/app.js"); js.status != 200 || !strings.Contains(js.header.Get("Content-Type"), "javascript") {
		t.Errorf("app.js: %d %s", js.status, js.header.Get("Content-Type"))
	}
	if lic := nohttp.get(s.url + "/console/vendor/uplot/LICENSE"); lic.status != 200 || !strings.Contains(string(lic.body), "MIT") {
		t.Errorf("uPlot's licence: %d", lic.status)
	}
	if r := s.do("GET", "/console", ""); r.status != 200 || !strings.Contains(string(r.body), "<!doctype html>") {
		t.Errorf("/console: %d (the redirect is followed)", r.status)
	}
}
