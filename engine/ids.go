package engine

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/google/uuid"
)

// maxIDMillis is the last instant a UUIDv7's 48-bit timestamp can hold.
const maxIDMillis = 1<<48 - 1

// NewTimeID returns a new UUIDv7 (RFC 9562) whose timestamp is t's Unix
// millisecond and whose other 74 bits are random, so an id minted later
// sorts later: the store keys a lot by its id in time order. t is given,
// not read, because the engine's time is its clock's (a test clock may be
// years off the system's, which uuid.NewV7 would read). An instant before
// 1970 gets timestamp 0 and one past the 48 bits the largest.
func NewTimeID(t time.Time) string {
	var ms uint64
	switch {
	case t.Before(time.UnixMilli(0)):
	case t.After(time.UnixMilli(maxIDMillis)):
		ms = maxIDMillis
	default:
		ms = uint64(t.UnixMilli())
	}
	u := uuid.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ms)
	copy(u[:6], b[2:])
	u[6] = 0x70 | u[6]&0x0f // version 7; uuid.New already set the variant
	return u.String()
}

// newIDs mints the n ids of the records one operation writes at now (lots
// and ledger entries). They share now's millisecond, so they are sorted:
// records written in the order of their ids then also follow one another
// in the store's keys. The random bits make them distinct.
func newIDs(now time.Time, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = NewTimeID(now)
	}
	slices.Sort(ids)
	return ids
}
