package http_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

// fullDisk refuses every write the way bbolt does when the disk is full,
// while full is set.
type fullDisk struct {
	engine.Store
	full *atomic.Bool
}

func (d fullDisk) Update(ctx context.Context, fn func(engine.Tx) error) error {
	if d.full.Load() {
		return errors.New("store: update: write loyalty.db: no space left on device")
	}
	return d.Store.Update(ctx, fn)
}

// TestHealthzReportsFailingWrites fills the disk under a running server:
// /healthz must say so with 503 and why, and come back to 200 on its own
// once writes succeed, with no till writing (a load balancer would have
// taken the server out). Refused requests are not store failures.
func TestHealthzReportsFailingWrites(t *testing.T) {
	var full atomic.Bool
	s := newOpsServer(t, nil, func(st engine.Store) engine.Store { return fullDisk{st, &full} })
	id := s.enrol(`{"external_id": "card-1"}`)
	buy := func(n int) response {
		return s.do("POST", "/v1/purchases", `{"id": "p`+string(rune('0'+n))+`", "member_id": "`+id+`", "currency": "USD", "amount": "10.00"}`)
	}
	if r := s.do("POST", "/v1/members/"+id+"/redemptions", `{"id": "r1", "points": 1000}`); r.status != 422 {
		t.Fatalf("redemption above the balance: %d %s", r.status, r.body)
	}
	if h := s.do("GET", "/healthz", ""); h.status != 200 {
		t.Fatalf("healthz after a refused redemption: %d %s", h.status, h.body)
	}

	full.Store(true)
	if r := buy(1); r.status != 500 {
		t.Fatalf("purchase on a full disk: %d %s", r.status, r.body)
	}
	for range 2 {
		h := s.do("GET", "/healthz", "")
		if ans := h.json(t); h.status != 503 || ans["status"] != "failing" ||
			!strings.Contains(ans["reason"].(string), "no space left on device") || ans["since"] == nil {
			t.Fatalf("healthz while writes fail: %d %s", h.status, h.body)
		}
	}

	full.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for s.do("GET", "/healthz", "").status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("healthz did not recover on its own once writes succeed")
		}
		time.Sleep(100 * time.Millisecond)
	}

	full.Store(true)
	if r := buy(2); r.status != 500 {
		t.Fatalf("purchase on a full disk: %d %s", r.status, r.body)
	}
	full.Store(false)
	if r := buy(3); r.status != 201 {
		t.Fatalf("purchase once the disk has room: %d %s", r.status, r.body)
	}
	if h := s.do("GET", "/healthz", ""); h.status != 200 {
		t.Fatalf("healthz after a write succeeded: %d %s", h.status, h.body)
	}
}
