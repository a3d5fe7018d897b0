package http_test

import (
	"fmt"
	"testing"
	"time"
)

func (s *server) now() time.Time {
	s.t.Helper()
	t, err := time.Parse(time.RFC3339Nano, s.do("GET", "/v1/clock", "").json(s.t)["now"].(string))
	if err != nil {
		s.t.Fatal(err)
	}
	return t
}

// After a downtime of over two years the birthday job granted every missed
// birthday at once, each with a fresh expiry.
func TestBirthdayCatchUpGrantsTheLatestBirthdayOnly(t *testing.T) {
	s := newServer(t, true)
	ny, err := time.LoadLocation("America/New_York") // the example program's zone
	if err != nil {
		t.Fatal(err)
	}
	// A birthday 100 days from now, and never 29 February.
	day := s.now().In(ny).AddDate(0, 0, 100)
	if day.Month() == time.February && day.Day() == 29 {
		day = day.AddDate(0, 0, 1)
	}
	id := s.enrol(fmt.Sprintf(`{"birthday": "1990-%02d-%02d"}`, day.Month(), day.Day()))
	if r := s.do("POST", "/v1/jobs/birthday-bonus/run", ""); r.status != 200 || r.json(t)["processed"] != 0.0 {
		t.Fatalf("first run: %d %s", r.status, r.body)
	}
	// 800 days: the birthdays 100 and 465 days on both pass unseen.
	if r := s.do("POST", "/v1/clock", `{"advance": "19200h"}`); r.status != 200 {
		t.Fatalf("advance: %d %s", r.status, r.body)
	}
	if r := s.do("POST", "/v1/jobs/birthday-bonus/run", ""); r.status != 200 || r.json(t)["processed"] != 1.0 {
		t.Fatalf("catch-up run: %d %s, want one bonus", r.status, r.body)
	}
	// The enrolment bonus expired after 12 months.
	if got := s.available(id); got != 150 {
		t.Fatalf("after the catch-up the member has %v, want one birthday bonus of 150", got)
	}
	var bonuses int
	for _, e := range s.do("GET", "/v1/members/"+id+"/ledger", "").json(t)["entries"].([]any) {
		if e.(map[string]any)["note"] == "birthday bonus" {
			bonuses++
		}
	}
	if bonuses != 1 {
		t.Fatalf("%d birthday bonuses in the ledger, want 1", bonuses)
	}
	if r := s.do("POST", "/v1/jobs/birthday-bonus/run", ""); r.json(t)["processed"] != 0.0 {
		t.Fatalf("a second run granted again: %s", r.body)
	}
}
