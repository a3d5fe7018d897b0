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
	v := viewEvent(old)
	var data expiringData
	if err := json.Unmarshal(v.Data, &data); err != nil {
		t.Fatal(err)
	}
	if v.ID != "evt_legacy_7" || v.Seq != 7 || !v.Timestamp.Equal(at) || data != (expiringData{MemberID: "m1", Points: 120, ExpiresOn: "2026-12-04"}) {
		t.Fatalf("view = %+v, data %s", v, v.Data)
	}
	if again := viewEvent(old); again.ID != v.ID {
		t.Fatalf("the id changed between reads: %s, %s", v.ID, again.ID)
	}
	current := &Event{ID: newEventID(), Seq: 8, Type: EventPointsExpiring, At: at, Payload: []byte(`{"member_id":"m1","points":5,"expires_on":"2027-01-01"}`)}
	if v := viewEvent(current); v.ID != current.ID || string(v.Data) != string(current.Payload) {
		t.Fatalf("view of a current event = %+v", v)
	}
}
