package postgres

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

// TestStoredJSONKeys: jsonb keys follow the stored format, not Go's names
// nor omitempty: a field renamed in Go with a store tag keeps its old key,
// and nil and empty slices and maps read back as they were written.
func TestStoredJSONKeys(t *testing.T) {
	type inner struct {
		Renamed int64  `store:"name=Old"`
		Tagged  string `json:"tagged,omitempty"`
		Pinned  string `json:"new_key" store:"json=old_key"`
	}
	type outer struct {
		In    []inner
		Empty []int64
		Nil   []int64
		M     map[string]*inner
		At    time.Time
		Raw   []byte
		skip  int
		Dash  int `json:"-"`
	}
	v := outer{In: []inner{{Renamed: 7, Pinned: "p"}}, Empty: []int64{}, M: map[string]*inner{"a": {Tagged: "t"}, "b": nil},
		At: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Raw: []byte{0, 1}, skip: 1, Dash: 2}
	b, err := marshalStored(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Old":7`, `"tagged":""`, `"old_key":"p"`, `"Empty":[]`, `"Nil":null`, `"b":null`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	for _, bad := range []string{"Renamed", "new_key", "skip", "Dash"} {
		if strings.Contains(string(b), bad) {
			t.Errorf("%s has %s", b, bad)
		}
	}
	var got outer
	if err := unmarshalStored(b, &got); err != nil {
		t.Fatal(err)
	}
	v.skip, v.Dash = 0, 0
	if !reflect.DeepEqual(got, v) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, v)
	}
	if _, err := marshalStored(struct{ M map[int]int }{map[int]int{1: 1}}); err == nil {
		t.Error("a map with int keys was encoded")
	}
}

// TestDetailColumns: each record's column fields exist, so a field renamed
// in Go cannot leave its column unread, and every other field is in its
// detail.
func TestDetailColumns(t *testing.T) {
	for _, d := range []*detail{purchaseDetail, refundDetail, redemptionDetail, adjustmentDetail} {
		for _, name := range d.columns {
			if _, ok := d.t.FieldByName(name); !ok {
				t.Errorf("%s: column field %s does not exist", d.t, name)
			}
		}
		for _, name := range d.legacy {
			d.key(name) // panics on a field that does not exist
		}
	}
}

// TestFirstSchemaDetailsReadBack: rows the first version of the store
// wrote, whose detail columns used keys of their own (items,
// taken_by_rule…), read back whole.
func TestFirstSchemaDetailsReadBack(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, q := range []string{
		`INSERT INTO members (id, external_id, email, phone, name, birthday, referrer_id, status, enrolled_at,
		tier, tier_since, tier_by_promotion, points, debt, lifetime_earned, lifetime_spend, purchase_count, last_purchase_at, ledger_seq,
		points_redeemed, refunded_spend) VALUES ('m', '', '', '', '', '', '', 'active', $1, 'green', $1, false, 0, 0, 0, 0, 0, $1, 0, 0, 0)`,
		`INSERT INTO purchases (id, member_id, store_id, terminal_id, occurred_at, recorded_at, currency, amount, points, rules_version,
		earned_at_tier, request_hash, refunded_amount, refunded_points, detail) VALUES ('p', 'm', '', '', $1, $1, 'USD', 500, 5, 1, 'green', 'h', 0, 0,
		'{"items":[{"SKU":"A","Category":"c","Quantity":1,"Amount":500}],"breakdown":[{"Rule":"base","Points":5,"ItemPoints":null}],
		  "result":{"id":"p","member_id":"m","points":5,"breakdown":[],"rules_version":1,"balance":{"available":5,"pending":0},"tier":{"name":"green","changed":false}},
		  "refunds":["r"],"taken_by_rule":{"base":1},"taken_by_line":{"base":[1]},"refunded_qty":[1],"refunded_line_amount":[100],
		  "referral":{"ReferrerID":"x","ReferrerPoints":2,"RefereePoints":3}}')`,
		`INSERT INTO redemptions (id, member_id, at, points, reward, cancelled, cancelled_at, request_hash, detail)
		VALUES ('d', 'm', $1, 1, 'w', false, $1, 'h', '{"draws":[{"LotID":"l","Points":1}],"result":{"id":"d","points":1}}')`,
	} {
		if _, err := db.pool.Exec(ctx, q, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.View(ctx, func(tx engine.Tx) error {
		p, err := tx.Purchase("p")
		if err != nil {
			return err
		}
		if len(p.Items) != 1 || p.Items[0].SKU != "A" || len(p.Breakdown) != 1 || p.Result.Balance.Available != 5 ||
			len(p.Refunds) != 1 || p.TakenByRule["base"] != 1 || len(p.TakenByLine["base"]) != 1 || len(p.RefundedQty) != 1 ||
			len(p.RefundedLineAmt) != 1 || p.Referral == nil || p.Referral.RefereePoints != 3 || p.Result.Breakdown == nil {
			t.Errorf("first-schema purchase read back as %+v", p)
		}
		d, err := tx.Redemption("d")
		if err == nil && (len(d.Draws) != 1 || d.Draws[0].LotID != "l" || d.Result.ID != "d") {
			t.Errorf("first-schema redemption read back as %+v", d)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
