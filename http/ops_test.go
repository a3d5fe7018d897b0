package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/internal/storetesting"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
)

// simpleRules earn one point per whole dollar and expire after 30 days, so
// a test can work balances out by hand.
const simpleRules = `currency: USD
points:
  rounding: floor
  expiry:
    after: 30d
earn:
  - name: base
    points: purchase.amount
`

// syncBuffer is a log sink that concurrent handlers may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// opsServer is a server over simpleRules with metrics, backup, a test
// clock and a captured log; wrap, when set, wraps the store the engine
// sees, and configure changes the server's configuration.
type opsServer struct {
	*server
	db    engine.Store
	clock *engine.TestClock
	log   *syncBuffer
}

func newOpsServer(t *testing.T, keys *lhttp.Keys, wrap func(engine.Store) engine.Store, configure ...func(*lhttp.Config)) *opsServer {
	t.Helper()
	db := storetesting.Open(t, storeKind)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	clock := engine.NewTestClock(engine.SystemClock{})
	metrics := lhttp.NewMetrics(db.(interface{ Size() int64 }).Size)
	var st engine.Store = db
	if wrap != nil {
		st = wrap(db)
	}
	e := engine.New(st, engine.Options{Clock: clock, Logger: logger, Hooks: metrics.Hooks()})
	prog, err := rules.Parse("rules.yaml", []byte(simpleRules))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.LoadRules(t.Context(), prog, "file"); err != nil {
		t.Fatal(err)
	}
	cfg := lhttp.Config{Engine: e, Logger: logger, TestClock: clock, Keys: keys, Metrics: metrics}
	if bolt, ok := db.(*store.DB); ok {
		cfg.Backup = bolt.WriteTo
	}
	for _, c := range configure {
		c(&cfg)
	}
	srv := lhttp.NewServer(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	// After Open's cleanup is registered, so it runs first: the store's
	// own check and close come after.
	t.Cleanup(func() {
		srv.Shutdown(5 * time.Second)
		storetesting.Verify(t, db)
	})
	return &opsServer{server: &server{t: t, url: "http://" + ln.Addr().String(), e: e}, db: db, clock: clock, log: logs}
}

// TestHammerOneMember has 200 tills work on one member at once. The member
// starts with more points than all the redemptions together ask, so every
// redemption must be accepted: an insufficient_points answer would be a
// false positive. The balance must end where the answers say it must.
func TestHammerOneMember(t *testing.T) {
	s := newOpsServer(t, nil, nil)
	id := s.enrol(`{"external_id": "card-1"}`)
	if r := s.do("POST", "/v1/purchases", `{"id": "seed", "member_id": "`+id+`", "currency": "USD", "amount": "5000.00"}`); r.status != 201 {
		t.Fatalf("seed purchase: %d %s", r.status, r.body)
	}
	const workers = 200
	client := &nethttp.Client{Timeout: 30 * time.Second, Transport: &nethttp.Transport{MaxIdleConnsPerHost: workers}}
	post := func(path string, body any) (int, map[string]any, error) {
		var rd io.Reader = strings.NewReader("")
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		res, err := client.Post(s.url+path, "application/json", rd)
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		var ans map[string]any
		if err := json.NewDecoder(res.Body).Decode(&ans); err != nil {
			return res.StatusCode, nil, err
		}
		return res.StatusCode, ans, nil
	}
	var (
		mu    sync.Mutex
		total int64 = 5000
		wg    sync.WaitGroup
	)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			var net int64
			step := func(want int, path string, body any) (int64, bool) {
				status, ans, err := post(path, body)
				if err != nil || status != want {
					errs <- fmt.Errorf("worker %d: POST %s: %d %v %v", w, path, status, ans, err)
					return 0, false
				}
				return int64(ans["points"].(float64)), true
			}
			cents := 100 + rnd.Int64N(9900)
			pid := fmt.Sprintf("p-%d", w)
			pts, ok := step(201, "/v1/purchases", map[string]any{"id": pid, "member_id": id, "currency": "USD", "amount": fmt.Sprintf("%d.%02d", cents/100, cents%100)})
			if !ok || pts != cents/100 {
				errs <- fmt.Errorf("worker %d: purchase earned %d, want %d", w, pts, cents/100)
				return
			}
			net += pts
			for i := range 2 {
				rid := fmt.Sprintf("r-%d-%d", w, i)
				pts, ok := step(201, "/v1/members/"+id+"/redemptions", map[string]any{"id": rid, "points": 1 + rnd.IntN(5)})
				if !ok {
					return
				}
				net += pts
				if i == 0 && rnd.IntN(2) == 0 {
					back, ok := step(200, "/v1/redemptions/"+rid+"/cancel", nil)
					if !ok {
						return
					}
					net += back
				}
			}
			part := 1 + rnd.Int64N(cents-1)
			taken, ok := step(201, "/v1/purchases/"+pid+"/refunds", map[string]any{"id": pid + "-f1", "amount": fmt.Sprintf("%d.%02d", part/100, part%100)})
			if !ok || taken != -((cents/100)*part/cents) {
				errs <- fmt.Errorf("worker %d: partial refund took %d, want %d", w, taken, -((cents / 100) * part / cents))
				return
			}
			net += taken
			rest, ok := step(201, "/v1/purchases/"+pid+"/refunds", map[string]any{"id": pid + "-f2"})
			if !ok {
				return
			}
			net += rest
			if net > 0 {
				errs <- fmt.Errorf("worker %d: a fully refunded purchase left %d points", w, net)
			}
			mu.Lock()
			total += net
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var bal struct{ Available int64 }
	if err := json.Unmarshal(s.do("GET", "/v1/members/"+id+"/balance", "").body, &bal); err != nil {
		t.Fatal(err)
	}
	if bal.Available != total {
		t.Fatalf("balance %d, the answers add up to %d", bal.Available, total)
	}
}

// panicStore panics on every read, standing in for a bug anywhere below a
// handler.
type panicStore struct{ engine.Store }

func (panicStore) View(context.Context, func(engine.Tx) error) error { panic("boom") }

func TestPanicBecomesInternal(t *testing.T) {
	s := newOpsServer(t, nil, func(st engine.Store) engine.Store { return panicStore{st} })
	req, _ := nethttp.NewRequest("GET", s.url+"/v1/members/someone", nil)
	req.Header.Set("X-Request-Id", "req-panic-1")
	res, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	r := response{status: res.StatusCode, header: res.Header, body: b}
	if code, _ := r.errorCode(t); r.status != 500 || code != "internal" || !strings.Contains(string(b), "req-panic-1") {
		t.Fatalf("panic answered %d %s", r.status, b)
	}
	if res.Header.Get("X-Request-Id") != "req-panic-1" {
		t.Fatalf("X-Request-Id %q", res.Header.Get("X-Request-Id"))
	}
	logs := s.log.String()
	if !regexp.MustCompile(`level=ERROR msg="request failed" request_id=req-panic-1 .*panic: boom`).MatchString(logs) {
		t.Fatalf("the panic is not logged with its request id:\n%s", logs)
	}
	if h := s.do("GET", "/healthz", ""); h.status != 200 {
		t.Fatalf("after a panic /healthz answers %d", h.status)
	}
}

func TestMetricsAndAccessLog(t *testing.T) {
	keys, err := lhttp.NewKeys([]lhttp.Key{{Name: "ops", Key: "admin-key-0123456789", Role: "admin"}})
	if err != nil {
		t.Fatal(err)
	}
	s := newOpsServer(t, keys, nil)
	s.key = "admin-key-0123456789"
	id := s.enrol(`{"external_id": "card-1"}`)
	for _, step := range []struct{ path, body string }{
		{"/v1/purchases", `{"id": "p1", "member_id": "` + id + `", "currency": "USD", "amount": "40.00"}`},
		{"/v1/purchases", `{"id": "p1", "member_id": "` + id + `", "currency": "USD", "amount": "40.00"}`},
		{"/v1/purchases/p1/refunds", `{"id": "f1", "amount": "10.00"}`},
		{"/v1/members/" + id + "/redemptions", `{"id": "r1", "points": 7}`},
	} {
		if r := s.do("POST", step.path, step.body); r.status/100 != 2 {
			t.Fatalf("POST %s: %d %s", step.path, r.status, r.body)
		}
	}
	if err := s.clock.Advance(31 * 24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if r := s.do("POST", "/v1/jobs/expire-points/run", ""); r.status != 200 {
		t.Fatalf("expire: %d %s", r.status, r.body)
	}
	s.do("GET", "/v1/members/"+id, "")
	s.do("GET", "/v1/nowhere", "")
	s.key = ""
	m := s.do("GET", "/metrics", "")
	if m.status != 200 || !strings.HasPrefix(m.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", m.status, m.header.Get("Content-Type"))
	}
	text := string(m.body)
	for _, want := range []string{
		`loyalty_http_requests_total{method="POST",route="/v1/purchases",status="201"} 1`,
		`loyalty_http_requests_total{method="POST",route="/v1/purchases",status="200"} 1`,
		`loyalty_http_requests_total{method="GET",route="/v1/members/:id",status="200"} 1`,
		`loyalty_http_requests_total{method="GET",route="unknown",status="404"} 1`,
		`loyalty_http_request_duration_seconds_bucket{method="POST",route="/v1/purchases",le="+Inf"} 2`,
		"loyalty_purchases_total 1\n",
		`loyalty_points_earned_total{kind="purchase"} 40` + "\n",
		"loyalty_points_refunded_total 10\n",
		"loyalty_points_redeemed_total 7\n",
		"loyalty_points_expired_total 23\n",
		`loyalty_job_runs_total{job_name="expire-points",result="ok"} 1`,
		`loyalty_job_duration_seconds_count{job_name="expire-points"} 1`,
		"loyalty_db_size_bytes ",
		"go_goroutines ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
	if strings.Contains(text, id) {
		t.Errorf("/metrics shows a member id: routes must be patterns")
	}
	logs := s.log.String()
	line := regexp.MustCompile(`level=INFO msg=request method=POST route=/v1/purchases status=201 duration=\S+ request_id=\S+`)
	if n := len(line.FindAllString(logs, -1)); n != 1 {
		t.Errorf("%d access log lines for the new purchase, want 1:\n%s", n, logs)
	}
	if strings.Contains(logs, "admin-key-0123456789") || strings.Contains(logs, "Bearer") {
		t.Errorf("the log shows the API key:\n%s", logs)
	}
}

func TestBackupEndpoint(t *testing.T) {
	storetesting.BoltOnly(t, storeKind)
	keys, err := lhttp.NewKeys([]lhttp.Key{
		{Name: "ops", Key: "admin-key-0123456789", Role: "admin"},
		{Name: "till", Key: "pos-key-0123456789ab", Role: "pos"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := newOpsServer(t, keys, nil)
	s.key = "pos-key-0123456789ab"
	id := s.enrol(`{"external_id": "card-1"}`)
	if r := s.do("POST", "/v1/purchases", `{"id": "p1", "member_id": "`+id+`", "currency": "USD", "amount": "12.00"}`); r.status != 201 {
		t.Fatalf("purchase: %d %s", r.status, r.body)
	}
	if r := s.do("GET", "/v1/admin/backup", ""); r.status != 403 {
		t.Fatalf("a pos key backed up: %d", r.status)
	}
	s.key = "admin-key-0123456789"
	r := s.do("GET", "/v1/admin/backup", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/octet-stream" ||
		!regexp.MustCompile(`^attachment; filename="loyalty-\d{8}T\d{6}Z\.db"$`).MatchString(r.header.Get("Content-Disposition")) {
		t.Fatalf("backup: %d %v", r.status, r.header)
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, r.body, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := store.DefaultOptions()
	opts.ReadOnly = true
	cp, err := store.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var out bytes.Buffer
	if n, err := cp.Check(&out); n > 0 || err != nil {
		t.Fatalf("the copy: %d problems, %v\n%s", n, err, out.String())
	}
	var found bool
	if err := cp.View(t.Context(), func(tx engine.Tx) error {
		p, err := tx.Purchase("p1")
		found = p != nil
		return err
	}); err != nil || !found {
		t.Fatalf("the copy lacks the purchase: %v", err)
	}
}

// TestLimits checks that oversized input is refused as invalid, each limit
// with the field it concerns, and that a client's request id is only
// echoed when it is of a sane length.
func TestLimits(t *testing.T) {
	s := newOpsServer(t, nil, nil)
	id := s.enrol(`{"external_id": "card-1"}`)
	if r := s.do("POST", "/v1/purchases", `{"id": "p1", "member_id": "`+id+`", "currency": "USD", "amount": "50.00"}`); r.status != 201 {
		t.Fatalf("purchase: %d %s", r.status, r.body)
	}
	items := strings.Repeat(`{"sku": "a", "quantity": 1, "amount": "0.01"},`, engine.MaxItems+1)
	long := strings.Repeat("x", engine.MaxIDLen+1)
	cases := []struct{ name, path, body, field string }{
		{"too many items", "/v1/purchases", `{"id": "p2", "member_id": "` + id + `", "currency": "USD", "amount": "50.00", "items": [` + strings.TrimSuffix(items, ",") + `]}`, "items"},
		{"long sku", "/v1/purchases", `{"id": "p2", "member_id": "` + id + `", "currency": "USD", "amount": "50.00", "items": [{"sku": "` + long + `", "quantity": 1, "amount": "1.00"}]}`, "items[0].sku"},
		{"long store", "/v1/purchases", `{"id": "p2", "member_id": "` + id + `", "store_id": "` + long + `", "currency": "USD", "amount": "1.00"}`, "store_id"},
		{"huge quantity", "/v1/purchases", `{"id": "p2", "member_id": "` + id + `", "currency": "USD", "amount": "50.00", "items": [{"sku": "a", "quantity": 1000001, "amount": "1.00"}]}`, "items[0].quantity"},
		{"long refund id", "/v1/purchases/p1/refunds", `{"id": "` + long + `"}`, "id"},
		{"too many refund items", "/v1/purchases/p1/refunds", `{"id": "f1", "items": [` + strings.TrimSuffix(items, ",") + `]}`, "items"},
		{"long reward", "/v1/members/" + id + "/redemptions", `{"id": "r1", "points": 1, "reward": "` + strings.Repeat("x", engine.MaxTextLen+1) + `"}`, "reward"},
	}
	for _, tc := range cases {
		r := s.do("POST", tc.path, tc.body)
		if code, field := r.errorCode(t); r.status != 400 || code != "invalid" || field != tc.field {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
	for _, tc := range []struct {
		sent string
		echo bool
	}{{"till-7-42", true}, {strings.Repeat("r", 129), false}} {
		req, _ := nethttp.NewRequest("GET", s.url+"/healthz", nil)
		req.Header.Set("X-Request-Id", tc.sent)
		res, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("X-Request-Id"); (got == tc.sent) != tc.echo || got == "" {
			t.Errorf("sent request id %.20q…, got %q", tc.sent, got)
		}
	}
}
