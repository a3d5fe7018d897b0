package engine

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/uuid"
)

// v7Millis reads id as RFC 9562 lays a UUIDv7 out, independently of how
// NewTimeID writes it: version 7, the RFC variant, and the first 48 bits
// the Unix milliseconds.
func v7Millis(t *testing.T, id string) uint64 {
	t.Helper()
	u, err := uuid.Parse(id)
	if err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	if u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		t.Fatalf("id %s: version %d, variant %v, want 7 and RFC 4122", id, u.Version(), u.Variant())
	}
	return binary.BigEndian.Uint64(append([]byte{0, 0}, u[:6]...))
}

func TestNewIDsCarryTheirInstantInOrder(t *testing.T) {
	now := time.Date(2026, 3, 2, 15, 0, 0, 123_456_789, time.UTC)
	const want = 1772463600123 // now's Unix milliseconds, the sub-millisecond part dropped
	ids := newIDs(now, 1000)
	if len(ids) != 1000 {
		t.Fatalf("%d ids, want 1000", len(ids))
	}
	for i, id := range ids {
		if ms := v7Millis(t, id); ms != want {
			t.Fatalf("id %s carries %d ms, want %d", id, ms, want)
		}
		// Increasing, so also distinct.
		if i > 0 && ids[i-1] >= id {
			t.Fatalf("ids %d and %d out of order: %s, %s", i-1, i, ids[i-1], id)
		}
	}
}

func TestNewTimeIDClampsToItsFortyEightBits(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		want uint64
	}{
		{time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), 0},
		{time.Unix(0, 0), 0},
		{time.UnixMilli(1<<48 - 1), 1<<48 - 1},
		{time.UnixMilli(1 << 48), 1<<48 - 1},
		{time.Date(200000, 1, 1, 0, 0, 0, 0, time.UTC), 1<<48 - 1},
	} {
		if got := v7Millis(t, NewTimeID(tc.at)); got != tc.want {
			t.Errorf("NewTimeID(%v) carries %d ms, want %d", tc.at, got, tc.want)
		}
	}
}
