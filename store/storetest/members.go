package storetest

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
)

// testTransfers: a transfer reads back by its id, whole; an unknown id
// reads nil.
func testTransfers(t *testing.T, db engine.Store) {
	a, b := NewID(), NewID()
	putMembers(t, db, a, b)
	tr := &engine.Transfer{
		ID: "tr-1", FromMemberID: a, ToMemberID: b, At: t0, Points: 120, Reason: "gift",
		Draws: []engine.LotDraw{{LotID: "l1", Points: 100}, {LotID: "l2", Points: 20}}, RequestHash: "h",
		Result: engine.TransferResult{ID: "tr-1", Points: 120, FromBalance: 5, ToBalance: 120, CreatedAt: t0},
	}
	mustUpdate(t, db, func(tx engine.Tx) error { return tx.PutTransfer(tr) })
	mustView(t, db, func(tx engine.Tx) error {
		got, err := tx.Transfer("tr-1")
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, tr) {
			t.Errorf("Transfer = %+v, want %+v", got, tr)
		}
		if none, err := tx.Transfer("tr-2"); err != nil || none != nil {
			t.Errorf("Transfer(unknown) = %+v, %v; want nil, nil", none, err)
		}
		return nil
	})
}

// testMemberEventsRewrite: MemberEvents lists a member's events only, in
// feed order, numbered ones and those written in the same Update too;
// RewriteEvent replaces the payload and keeps the event's place, id and
// type, and an event without an id is named by its seq.
func testMemberEventsRewrite(t *testing.T, db engine.Store) {
	for i := range 4 {
		member := "m1"
		if i%2 == 1 {
			member = "m2"
		}
		e := &engine.Event{ID: fmt.Sprint("evt_", i), Type: "member.enrolled", MemberID: member, At: t0, Payload: fmt.Appendf(nil, `{"name":"Ana","i":%d}`, i)}
		mustUpdate(t, db, func(tx engine.Tx) error { return tx.AppendEvent(e) })
	}
	// The feed numbers them; a legacy notice has no id.
	mustUpdate(t, db, func(tx engine.Tx) error {
		return tx.AppendEvent(&engine.Event{Type: "points.expiring", MemberID: "m1", At: t0, Notice: map[string]string{"points": "5", "name": "Ana"}})
	})
	var feed []*engine.Event
	mustView(t, db, func(tx engine.Tx) error {
		var err error
		feed, err = tx.Events(0, 0)
		return err
	})
	if len(feed) != 5 {
		t.Fatalf("feed has %d events, want 5", len(feed))
	}
	mustUpdate(t, db, func(tx engine.Tx) error {
		evs, err := tx.MemberEvents("m1")
		if err != nil {
			return err
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.ID)
		}
		if want := []string{"evt_0", "evt_2", ""}; !reflect.DeepEqual(got, want) {
			t.Errorf("MemberEvents(m1) ids = %q, want %q", got, want)
		}
		for _, e := range evs {
			if e.ID != "" {
				e.Payload = []byte(`{"i":0}`)
			} else {
				e.Notice = map[string]string{"points": "5"}
			}
			if err := tx.RewriteEvent(e); err != nil {
				return err
			}
		}
		return nil
	})
	mustView(t, db, func(tx engine.Tx) error {
		after, err := tx.Events(0, 0)
		if err != nil {
			return err
		}
		if len(after) != len(feed) {
			t.Fatalf("feed has %d events after the rewrite, want %d", len(after), len(feed))
		}
		for i, e := range after {
			want := *feed[i]
			switch {
			case e.ID == "evt_0" || e.ID == "evt_2":
				want.Payload = []byte(`{"i":0}`)
			case e.ID == "":
				want.Notice = map[string]string{"points": "5"}
			}
			if !reflect.DeepEqual(e, &want) {
				t.Errorf("event %d after the rewrite = %+v, want %+v", i, e, &want)
			}
		}
		none, err := tx.MemberEvents("m3")
		if err != nil || len(none) != 0 {
			t.Errorf("MemberEvents(m3) = %v, %v; want none", none, err)
		}
		return nil
	})
}

// testMergedIntoRoundTrip: a merged member keeps its identifiers in the
// unique indexes (its card finds its record, which names the survivor).
func testMergedIntoRoundTrip(t *testing.T, db engine.Store) {
	a, b := NewID(), NewID()
	mustUpdate(t, db, func(tx engine.Tx) error {
		if err := tx.PutMember(&engine.Member{ID: a, Status: engine.StatusActive, ExternalID: "card-a"}); err != nil {
			return err
		}
		return tx.PutMember(&engine.Member{ID: b, Status: engine.StatusMerged, MergedInto: a, ExternalID: "card-b", Email: "b@example.com"})
	})
	mustView(t, db, func(tx engine.Tx) error {
		m, err := tx.MemberByKey(engine.KeyExternalID, "card-b")
		if err != nil {
			return err
		}
		if m == nil || m.ID != b || m.MergedInto != a || m.Status != engine.StatusMerged {
			t.Errorf("MemberByKey(card-b) = %+v, want member %s merged into %s", m, b, a)
		}
		return nil
	})
}

// testMembersByKeys: a store that offers engine.MembersFinder answers as
// MemberByKey would for each value, its own writes included; values
// nobody holds, and the empty value, find nobody.
func testMembersByKeys(t *testing.T, db engine.Store) {
	offered := false
	mustView(t, db, func(tx engine.Tx) error {
		_, offered = tx.(engine.MembersFinder)
		return nil
	})
	// Skipped here, not inside a transaction's function, which a store
	// may run on a goroutine of its own.
	if !offered {
		t.Skip("the store has no MembersFinder")
	}
	a, b := NewID(), NewID()
	mustUpdate(t, db, func(tx engine.Tx) error {
		return tx.PutMember(&engine.Member{ID: a, Status: engine.StatusActive, ExternalID: "k-a", Email: "a@example.com"})
	})
	mustUpdate(t, db, func(tx engine.Tx) error {
		f := tx.(engine.MembersFinder)
		if err := tx.PutMember(&engine.Member{ID: b, Status: engine.StatusActive, ExternalID: "k-b", Phone: "+15550100"}); err != nil {
			return err
		}
		for _, c := range []struct {
			key    string
			values []string
			want   []string
		}{
			{engine.KeyExternalID, []string{"k-a", "k-b", "k-none", ""}, []string{a, b}},
			{engine.KeyEmail, []string{"a@example.com", "b@example.com"}, []string{a}},
			{engine.KeyPhone, []string{"+15550100"}, []string{b}},
			{engine.KeyPhone, []string{""}, nil},
		} {
			ms, err := f.MembersByKeys(c.key, c.values)
			if err != nil {
				return err
			}
			got := map[string]bool{}
			for _, m := range ms {
				got[m.ID] = true
			}
			if len(got) != len(c.want) {
				t.Errorf("MembersByKeys(%s, %q) = %d members, want %v", c.key, c.values, len(ms), c.want)
			}
			for _, id := range c.want {
				if !got[id] {
					t.Errorf("MembersByKeys(%s, %q) misses %s", c.key, c.values, id)
				}
			}
		}
		return nil
	})
}
