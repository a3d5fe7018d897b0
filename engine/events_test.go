package engine

import (
	"encoding/json"
	"testing"
	"time"
)

// TestViewEventOfAnOldNotice: an expiry notice stored before events had an
// id and a payload reads as an event of the catalogue, with an id that is
// the same on every read.
func TestViewEventOfAnOldNotice(t *testing.T) {
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	old := &Event{Seq: 7, Type: EventPointsExpiring, MemberID: "m1", At: at, Notice: map[string]string{"points": "120", "on": "2026-12-04"}}
	v := ViewEvent(old)
	var data expiringData
	if err := json.Unmarshal(v.Data, &data); err != nil {
		t.Fatal(err)
	}
	if v.ID != "evt_legacy_7" || v.Seq != 7 || !v.Timestamp.Equal(at) || data != (expiringData{MemberID: "m1", Points: 120, ExpiresOn: "2026-12-04"}) {
		t.Fatalf("view = %+v, data %s", v, v.Data)
	}
	if again := ViewEvent(old); again.ID != v.ID {
		t.Fatalf("the id changed between reads: %s, %s", v.ID, again.ID)
	}
	current := &Event{ID: newEventID(), Seq: 8, Type: EventPointsExpiring, At: at, Payload: []byte(`{"member_id":"m1","points":5,"expires_on":"2027-01-01"}`)}
	if v := ViewEvent(current); v.ID != current.ID || string(v.Data) != string(current.Payload) {
		t.Fatalf("view of a current event = %+v", v)
	}
}

// eventsTx keeps the events appended to it.
type eventsTx struct {
	Tx
	events []*Event
}

func (t *eventsTx) AppendEvent(e *Event) error {
	t.events = append(t.events, e)
	return nil
}

// TestWriterEmit: an event written by a command carries the command's
// time, the member, a fresh id and the data as its JSON payload.
func TestWriterEmit(t *testing.T) {
	at := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	tx := &eventsTx{}
	w := writer{tx: tx, now: at}
	data := expiringData{MemberID: "m1", Points: 120, ExpiresOn: "2026-12-04"}
	if err := w.emit(EventPointsExpiring, "m1", data); err != nil {
		t.Fatal(err)
	}
	if err := w.emit(EventPointsExpiring, "m1", data); err != nil {
		t.Fatal(err)
	}
	if len(tx.events) != 2 {
		t.Fatalf("%d events", len(tx.events))
	}
	e := tx.events[0]
	var got expiringData
	if err := json.Unmarshal(e.Payload, &got); err != nil || got != data {
		t.Fatalf("payload %s: %v", e.Payload, err)
	}
	if e.Type != EventPointsExpiring || e.MemberID != "m1" || !e.At.Equal(at) || e.ID == "" || e.ID == tx.events[1].ID {
		t.Fatalf("event %+v, then %+v", e, tx.events[1])
	}
	if err := w.emit(EventPointsExpiring, "m1", func() {}); err == nil {
		t.Fatal("data that is not JSON was emitted")
	}
}
