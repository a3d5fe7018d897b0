package engine_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/loyaltyhq/loyalty/engine"
)

// TestLotAndEntryIDsAreTheClocksTime: the ids of what a write creates are
// UUIDv7s of the engine clock's time (the test clock's stands apart from
// the system's), so the store can keep lots in the order of their ids. A
// member's id stays a random one.
func TestLotAndEntryIDsAreTheClocksTime(t *testing.T) {
	h := newHarness(t, exampleRules)
	m := h.enrol(engine.MemberInput{ExternalID: "card-1"})
	h.advance(1234567 * time.Microsecond)
	now := h.e.Now()
	h.buy("p1", m.ID, "23.40")

	if u, err := uuid.Parse(m.ID); err != nil || u.Version() != 4 {
		t.Errorf("member id %s: version %d (%v), want a random version 4", m.ID, u.Version(), err)
	}
	millis := func(id string) int64 {
		t.Helper()
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("id %s: version %d, variant %v (%v), want an RFC 9562 version 7", id, u.Version(), u.Variant(), err)
		}
		return int64(binary.BigEndian.Uint64(append([]byte{0, 0}, u[:6]...)))
	}
	// The enrolment bonus's entry and lot, then the purchase's.
	led := h.ledger(m.ID)
	if len(led) != 2 || led[0].Ref != "p1" || !led[0].At.Equal(now) || led[1].At.Equal(now) {
		t.Fatalf("ledger = %+v", led)
	}
	for _, e := range led {
		if got := millis(e.ID); got != e.At.UnixMilli() {
			t.Errorf("entry %s (%s) carries %d ms, want its time's %d", e.ID, e.Type, got, e.At.UnixMilli())
		}
	}
	var lots []*engine.Lot
	if err := h.db.View(h.ctx, func(tx engine.Tx) (err error) {
		lots, err = tx.Lots(m.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var bought bool
	for _, l := range lots {
		if got := millis(l.ID); got != l.EarnedAt.UnixMilli() {
			t.Errorf("lot %s carries %d ms, want its earning's %d", l.ID, got, l.EarnedAt.UnixMilli())
		}
		bought = bought || l.EarnedAt.Equal(now)
	}
	if len(lots) != 2 || !bought {
		t.Fatalf("lots = %+v, want the bonus's and one earned at %v", lots, now)
	}
}
