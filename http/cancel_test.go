package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
)

// slowDiffRules pay by the item with an expression that takes a few tens
// of microseconds, so that replaying a few hundred purchases of 200 items
// takes seconds. Such rules need a budget above the default.
const slowDiffRules = `currency: USD
points:
  rounding: floor
limits:
  steps: 20000000
earn:
  - name: per-item
    for_each: item
    points: 'len(filter(1..300, # % 7 == 0)) * 0 + item.quantity'
`

// seedLongHistory posts n purchases of engine.MaxItems items each, straight
// through the engine.
func seedLongHistory(t *testing.T, e *engine.Engine, n int) {
	t.Helper()
	ctx := context.Background()
	m, err := e.CreateMember(ctx, engine.MemberInput{})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]engine.ItemRequest, engine.MaxItems)
	for i := range items {
		items[i] = engine.ItemRequest{SKU: fmt.Sprint("sku-", i), Category: "coffee", Quantity: 1, Amount: "0.10"}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				req := engine.PurchaseRequest{ID: fmt.Sprint("seed-", i), MemberID: m.ID, Currency: "USD", Amount: "20.00", Items: items}
				if _, _, err := e.Purchase(ctx, req); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func slowDiffBody(t *testing.T) string {
	b, err := json.Marshal(map[string]string{"old": slowDiffRules, "new": slowDiffRules, "last": "1d"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// requestsCounted reads the request counter of a route and status.
func (s *server) requestsCounted(method, route, status string) string {
	s.t.Helper()
	prefix := fmt.Sprintf(`loyalty_http_requests_total{method=%q,route=%q,status=%q} `, method, route, status)
	for _, line := range strings.Split(s.do("GET", "/metrics", "").String(), "\n") {
		if n, ok := strings.CutPrefix(line, prefix); ok {
			return n
		}
	}
	return "0"
}

// TestLongReadsStop posts a rules diff that takes seconds. When its client
// gives up, the diff must stop: its request is counted as 499 once the
// handler has returned, long before the replay could have finished (it
// would be counted 200 then). A diff that runs past RequestTimeout answers
// 503 unavailable.
func TestLongReadsStop(t *testing.T) {
	s := newOpsServer(t, nil, nil, func(c *lhttp.Config) { c.RequestTimeout = time.Second })
	seedLongHistory(t, s.e, 600)
	body := slowDiffBody(t)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := nethttp.NewRequestWithContext(ctx, "POST", s.url+"/v1/rules/diff", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	gone := make(chan error, 1)
	go func() {
		res, err := nethttp.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		gone <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-gone; err == nil {
		t.Fatal("the diff answered before its client gave up; seed a longer history")
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.requestsCounted("POST", "/v1/rules/diff", "499") != "1" {
		if s.requestsCounted("POST", "/v1/rules/diff", "200") != "0" {
			t.Fatal("the abandoned diff ran to the end")
		}
		if time.Now().After(deadline) {
			t.Fatal("the abandoned diff did not stop")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(s.log.String(), `msg="request stopped"`) {
		t.Fatal("the stop is not logged")
	}

	r := s.do("POST", "/v1/rules/diff", body)
	if code, _ := r.errorCode(t); r.status != 503 || code != "unavailable" || !strings.Contains(string(r.body), "longer than 1s") {
		t.Fatalf("a diff past the request timeout: %d %s", r.status, r.body)
	}
	if n := s.requestsCounted("POST", "/v1/rules/diff", "200"); n != "0" {
		t.Fatalf("%s diffs ran to the end", n)
	}
}
