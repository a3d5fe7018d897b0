package store

import (
	"math"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/store/storetest"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// TestConformance runs the suite every engine.Store must pass.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) engine.Store { return MustOpenDB(t) })
}

func TestTimeKey(t *testing.T) {
	tests := []struct {
		t    time.Time
		want uint64
	}{
		{time.Time{}, 0},
		{time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), 0},
		{time.Unix(0, 0), 0},
		{time.Unix(0, 1), 1},
		{t0, uint64(t0.UnixNano())},
		{time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), math.MaxInt64},
	}
	for _, tt := range tests {
		if got := timeKey(tt.t); got != tt.want {
			t.Errorf("timeKey(%s) = %d, want %d", tt.t, got, tt.want)
		}
	}
}
