package engine

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/loyaltyhq/loyalty/rules"
)

// LatestTime is the latest time the engine's clock may show. The longest
// duration a rules file may name (100 years) added to it still fits the
// store's time keys, which end in 2262.
var LatestTime = time.Date(2150, 1, 1, 0, 0, 0, 0, time.UTC)

// Settings the engine keeps (Tx.Setting).
const (
	// settingClockOffset is the test clock's offset from its base clock,
	// in nanoseconds, so a restart keeps the time it had.
	settingClockOffset = "clock.offset"
	// settingLatestWrite is the engine time of the newest write (RFC 3339):
	// the latest time the stored records were stamped with, before which
	// the clock must never be moved.
	settingLatestWrite = "clock.latest_write"
)

// moveTo sets the clock to t, holding c.mu. The offset from the base may
// not overflow, nor t pass LatestTime.
func (c *TestClock) moveTo(field string, t time.Time) error {
	offset, ok := offsetTo(c.base.Now(), t)
	if !ok {
		return FieldErrorf(EINVALID, field, "would take the clock past %s, the latest time the engine runs at", LatestTime.Format(time.RFC3339))
	}
	c.offset = offset
	return nil
}

// offsetTo is the offset from base that shows t, if t is no later than
// LatestTime and the offset fits a Duration.
func offsetTo(base, t time.Time) (time.Duration, bool) {
	if t.After(LatestTime) {
		return 0, false
	}
	d := t.Sub(base)
	return d, d != math.MaxInt64 && d != math.MinInt64
}

// Offset is how far the clock is ahead of its base.
func (c *TestClock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// ClockRequest moves a TestClock: by advance, a duration in the rules
// file's syntax ("30d", "12mo", "1y", "36h") or Go's ("720h", "90m"), or
// to now, an RFC 3339 time.
type ClockRequest struct {
	Advance string `json:"advance,omitempty"`
	Now     string `json:"now,omitempty"`
}

// MoveClock moves the engine's TestClock forward and stores its offset, so
// a restart keeps the time. It refuses a clock that is not a TestClock, a
// move back, past LatestTime or to before the newest write, and answers
// the new time.
func (e *Engine) MoveClock(ctx context.Context, req ClockRequest) (time.Time, error) {
	tc, ok := e.clock.(*TestClock)
	if !ok {
		return time.Time{}, Errorf(EFORBIDDEN, "the clock can only be moved when the server runs with --test-clock")
	}
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	cur := tc.Now().UTC()
	var field string
	var target time.Time
	switch {
	case req.Advance != "" && req.Now != "":
		return time.Time{}, Errorf(EINVALID, "give advance or now, not both")
	case req.Advance != "":
		field = "advance"
		var err error
		if target, err = advanceFrom(cur, req.Advance); err != nil {
			return time.Time{}, err
		}
	case req.Now != "":
		field = "now"
		t, err := time.Parse(time.RFC3339Nano, req.Now)
		if err != nil {
			return time.Time{}, FieldErrorf(EINVALID, "now", "must be an RFC 3339 time")
		}
		target = t.UTC()
	default:
		return time.Time{}, Errorf(EINVALID, "give advance or now")
	}
	switch {
	case target.After(LatestTime):
		return time.Time{}, FieldErrorf(EINVALID, field, "would take the clock past %s, the latest time the engine runs at", LatestTime.Format(time.RFC3339))
	case target.Before(cur):
		return time.Time{}, FieldErrorf(EINVALID, field, "the clock only moves forward")
	}
	latest, err := e.latestWrite(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if target.Before(latest) {
		return time.Time{}, FieldErrorf(EINVALID, field, "would put the clock at %s, before the newest stored record (%s)",
			target.Format(time.RFC3339Nano), latest.Format(time.RFC3339Nano))
	}
	if err := e.storeClock(ctx, tc, target); err != nil {
		return time.Time{}, err
	}
	return e.Now(), nil
}

// advanceFrom reads an advance and adds it to cur.
func advanceFrom(cur time.Time, s string) (time.Time, error) {
	if d, err := rules.ParseDuration(s); err == nil {
		return d.AddTo(cur), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || strings.HasPrefix(s, "-") {
		return time.Time{}, FieldErrorf(EINVALID, "advance", "must be a duration like 30d, 12mo, 1y, 36h or 90m, forward")
	}
	if t := cur.Add(d); t.After(cur) || d == 0 {
		return t, nil
	}
	return time.Time{}, FieldErrorf(EINVALID, "advance", "would take the clock past %s, the latest time the engine runs at", LatestTime.Format(time.RFC3339))
}

// storeClock stores the offset that shows target, then sets tc to it: a
// clock the store could not remember is not moved. The caller holds
// e.clockMu, but not tc.mu: a write reads the clock.
func (e *Engine) storeClock(ctx context.Context, tc *TestClock, target time.Time) error {
	offset, ok := offsetTo(tc.base.Now(), target)
	if !ok {
		return Errorf(EINVALID, "the clock cannot show %s", target.Format(time.RFC3339Nano))
	}
	err := e.store.Update(ctx, func(tx Tx) error {
		return tx.PutSetting(settingClockOffset, strconv.AppendInt(nil, int64(offset), 10))
	})
	if err != nil {
		return err
	}
	tc.mu.Lock()
	tc.offset = max(tc.offset, offset)
	tc.mu.Unlock()
	return nil
}

// RestoreClock is for a starting server. A TestClock takes back the offset
// it had, and moves on to the newest write if that is later still (the
// wall clock went back, or the database was written by a clock further
// ahead), so time never runs back behind the records. Another clock is left
// alone; a warning says when the records are ahead of it.
func (e *Engine) RestoreClock(ctx context.Context) error {
	var offset time.Duration
	var latest time.Time
	err := e.store.View(ctx, func(tx Tx) error {
		v, err := tx.Setting(settingClockOffset)
		if err != nil || v == nil {
			return err
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return Errorf(EINTERNAL, "setting %s: %q is not a number of nanoseconds", settingClockOffset, v)
		}
		offset = time.Duration(n)
		return nil
	})
	if err == nil {
		latest, err = e.latestWrite(ctx)
	}
	if err != nil {
		return err
	}
	tc, ok := e.clock.(*TestClock)
	if !ok {
		if now := e.Now(); now.Before(latest) {
			e.log.Warn("the database holds records stamped later than the clock", "now", now, "latest_write", latest)
		}
		return nil
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.offset = max(tc.offset, offset)
	if now := tc.base.Now().Add(tc.offset); now.Before(latest) {
		if d, ok := offsetTo(tc.base.Now(), latest); ok {
			tc.offset = d
		}
		e.log.Warn("test clock moved on to the newest write", "from", now, "to", latest)
	}
	return nil
}

// latestWrite reads the engine time of the newest write; zero for none.
func (e *Engine) latestWrite(ctx context.Context) (time.Time, error) {
	var latest time.Time
	err := e.store.View(ctx, func(tx Tx) error {
		var err error
		latest, err = readLatestWrite(tx)
		return err
	})
	return latest, err
}

func readLatestWrite(tx Tx) (time.Time, error) {
	v, err := tx.Setting(settingLatestWrite)
	if err != nil || v == nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		return time.Time{}, Errorf(EINTERNAL, "setting %s: %q is not a time", settingLatestWrite, v)
	}
	return t, nil
}

// stampingStore keeps settingLatestWrite: every write function that
// succeeds ends by raising it to at least the engine time at which the
// write was queued, which is no earlier than any time the function stamped
// on its records. It rounds that time up to the next whole second, so the
// setting changes at most once a second: on a store where each command is
// its own transaction (PostgreSQL), one record written by every command
// would make them all queue for it. A function that fails does not stamp,
// so a refusal still writes nothing (Store.Update).
//
// The setting only ever grows, so a value this engine saw committed is a
// floor of what is stored now, on any server: a write queued before that
// floor needs neither to read the setting nor to raise it (known), which
// spares most writes a read of their own.
type stampingStore struct {
	Store
	clock Clock
	known *atomic.Int64 // Unix nanoseconds of a committed value, 0: none yet
}

func (s stampingStore) Update(ctx context.Context, fn func(Tx) error) error {
	at := s.clock.Now().UTC()
	if n := s.known.Load(); n != 0 && !at.After(time.Unix(0, n)) {
		return s.Store.Update(ctx, fn)
	}
	var seen time.Time
	err := s.Store.Update(ctx, func(tx Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		latest, err := readLatestWrite(tx)
		if err != nil {
			return err
		}
		seen = latest
		if !at.After(latest) {
			return nil
		}
		seen = at.Truncate(time.Second).Add(time.Second)
		return tx.PutSetting(settingLatestWrite, seen.AppendFormat(nil, time.RFC3339Nano))
	})
	if err == nil && seen.Year() < 2262 && seen.After(time.Unix(0, 0)) {
		for n := seen.UnixNano(); ; {
			old := s.known.Load()
			if old >= n || s.known.CompareAndSwap(old, n) {
				break
			}
		}
	}
	return err
}
