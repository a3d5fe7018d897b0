package crashtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Kinds of write a till makes.
const (
	kindPurchase = "purchase"
	kindRefund   = "refund"
	kindRedeem   = "redeem"
	kindCancel   = "cancel"
)

// op is one write with its client id: the path and body are fixed when it
// is made, so every retry sends the very same request.
type op struct {
	kind   string
	id     string
	path   string
	body   []byte
	member *member
	// effect is what the write does to the balance once applied: + for a
	// purchase or a cancellation, - for a refund or a redemption.
	effect int64
	// entries is how many ledger entries the write adds (a refund that
	// takes back 0 points adds none).
	entries int
	// ledgerType and ledgerRef identify the ledger entry it adds.
	ledgerType, ledgerRef string

	purchase    *purchase // the purchase a refund is on
	refundCents int64     // what a refund refunds
	redemption  *op       // the redemption a cancellation undoes
	attempts    int
	acked       bool
	abandoned   bool // the till gave up on it before any answer
}

// purchase is the model of a recorded purchase.
type purchase struct {
	op            *op
	cents, points int64
	refundedCents int64
	takenPoints   int64
	// busy is set while a refund on the purchase is unanswered: what is
	// left to refund is then unknown, so no other refund is made on it.
	busy bool
}

// member is the model of one member. Each member belongs to one till, so
// its writes are sequential and the model knows its exact balance except
// for writes still unanswered.
type member struct {
	id        string
	balance   int64 // from acknowledged writes
	pending   []*op // abandoned writes not settled yet
	purchases []*purchase
	redeemed  []*op // acknowledged redemptions not cancelled
	ops       []*op
}

// lowBalance is the least the balance can be whatever became of the
// unanswered writes.
func (m *member) lowBalance() int64 {
	low := m.balance
	for _, o := range m.pending {
		if o.effect < 0 {
			low += o.effect
		}
	}
	return low
}

// figures are what a run did, for the report.
type figures struct {
	requests, retries, acked, replays, abandoned, refused, dropped atomic.Int64
	byKind                                                         [4]atomic.Int64
}

func kindIndex(k string) int {
	switch k {
	case kindPurchase:
		return 0
	case kindRefund:
		return 1
	case kindRedeem:
		return 2
	}
	return 3
}

func (f *figures) String() string {
	return fmt.Sprintf("requests %d, answers dropped %d, retries %d, acknowledged %d (purchases %d, refunds %d, redemptions %d, cancellations %d), replayed %d, given up then settled %d (of which refused for want of points %d)",
		f.requests.Load(), f.dropped.Load(), f.retries.Load(), f.acked.Load(), f.byKind[0].Load(), f.byKind[1].Load(), f.byKind[2].Load(), f.byKind[3].Load(),
		f.replays.Load(), f.abandoned.Load(), f.refused.Load())
}

var errDropped = errors.New("answer dropped")

// till is one simulated point-of-sale terminal.
type till struct {
	t *testing.T
	n int
	// urls are the servers; each attempt goes to the next, as behind a
	// round-robin load balancer, so a retry usually reaches another.
	urls    []string
	sent    int
	rnd     *rand.Rand
	client  *http.Client
	members []*member
	fig     *figures
	// giveUp is the chance that a till stops retrying a write after a
	// connection error, leaving it to be settled at the end.
	giveUp float64
	// drop is the chance that an answer is lost on its way back, as on a
	// flaky network: the till sees an error though the server applied the
	// write, which is what tests that a retry is not applied again.
	drop   float64
	seq    int
	failed bool
}

func newClient(keepAlive bool) *http.Client {
	return &http.Client{
		Timeout: 3 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: 4,
			DisableKeepAlives:   !keepAlive,
		},
	}
}

// run makes writes until stop is closed.
func (tl *till) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for !tl.failed {
		select {
		case <-stop:
			return
		default:
		}
		o := tl.next()
		o.member.ops = append(o.member.ops, o)
		tl.send(o, stop)
	}
}

func (tl *till) newID(prefix string) string {
	tl.seq++
	return fmt.Sprintf("%s-t%d-%d", prefix, tl.n, tl.seq)
}

// next picks the next write from the model, so that each is one the
// server must accept: refunds only on acknowledged purchases with
// something left, redemptions only within the lowest possible balance.
func (tl *till) next() *op {
	m := tl.members[tl.rnd.IntN(len(tl.members))]
	switch r := tl.rnd.IntN(100); {
	case r < 20:
		if p := tl.refundable(m); p != nil {
			return tl.refund(m, p)
		}
	case r < 35:
		if low := m.lowBalance(); low > 0 {
			return tl.redeem(m, 1+tl.rnd.Int64N(min(low, 30)))
		}
	case r < 42:
		if len(m.redeemed) > 0 {
			return tl.cancel(m, m.redeemed[tl.rnd.IntN(len(m.redeemed))])
		}
	}
	return tl.purchase(m)
}

func (tl *till) refundable(m *member) *purchase {
	var open []*purchase
	for _, p := range m.purchases {
		if !p.busy && p.refundedCents < p.cents {
			open = append(open, p)
		}
	}
	if len(open) == 0 {
		return nil
	}
	return open[tl.rnd.IntN(len(open))]
}

func money(cents int64) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (tl *till) purchase(m *member) *op {
	cents := 100 + tl.rnd.Int64N(9900)
	id := tl.newID("p")
	body := map[string]any{
		"id": id, "member_id": m.id, "store_id": "store1", "terminal_id": fmt.Sprintf("till%d", tl.n),
		"currency": "USD", "amount": money(cents),
	}
	if tl.rnd.IntN(2) == 0 {
		body["items"] = []map[string]any{{"sku": "SKU-1", "category": "coffee", "quantity": 1 + tl.rnd.IntN(3), "amount": money(cents / 2)}}
	}
	o := &op{kind: kindPurchase, id: id, path: "/v1/purchases", body: mustJSON(body), member: m,
		effect: cents / 100, entries: 1, ledgerType: "earn", ledgerRef: id}
	o.purchase = &purchase{op: o, cents: cents, points: cents / 100}
	return o
}

func (tl *till) refund(m *member, p *purchase) *op {
	id := tl.newID("f")
	left := p.cents - p.refundedCents
	body := map[string]any{"id": id}
	amount := left
	switch {
	case left > 1 && tl.rnd.IntN(2) == 0:
		amount = 1 + tl.rnd.Int64N(left-1)
		body["amount"] = money(amount)
	case tl.rnd.IntN(2) == 0:
		body["amount"] = money(amount)
	}
	// One rule, so the engine's cumulative rounding is the model's: the
	// refunds so far take back points * refunded / amount, and a full
	// refund all of it.
	cum := p.refundedCents + amount
	target := p.points * cum / p.cents
	taken := target - p.takenPoints
	o := &op{kind: kindRefund, id: id, path: "/v1/purchases/" + p.op.id + "/refunds", body: mustJSON(body), member: m,
		effect: -taken, ledgerType: "refund", ledgerRef: id, purchase: p, refundCents: amount}
	if taken > 0 {
		o.entries = 1
	}
	p.busy = true
	return o
}

func (tl *till) redeem(m *member, points int64) *op {
	id := tl.newID("r")
	body := mustJSON(map[string]any{"id": id, "points": points, "reward": "coffee"})
	return &op{kind: kindRedeem, id: id, path: "/v1/members/" + m.id + "/redemptions", body: body, member: m,
		effect: -points, entries: 1, ledgerType: "redeem", ledgerRef: id}
}

func (tl *till) cancel(m *member, r *op) *op {
	for i, x := range m.redeemed {
		if x == r {
			m.redeemed = append(m.redeemed[:i], m.redeemed[i+1:]...)
			break
		}
	}
	return &op{kind: kindCancel, id: "cancel-" + r.id, path: "/v1/redemptions/" + r.id + "/cancel", member: m,
		effect: -r.effect, entries: 1, ledgerType: "redeem_cancel", ledgerRef: r.id, redemption: r}
}

// fairRefusal tells whether refusing o for want of points is right. A
// redemption is only made when the lowest possible balance covers it, so
// at once it must be accepted; but one given up on and settled at the end
// may meet a balance that refunds made since have lowered. It is fair when
// even the highest possible balance now falls short.
func (tl *till) fairRefusal(o *op, code string) bool {
	if o.kind != kindRedeem || code != "insufficient_points" || !o.abandoned {
		return false
	}
	m := o.member
	high := m.balance
	for _, x := range m.pending {
		if x != o && x.effect > 0 {
			high += x.effect
		}
	}
	return high < -o.effect
}

// answer is the part of a write's answer the model checks.
type answer struct {
	Points  int64 `json:"points"`
	Balance struct {
		Available int64 `json:"available"`
	} `json:"balance"`
	Cancelled bool `json:"cancelled"`
	Error     *struct {
		Code, Message string
	} `json:"error"`
}

// send posts o until the server answers, retrying with the same id and
// body after a connection error or a timeout. It may give up (the write is
// then settled at the end), except once stop is closed, when the server
// is up for good and every write in hand is seen through.
func (tl *till) send(o *op, stop <-chan struct{}) {
	m := o.member
	backoff := 5 * time.Millisecond
	for {
		status, replayed, ans, err := tl.post(o)
		if err == nil && tl.rnd.Float64() < tl.drop {
			tl.fig.dropped.Add(1)
			err = errDropped
		}
		if err == nil && status != http.StatusServiceUnavailable {
			tl.settle(o, status, replayed, ans)
			return
		}
		stopping := false
		select {
		case <-stop:
			stopping = true
		default:
		}
		if !stopping && tl.rnd.Float64() < tl.giveUp {
			o.abandoned = true
			m.pending = append(m.pending, o)
			tl.fig.abandoned.Add(1)
			return
		}
		tl.fig.retries.Add(1)
		time.Sleep(backoff + time.Duration(tl.rnd.Int64N(int64(backoff))))
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// post sends o once.
func (tl *till) post(o *op) (status int, replayed bool, ans answer, err error) {
	o.attempts++
	tl.fig.requests.Add(1)
	url := tl.urls[tl.sent%len(tl.urls)]
	tl.sent++
	req, err := http.NewRequest(http.MethodPost, url+o.path, bytes.NewReader(o.body))
	if err != nil {
		return 0, false, ans, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := tl.client.Do(req)
	if err != nil {
		return 0, false, ans, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, false, ans, err
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return 0, false, ans, fmt.Errorf("answer %d is not JSON: %q", res.StatusCode, b)
	}
	return res.StatusCode, res.Header.Get("Idempotent-Replayed") == "true", ans, nil
}

// settle records a write the server answered, checking the answer against
// the model. Every write a till makes must be accepted.
func (tl *till) settle(o *op, status int, replayed bool, ans answer) {
	t := tl.t
	m := o.member
	fail := func(format string, args ...any) {
		tl.failed = true
		t.Errorf("till %d, %s %s (attempt %d): %s", tl.n, o.kind, o.id, o.attempts, fmt.Sprintf(format, args...))
	}
	want := http.StatusCreated
	if o.kind == kindCancel || replayed {
		want = http.StatusOK
	}
	switch {
	case ans.Error != nil && tl.fairRefusal(o, ans.Error.Code):
		// Not applied: the model drops it, and the ledger check proves
		// the server did not apply it either.
		o.effect, o.entries, ans.Points = 0, 0, 0
		tl.fig.refused.Add(1)
	case ans.Error != nil:
		fail("refused: %d %s: %s", status, ans.Error.Code, ans.Error.Message)
		return
	case status != want:
		fail("status %d, want %d (replayed %v)", status, want, replayed)
		return
	case replayed && o.attempts == 1:
		fail("the first attempt was answered as a replay")
		return
	}
	if ans.Error == nil && (ans.Points != o.effect || ans.Cancelled != (o.kind == kindCancel)) {
		fail("answer has %d points (cancelled %v), the model %d", ans.Points, ans.Cancelled, o.effect)
		return
	}
	if o.abandoned {
		for i, x := range m.pending {
			if x == o {
				m.pending = append(m.pending[:i], m.pending[i+1:]...)
				break
			}
		}
	}
	m.balance += o.effect
	if ans.Error == nil && !replayed && len(m.pending) == 0 && ans.Balance.Available != m.balance {
		fail("answer says balance %d, the model %d", ans.Balance.Available, m.balance)
	}
	o.acked = true
	if ans.Error != nil {
		return
	}
	tl.fig.acked.Add(1)
	tl.fig.byKind[kindIndex(o.kind)].Add(1)
	if replayed {
		tl.fig.replays.Add(1)
	}
	switch o.kind {
	case kindPurchase:
		m.purchases = append(m.purchases, o.purchase)
	case kindRefund:
		p := o.purchase
		p.busy = false
		p.refundedCents += o.refundCents
		p.takenPoints -= o.effect
	case kindRedeem:
		m.redeemed = append(m.redeemed, o)
	}
}
