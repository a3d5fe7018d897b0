package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/storetesting"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/webhook"
)

var storeKind = storetesting.Bolt

func TestMain(m *testing.M) { os.Exit(storetesting.RunEach(m, &storeKind)) }

// verify checks a delivery by the Standard Webhooks specification alone,
// as a receiver would: the signed content is "id.timestamp.body", keyed
// by the base64-decoded secret after "whsec_", and any one of the
// space-separated "v1,<base64>" signatures may match. It returns how many
// of secrets signed it.
func verify(r *http.Request, body []byte, secrets ...string) int {
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return 0
	}
	if n, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(n, 0)).Abs() > 5*time.Minute {
		return 0
	}
	n := 0
	for _, secret := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil {
			continue
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "." + string(body)))
		want := mac.Sum(nil)
		for _, sig := range strings.Fields(r.Header.Get("webhook-signature")) {
			version, b64, _ := strings.Cut(sig, ",")
			got, err := base64.StdEncoding.DecodeString(b64)
			if version == "v1" && err == nil && hmac.Equal(got, want) {
				n++
				break
			}
		}
	}
	return n
}

// hit is one request a receiver got.
type hit struct {
	id, typ string
	at      time.Time
	signed  int // how many of the receiver's secrets signed it
	sigs    int // signatures in the header
	data    map[string]any
}

// receiver is an httptest server that verifies each delivery and answers
// with what answer says for the n-th request of an event id (from 1).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	secrets []string
	hits    []hit
	byID    map[string]int
	answer  func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t testing.TB, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{byID: map[string]int{}, answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		_ = json.Unmarshal(body, &b)
		rc.mu.Lock()
		id := r.Header.Get("webhook-id")
		rc.byID[id]++
		n := rc.byID[id]
		rc.hits = append(rc.hits, hit{id: id, typ: b.Type, at: time.Now(), signed: verify(r, body, rc.secrets...),
			sigs: len(strings.Fields(r.Header.Get("webhook-signature"))), data: b.Data})
		rc.mu.Unlock()
		if r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		if answer == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		answer(n, w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) setSecrets(s ...string) {
	rc.mu.Lock()
	rc.secrets = s
	rc.mu.Unlock()
}

func (rc *receiver) got() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// rig is an engine over a fresh store, with a worker delivering for it.
type rig struct {
	t  testing.TB
	db engine.Store
	e  *engine.Engine
}

func newRig(t testing.TB) *rig {
	return newRigWith(t, string(rules.Example))
}

// newRigWith runs the rules src, on a test clock.
func newRigWith(t testing.TB, src string) *rig {
	db := storetesting.Open(t, storeKind)
	e := engine.New(db, engine.Options{Clock: engine.NewTestClock(engine.SystemClock{}), Logger: slog.New(slog.DiscardHandler)})
	prog, err := rules.Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.LoadRules(t.Context(), prog, "file"); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, db: db, e: e}
}

// run starts a worker until the test ends.
func (r *rig) run(schedule ...time.Duration) {
	r.runWith(webhook.Options{Holder: "test", Timeout: 2 * time.Second, Schedule: schedule, Poll: 10 * time.Millisecond})
}

func (r *rig) runWith(opts webhook.Options) {
	ctx, cancel := context.WithCancel(context.Background())
	w := webhook.New(r.db, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	r.t.Cleanup(func() {
		cancel()
		<-done
	})
}

func (r *rig) hook(url string, events ...string) *engine.WebhookView {
	r.t.Helper()
	v, err := r.e.CreateWebhook(r.t.Context(), engine.WebhookInput{URL: &url, Events: &events})
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

func (r *rig) member() string {
	r.t.Helper()
	m, err := r.e.CreateMember(r.t.Context(), engine.MemberInput{})
	if err != nil {
		r.t.Fatal(err)
	}
	return m.ID
}

// waitFor polls cond until it holds; the bound only keeps a broken test
// from hanging, it is no assertion on speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *rig) delivery(hook string, status string) []engine.DeliveryView {
	r.t.Helper()
	p, err := r.e.WebhookDeliveries(r.t.Context(), hook, status, "", 500)
	if err != nil {
		r.t.Fatal(err)
	}
	return p.Deliveries
}

// Every event an endpoint subscribes to arrives once, signed, and none it
// does not.
func TestDeliversEverySubscribedEventSigned(t *testing.T) {
	r := newRig(t)
	rc := newReceiver(t, nil)
	h := r.hook(rc.URL, engine.EventMemberEnrolled, engine.EventPurchaseCreated)
	rc.setSecrets(h.Secret)
	if !strings.HasPrefix(h.Secret, "whsec_") {
		t.Fatalf("secret %q", h.Secret)
	}
	if key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h.Secret, "whsec_")); err != nil || len(key) != 32 {
		t.Fatalf("secret is not base64 of 32 bytes: %v %d", err, len(key))
	}
	r.run()
	var members []string
	for i := range 3 {
		m := r.member()
		members = append(members, m)
		if _, _, err := r.e.Purchase(t.Context(), engine.PurchaseRequest{ID: fmt.Sprint("p", i), MemberID: m, Currency: "USD", Amount: "10.00"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "six deliveries", func() bool { return len(r.delivery(h.ID, engine.DeliverySucceeded)) == 6 })
	hits := rc.got()
	types := map[string]int{}
	for _, x := range hits {
		types[x.typ]++
		if x.signed != 1 {
			t.Errorf("%s %s: signature does not verify", x.typ, x.id)
		}
	}
	if len(hits) != 6 || types[engine.EventMemberEnrolled] != 3 || types[engine.EventPurchaseCreated] != 3 {
		t.Errorf("got %d requests: %v", len(hits), types)
	}
	page, err := r.e.Events(t.Context(), "", engine.EventPurchaseCreated, 0)
	if err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	for _, ev := range page.Events {
		if rc.byID[ev.ID] != 1 {
			t.Errorf("event %s arrived %d times", ev.ID, rc.byID[ev.ID])
		}
	}
	rc.mu.Unlock()
	bought := map[any]bool{}
	for _, x := range hits {
		if x.typ == engine.EventPurchaseCreated {
			bought[x.data["member_id"]] = true
		}
	}
	for _, m := range members {
		if !bought[m] {
			t.Errorf("no purchase.created with member_id %s: %v", m, bought)
		}
	}
}

// A failing endpoint gets the same webhook-id on every attempt; after
// the last attempt the delivery is failed; one that recovers succeeds.
func TestRetriesThenFails(t *testing.T) {
	r := newRig(t)
	flaky := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 3 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	dead := newReceiver(t, func(int, http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	hf := r.hook(flaky.URL, engine.EventMemberEnrolled)
	hd := r.hook(dead.URL, engine.EventMemberEnrolled)
	r.run(10*time.Millisecond, 20*time.Millisecond)
	r.member()
	waitFor(t, "the flaky endpoint's success", func() bool { return len(r.delivery(hf.ID, engine.DeliverySucceeded)) == 1 })
	waitFor(t, "the dead endpoint's failure", func() bool { return len(r.delivery(hd.ID, engine.DeliveryFailed)) == 1 })
	for name, rc := range map[string]*receiver{"flaky": flaky, "dead": dead} {
		hits := rc.got()
		if len(hits) != 3 {
			t.Errorf("%s: %d attempts, want 3 (one and two retries)", name, len(hits))
		}
		for _, x := range hits {
			if x.id != hits[0].id {
				t.Errorf("%s: webhook-id %s, then %s", name, hits[0].id, x.id)
			}
		}
	}
	d := r.delivery(hd.ID, engine.DeliveryFailed)[0]
	if d.Attempts != 3 || d.LastError == "" || d.NextAttemptAt != nil || d.LastAttemptAt == nil {
		t.Errorf("failed delivery: %+v", d)
	}
	if s := r.delivery(hf.ID, "")[0]; s.Attempts != 3 || s.LastStatusCode != 200 {
		t.Errorf("succeeded delivery: %+v", s)
	}
}

// 410 disables the endpoint; 429 with Retry-After waits that long
// however short the schedule.
func TestGoneAndRetryAfter(t *testing.T) {
	r := newRig(t)
	gone := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
	busy := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	hg := r.hook(gone.URL, engine.EventMemberEnrolled)
	hb := r.hook(busy.URL, engine.EventMemberEnrolled)
	r.run(time.Millisecond, time.Millisecond)
	r.member()
	waitFor(t, "the endpoint disabled", func() bool {
		v, err := r.e.Webhook(t.Context(), hg.ID)
		return err == nil && v.Status == engine.WebhookDisabled
	})
	v, _ := r.e.Webhook(t.Context(), hg.ID)
	if v.DisabledReason == "" {
		t.Error("disabled without a reason")
	}
	waitFor(t, "the busy endpoint's success", func() bool { return len(r.delivery(hb.ID, engine.DeliverySucceeded)) == 1 })
	hits := busy.got()
	// The wait counts from when the first attempt began, a moment before
	// it arrived; the schedule alone would have retried after 1ms.
	if len(hits) != 2 || hits[1].at.Sub(hits[0].at) < 1500*time.Millisecond {
		t.Errorf("busy endpoint: %d attempts, %v apart; want 2, about the 2s it asked for", len(hits), hits[len(hits)-1].at.Sub(hits[0].at))
	}
	// Disabled, it gets nothing more, though the schedule would retry.
	n := len(gone.got())
	r.member()
	waitFor(t, "the busy endpoint's second event", func() bool { return len(r.delivery(hb.ID, engine.DeliverySucceeded)) == 2 })
	if got := len(gone.got()); got != n {
		t.Errorf("a disabled endpoint got %d more requests", got-n)
	}
}

// After a rotation both secrets sign; a receiver with either verifies.
// Replay sends a delivered event again under its id.
func TestRotationAndReplay(t *testing.T) {
	r := newRig(t)
	rc := newReceiver(t, nil)
	h := r.hook(rc.URL, engine.EventMemberEnrolled)
	r.run()
	r.member()
	waitFor(t, "the first delivery", func() bool { return len(rc.got()) == 1 })
	fresh, err := r.e.RotateWebhookSecret(t.Context(), h.ID, time.Now())
	if err != nil || fresh == h.Secret || !strings.HasPrefix(fresh, "whsec_") {
		t.Fatalf("rotate: %q %v", fresh, err)
	}
	rc.setSecrets(h.Secret, fresh)
	r.member()
	waitFor(t, "the second delivery", func() bool { return len(rc.got()) == 2 })
	if x := rc.got()[1]; x.sigs != 2 || x.signed != 2 {
		t.Errorf("after rotation: %d signatures, %d of the two secrets verify", x.sigs, x.signed)
	}
	if x := rc.got()[0]; x.sigs != 1 {
		t.Errorf("before rotation: %d signatures", x.sigs)
	}
	n, err := r.e.ReplayWebhook(t.Context(), h.ID, time.Time{})
	if err != nil || n != 2 {
		t.Fatalf("replay: %d %v", n, err)
	}
	waitFor(t, "the replays", func() bool { return len(rc.got()) == 4 })
	hits := rc.got()
	if hits[2].id != hits[0].id && hits[2].id != hits[1].id || hits[2].id == hits[3].id {
		t.Errorf("replayed ids: %s %s, first sent %s %s", hits[2].id, hits[3].id, hits[0].id, hits[1].id)
	}
	// A rotation an overlap ago signs with the new secret alone.
	if err := r.db.Update(t.Context(), func(tx engine.Tx) error {
		w, err := tx.Webhook(h.ID)
		if err != nil {
			return err
		}
		if got := w.Secrets(time.Now().Add(engine.SecretOverlap + time.Minute)); len(got) != 1 || got[0] != fresh {
			t.Errorf("secrets after the overlap: %v", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// An endpoint that never answers holds back neither another endpoint's
// deliveries nor purchases.
func TestSlowEndpointDelaysNoOther(t *testing.T) {
	r := newRig(t)
	release := make(chan struct{})
	var mu sync.Mutex
	inFlight, most := 0, 0
	slow := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		select {
		case <-release:
		case <-r.Context().Done(): // the attempt timed out
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	})
	t.Cleanup(func() { close(release) })
	fast := newReceiver(t, nil)
	r.hook(slow.URL, "*")
	hf := r.hook(fast.URL, engine.EventPurchaseCreated)
	r.run(time.Hour)
	m := r.member()
	for i := range 20 {
		if _, _, err := r.e.Purchase(t.Context(), engine.PurchaseRequest{ID: fmt.Sprint("p", i), MemberID: m, Currency: "USD", Amount: "1.00"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the fast endpoint's 20 deliveries", func() bool { return len(r.delivery(hf.ID, engine.DeliverySucceeded)) == 20 })
	mu.Lock()
	defer mu.Unlock()
	if len(slow.got()) == 0 || most > 4 {
		t.Errorf("the slow endpoint got %d requests, at most %d at once; want some, at most 4 (its bound)", len(slow.got()), most)
	}
}

// Pruning deletes old events up to the first one an enabled endpoint
// still lacks; once the endpoint is disabled, it holds nothing back.
func TestPruneKeepsWhatAnEndpointLacks(t *testing.T) {
	r := newRigWith(t, string(rules.Example)+"\nevents: {retention: 1h}\n")
	var mu sync.Mutex
	down := false
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	h := r.hook(rc.URL, engine.EventMemberEnrolled, engine.EventBonusGranted)
	r.run(time.Hour)
	r.member()
	waitFor(t, "the first member's events", func() bool { return len(r.delivery(h.ID, engine.DeliverySucceeded)) == 2 })
	mu.Lock()
	down = true
	mu.Unlock()
	r.member()
	waitFor(t, "the second member's first attempts", func() bool {
		ds := r.delivery(h.ID, engine.DeliveryPending)
		return len(ds) == 2 && ds[0].Attempts == 1 && ds[1].Attempts == 1
	})
	lacking := r.delivery(h.ID, engine.DeliveryPending)[0].Seq
	if _, err := r.e.MoveClock(t.Context(), engine.ClockRequest{Advance: "2h"}); err != nil {
		t.Fatal(err)
	}
	prune := func() int64 {
		t.Helper()
		run, err := r.e.RunJob(t.Context(), engine.JobPruneEvents)
		if err != nil || run.Error != "" {
			t.Fatalf("prune: %+v %v", run, err)
		}
		return run.Processed
	}
	// rules.published and the first member's two events.
	if n := prune(); n != 3 {
		t.Errorf("pruned %d events, want the 3 before the first the endpoint lacks", n)
	}
	page, err := r.e.Events(t.Context(), "", "", 0)
	if err != nil || len(page.Events) == 0 || page.Events[0].Seq != lacking {
		t.Fatalf("the feed after pruning starts at %+v, want seq %d", page.Events, lacking)
	}
	if ds := r.delivery(h.ID, ""); len(ds) != 2 || ds[0].Seq != lacking {
		t.Errorf("deliveries after pruning: %+v", ds)
	}
	disabled := engine.WebhookDisabled
	if _, err := r.e.UpdateWebhook(t.Context(), h.ID, engine.WebhookInput{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	if n := prune(); n != 2 {
		t.Errorf("pruned %d events with the endpoint disabled, want the last 2", n)
	}
	if page, err := r.e.Events(t.Context(), "", "", 0); err != nil || len(page.Events) != 0 {
		t.Errorf("feed: %+v %v", page, err)
	}
}

// An endpoint whose queue passes its bound is disabled rather than let
// it grow; every attempt's outcome is told.
func TestHopelessEndpointIsDisabled(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	outcomes := map[string]int{}
	h := r.hook("http://127.0.0.1:1/", "*")
	r.runWith(webhook.Options{Holder: "test", Schedule: []time.Duration{time.Hour}, Poll: 10 * time.Millisecond,
		MaxPending: 3, QueueCheck: 10 * time.Millisecond,
		Attempted: func(id, outcome string) {
			mu.Lock()
			defer mu.Unlock()
			if id == h.ID {
				outcomes[outcome]++
			}
		}})
	for range 3 {
		r.member()
	}
	waitFor(t, "the endpoint disabled", func() bool {
		v, err := r.e.Webhook(t.Context(), h.ID)
		return err == nil && v.Status == engine.WebhookDisabled
	})
	v, _ := r.e.Webhook(t.Context(), h.ID)
	if !strings.Contains(v.DisabledReason, "more than 3 deliveries pending") {
		t.Errorf("reason %q", v.DisabledReason)
	}
	q, err := r.e.WebhookQueues(t.Context(), 100)
	if err != nil || len(q) != 1 || q[0].Pending <= 3 || q[0].Oldest.IsZero() {
		t.Errorf("queues: %+v %v", q, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if outcomes[webhook.OutcomeDisabled] != 1 {
		t.Errorf("outcomes: %v", outcomes)
	}
}

// The worked example of docs/API.md ("Delivery") is what Sign gives, and
// what the spec's check accepts.
func TestSignatureExampleOfTheDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	const secret, id, ts = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "evt_2b4ab5f1d3c34f5e9a4c1f0e8d7c6b5a", 1764584100
	body := `{"type":"webhook.test","timestamp":"2026-12-01T10:15:00Z","data":{"webhook_id":"wh_1"}}`
	sig := webhook.Sign([]string{secret}, id, ts, []byte(body))
	for _, want := range []string{secret, id, strconv.Itoa(ts), "`" + body + "`", "`webhook-signature: " + sig + "`"} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/API.md lacks %s", want)
		}
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.Itoa(ts) + "." + body))
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); sig != want {
		t.Errorf("Sign = %s, the spec's check wants %s", sig, want)
	}
}

// A backlog left by an outage, waiting out a long retry, does not hide
// what comes after it: more than one page of pending deliveries are
// waiting when the endpoint recovers, and the events behind them and a
// new one are sent at once.
func TestBacklogHidesNoNewEvent(t *testing.T) {
	r := newRig(t)
	var down atomic.Bool
	down.Store(true)
	var sent atomic.Int64
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		sent.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	r.hook(rc.URL, engine.EventMemberEnrolled)
	const backlog = 1000 // one page of the worker's scan
	for range backlog {
		r.member()
	}
	r.run(time.Hour)
	waitFor(t, "a first attempt at each of the backlog", func() bool { return len(rc.got()) >= backlog })
	down.Store(false)
	for range 10 {
		r.member()
	}
	waitFor(t, "the events after the backlog", func() bool { return sent.Load() >= 10 })
	if n := sent.Load(); n != 10 {
		t.Errorf("%d sent after the outage, want the 10 new ones (the backlog waits an hour)", n)
	}
}

// A 410 on the last attempt the schedule allows still disables the
// endpoint: the receiver said it is gone, whatever the count.
func TestGoneOnTheLastAttempt(t *testing.T) {
	r := newRig(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusGone)
	})
	h := r.hook(rc.URL, engine.EventMemberEnrolled)
	r.run(time.Millisecond)
	r.member()
	waitFor(t, "the endpoint disabled", func() bool {
		v, err := r.e.Webhook(t.Context(), h.ID)
		return err == nil && v.Status == engine.WebhookDisabled
	})
	if n := len(rc.got()); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

// A replay that would queue more than the bound is refused rather than
// left for the worker to disable a healthy endpoint as hopeless.
func TestReplayPastTheBoundIsRefused(t *testing.T) {
	r := newRig(t)
	rc := newReceiver(t, nil)
	h := r.hook(rc.URL, engine.EventMemberEnrolled)
	r.run(time.Millisecond)
	for range 5 {
		r.member()
	}
	waitFor(t, "the five deliveries", func() bool { return len(r.delivery(h.ID, engine.DeliverySucceeded)) == 5 })
	bounded := engine.New(r.db, engine.Options{Logger: slog.New(slog.DiscardHandler), MaxPendingDeliveries: 3})
	_, err := bounded.ReplayWebhook(t.Context(), h.ID, time.Time{})
	var refusal *engine.Error
	if !errors.As(err, &refusal) || refusal.Code != engine.EUNPROCESSABLE || refusal.Info["max_pending"] != "3" {
		t.Fatalf("replay of 5 past a bound of 3: %v", err)
	}
	if got := r.delivery(h.ID, engine.DeliveryPending); len(got) != 0 {
		t.Errorf("a refused replay queued %d deliveries", len(got))
	}
	if n, err := r.e.ReplayWebhook(t.Context(), h.ID, time.Time{}); err != nil || n != 5 {
		t.Errorf("replay within the bound: %d %v", n, err)
	}
}
