package engine_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

// TestEraseRedactsEvents: an event about the member that carries their
// personal data (as member events will) loses it on erasure, in its keys
// and in any text that quotes it; another member's event is left as it is.
func TestEraseRedactsEvents(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{ExternalID: "card-9", Email: "eve@example.com", Name: "Eve Example"})
	other := h.enrol(engine.MemberInput{ExternalID: "card-10"})
	put := func(member string, payload string) {
		t.Helper()
		if err := h.db.Update(h.ctx, func(tx engine.Tx) error {
			return tx.AppendEvent(&engine.Event{ID: "evt_" + member, Type: "member.enrolled", MemberID: member, At: start, Payload: []byte(payload)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	put(m.ID, `{"member_id": "`+m.ID+`", "email": "eve@example.com", "name": "Eve Example", "profile": {"note": "call Eve Example", "external_id": "card-9"}, "points": 5}`)
	put(other.ID, `{"member_id": "`+other.ID+`", "name": "Eve Example"}`)
	if _, err := h.e.Erase(h.ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	page, err := h.e.Events(h.ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var mine, theirs map[string]any
	for _, ev := range page.Events {
		switch ev.ID {
		case "evt_" + m.ID:
			json.Unmarshal(ev.Data, &mine)
		case "evt_" + other.ID:
			json.Unmarshal(ev.Data, &theirs)
		}
	}
	b, _ := json.Marshal(mine)
	if strings.Contains(string(b), "Eve") || strings.Contains(string(b), "eve@") || strings.Contains(string(b), "card-9") {
		t.Errorf("the erased member's event still carries personal data: %s", b)
	}
	if mine["member_id"] != m.ID || mine["points"] != 5.0 {
		t.Errorf("the erased member's event lost what is not personal: %s", b)
	}
	if theirs["name"] != "Eve Example" {
		t.Errorf("another member's event was changed: %v", theirs)
	}
	// The card and the email are free for someone new.
	h.enrol(engine.MemberInput{ExternalID: "card-9", Email: "eve@example.com"})
}

// TestMergeCombinesHistory: the survivor keeps the higher tier and the
// combined spend qualifies it further; the merged member's purchases
// count in the survivor's window.
func TestMergeCombinesHistory(t *testing.T) {
	h := newHarness(t, exampleRules)
	a := h.enrol(engine.MemberInput{ExternalID: "a"})
	b := h.enrol(engine.MemberInput{ExternalID: "b"})
	h.buy("pa", a.ID, "1200.00")
	h.buy("pb", b.ID, "900.00")
	v, err := h.e.Merge(h.ctx, a.ID, engine.MergeRequest{From: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	if v.Tier.Name != "platinum" {
		t.Errorf("survivor's tier after merging 1200 + 900 of spend = %s, want platinum", v.Tier.Name)
	}
	got, err := h.e.Member(h.ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != engine.StatusMerged || got.MergedInto != a.ID || got.Balance.Available != 0 {
		t.Errorf("merged member = %+v", got)
	}
	// A year on, nothing qualifies: the tier falls with both purchases.
	h.advanceDays(400)
	h.run("evaluate-tiers")
	after, _ := h.e.Member(h.ctx, a.ID)
	if after.Tier.Name == "platinum" {
		t.Errorf("survivor still platinum a year after the purchases")
	}
}

// TestImportedTierHasGraceFromImport: an imported tier is held from the
// import, and falls once grace has run out without qualifying purchases.
func TestImportedTierHasGraceFromImport(t *testing.T) {
	h := newHarness(t, exampleRules)
	rep, err := h.e.Import(h.ctx, []engine.NumberedLine{{N: 1, Line: engine.ImportLine{ExternalID: "g", Tier: "gold", Points: 40, EnrolledAt: "2020-01-01T00:00:00Z"}}})
	if err != nil || rep.Created != 1 {
		t.Fatalf("import = %+v, %v", rep, err)
	}
	ms, _ := h.e.FindMembers(h.ctx, engine.KeyExternalID, "g")
	m := ms[0]
	if m.Tier.Name != "gold" || !m.Tier.Since.Equal(start) || m.Balance.Available != 40 {
		t.Errorf("imported member = %+v", m)
	}
	h.advanceDays(20)
	h.run("evaluate-tiers")
	if m, _ := h.e.Member(h.ctx, m.ID); m.Tier.Name != "gold" {
		t.Errorf("within grace: %s", m.Tier.Name)
	}
	h.advanceDays(20)
	h.run("evaluate-tiers")
	if m, _ := h.e.Member(h.ctx, m.ID); m.Tier.Name != "green" {
		t.Errorf("after grace: %s, want green", m.Tier.Name)
	}
}
