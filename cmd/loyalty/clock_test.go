package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// settableClock is a wall clock a test moves, even backwards.
type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *settableClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// openTestClockMain starts the server on dir's database with the test
// clock over base; the caller closes it.
func openTestClockMain(t *testing.T, dir string, base *settableClock) *Main {
	t.Helper()
	rulesPath := filepath.Join(dir, "rules.yaml")
	if _, err := os.Stat(rulesPath); err != nil {
		if err := os.WriteFile(rulesPath, rules.Example, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := &Main{Clock: base, Config: Config{Addr: "127.0.0.1:0", DBPath: filepath.Join(dir, "loyalty.db"), RulesPath: rulesPath, TestClock: true}}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	return m
}

func send(t *testing.T, m *Main, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+m.Addr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, path, b)
	}
	return res.StatusCode, v
}

func clockNow(t *testing.T, m *Main) time.Time {
	t.Helper()
	_, v := send(t, m, "GET", "/v1/clock", "")
	now, err := time.Parse(time.RFC3339Nano, v["now"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return now
}

var clockStart = time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)

// The offset lived in memory only: after a restart the clock was back at
// the wall clock, and points earned at the advanced time showed as pending.
func TestTestClockKeepsItsTimeAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	base := &settableClock{t: clockStart}
	m := openTestClockMain(t, dir, base)
	if code, v := send(t, m, "POST", "/v1/clock", `{"advance": "720h"}`); code != 200 {
		t.Fatalf("advance: %d %v", code, v)
	}
	_, member := send(t, m, "POST", "/v1/members", `{}`)
	id := member["id"].(string)
	if code, v := send(t, m, "POST", "/v1/purchases", `{"id": "p1", "member_id": "`+id+`", "currency": "USD", "amount": "10.00"}`); code != 201 {
		t.Fatalf("purchase: %d %v", code, v)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	base.set(clockStart.Add(time.Hour)) // an hour of downtime
	m = openTestClockMain(t, dir, base)
	if got, want := clockNow(t, m), clockStart.Add(721*time.Hour); !got.Equal(want) {
		t.Fatalf("after the restart the clock shows %s, want %s", got, want)
	}
	_, bal := send(t, m, "GET", "/v1/members/"+id+"/balance", "")
	if bal["pending"].(float64) != 0 || bal["available"].(float64) != 60 {
		t.Fatalf("after the restart: %v, want 60 available and nothing pending", bal)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// The wall clock went back two days: the offset alone would show a time
	// before the records, so the clock starts at the newest write.
	base.set(clockStart.Add(-48 * time.Hour))
	m = openTestClockMain(t, dir, base)
	defer m.Close()
	if got, newest := clockNow(t, m), clockStart.Add(721*time.Hour); got.Before(newest) {
		t.Fatalf("after the wall clock went back the clock shows %s, before the newest write at %s", got, newest)
	}
}

func TestTestClockRefusesMovesItCannotMake(t *testing.T) {
	base := &settableClock{t: clockStart}
	m := openTestClockMain(t, t.TempDir(), base)
	defer m.Close()
	refused := func(body, field string) {
		t.Helper()
		code, v := send(t, m, "POST", "/v1/clock", body)
		e, _ := v["error"].(map[string]any)
		if code != 400 || e["code"] != "invalid" || e["field"] != field {
			t.Fatalf("%s: %d %v, want 400 invalid naming %s", body, code, v, field)
		}
	}
	// The largest Go duration is 292 years: past the latest time, and a
	// second one overflowed the offset into 1744.
	refused(`{"advance": "2562047h"}`, "advance")
	refused(`{"advance": "-1h"}`, "advance")
	refused(`{"now": "9999-12-31T00:00:00Z"}`, "now")
	refused(`{"now": "2150-01-01T00:00:00.000000001Z"}`, "now")
	if got := clockNow(t, m); !got.Equal(clockStart) {
		t.Fatalf("refused moves moved the clock to %s", got)
	}

	// The rules file's durations.
	if code, v := send(t, m, "POST", "/v1/clock", `{"advance": "30d"}`); code != 200 {
		t.Fatalf("advance 30d: %d %v", code, v)
	}
	if code, v := send(t, m, "POST", "/v1/clock", `{"advance": "1mo"}`); code != 200 {
		t.Fatalf("advance 1mo: %d %v", code, v)
	}
	want := clockStart.AddDate(0, 0, 30).AddDate(0, 1, 0)
	if got := clockNow(t, m); !got.Equal(want) {
		t.Fatalf("after 30d and 1mo the clock shows %s, want %s", got, want)
	}

	// A record written now, then the wall clock steps back two hours: the
	// clock may not be moved to before the record.
	if code, v := send(t, m, "POST", "/v1/members", `{}`); code != 201 {
		t.Fatalf("enrol: %d %v", code, v)
	}
	base.set(clockStart.Add(-2 * time.Hour))
	refused(`{"advance": "1h"}`, "advance")
	refused(`{"now": "`+want.Add(-time.Minute).Format(time.RFC3339)+`"}`, "now")
	if code, v := send(t, m, "POST", "/v1/clock", `{"now": "`+want.Add(time.Minute).Format(time.RFC3339)+`"}`); code != 200 {
		t.Fatalf("to after the record: %d %v", code, v)
	}
}
