package main

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// legacyDir holds databases older versions wrote, with what their servers
// answered about them (store/testdata/legacy/gen/main.go made them).
const legacyDir = "../../store/testdata/legacy"

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// TestUpgradeKeepsAnswers is a café upgrading: the current server opens a
// file an older one wrote and answers every question about its members and
// purchases as the old one did (new fields aside), and loyalty verify finds
// nothing wrong with the file after; before, it refuses to read a file of
// an older schema and says how to migrate it.
func TestUpgradeKeepsAnswers(t *testing.T) {
	for _, name := range []string{"schema1", "schema2", "schema3"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			dbPath := filepath.Join(dir, "loyalty.db")
			gunzipTo(t, filepath.Join(legacyDir, name+".db.gz"), dbPath)
			rulesPath := filepath.Join(dir, "rules.yaml")
			rulesText, err := os.ReadFile(filepath.Join(legacyDir, name+".rules.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(rulesPath, rulesText, 0o644); err != nil {
				t.Fatal(err)
			}
			var old struct {
				Now     time.Time
				Answers map[string]any
			}
			data, err := os.ReadFile(filepath.Join(legacyDir, name+".answers.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &old); err != nil {
				t.Fatal(err)
			}

			code, out := runCLI(t, "verify", "--db", dbPath)
			if want := "schema version " + strings.TrimPrefix(name, "schema") + ": open it once for writing (loyalty serve)"; code != 1 || !strings.Contains(out, want) {
				t.Fatalf("verify of a %s file: %d %s; want a refusal that says how to migrate it", name, code, out)
			}

			var logs syncBuffer
			m := &Main{Config: Config{Addr: "127.0.0.1:0", DBPath: dbPath, RulesPath: rulesPath}, Clock: fixedClock(old.Now), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			if err := m.Open(); err != nil {
				t.Fatal(err)
			}
			if want := "from=" + strings.TrimPrefix(name, "schema") + " to="; !strings.Contains(logs.String(), "moving the database") || !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "database moved") {
				t.Errorf("the server's log does not say it moves the database (%s):\n%s", want, logs.String())
			}
			closed := false
			t.Cleanup(func() {
				if !closed {
					m.Close()
				}
			})
			for _, path := range slices.Sorted(maps.Keys(old.Answers)) {
				got := getJSON(t, "http://"+m.Addr()+path)
				for _, d := range answerDiff(path, old.Answers[path], got) {
					t.Error(d)
				}
			}
			closed = true
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if code, out := runCLI(t, "verify", "--db", dbPath); code != 0 || !strings.HasSuffix(out, "ok\n") {
				t.Fatalf("verify after serving: %d %s", code, out)
			}
		})
	}
}

func gunzipTo(t *testing.T, from, to string) {
	t.Helper()
	f, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func getJSON(t *testing.T, url string) any {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %s %s", url, res.Status, body)
	}
	var v any
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// clockKeys are answers computed from the time of the request, which the old
// server's running test clock had moved on by some milliseconds.
var clockKeys = map[string]bool{"window_start": true}

// answerDiff lists where got, a newer server's answer, does not hold
// everything old held: objects may gain keys, nothing else may change.
func answerDiff(path string, old, got any) []string {
	var diffs []string
	var walk func(at string, old, got any)
	walk = func(at string, old, got any) {
		switch o := old.(type) {
		case map[string]any:
			g, ok := got.(map[string]any)
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s%s: was %v, now %v", path, at, old, got))
				return
			}
			for k, ov := range o {
				gv, ok := g[k]
				if !ok {
					diffs = append(diffs, fmt.Sprintf("%s%s.%s: was %v, now missing", path, at, k, ov))
					continue
				}
				if clockKeys[k] && closeTimes(ov, gv) {
					continue
				}
				walk(at+"."+k, ov, gv)
			}
		case []any:
			g, ok := got.([]any)
			if !ok || len(g) != len(o) {
				diffs = append(diffs, fmt.Sprintf("%s%s: was %v, now %v", path, at, old, got))
				return
			}
			for i := range o {
				walk(fmt.Sprintf("%s[%d]", at, i), o[i], g[i])
			}
		default:
			if !reflect.DeepEqual(old, got) {
				diffs = append(diffs, fmt.Sprintf("%s%s: was %v, now %v", path, at, old, got))
			}
		}
	}
	walk("", old, got)
	return diffs
}

func closeTimes(a, b any) bool {
	as, ok1 := a.(string)
	bs, ok2 := b.(string)
	if !ok1 || !ok2 {
		return false
	}
	at, err1 := time.Parse(time.RFC3339Nano, as)
	bt, err2 := time.Parse(time.RFC3339Nano, bs)
	return err1 == nil && err2 == nil && at.Sub(bt).Abs() < time.Second
}
