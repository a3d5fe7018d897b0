package rules

import (
	"testing"
	"time"
)

// fuzzPrograms reach every variable an expression can read, with the
// arithmetic most likely to fail at run time: division, modulo, integer
// conversion, multiplication of large decimals, map and list access.
var fuzzPrograms = []string{
	string(Example),
	`currency: USD
timezone: Asia/Kolkata
tiers:
  metric: visits
  levels:
    - {name: basic, threshold: 0, multiplier: 0.333, bonus: 7, tags: [a, b]}
    - {name: vip, threshold: 10, multiplier: 99999999999.99, bonus: -3}
earn:
  - name: per-item
    for_each: item
    when: item.quantity > 0 && item.sku != "" && item.category in ["coffee", "beans"]
    points: item.amount / item.quantity * tier.multiplier + tier.bonus
    max_per_purchase: 1000
  - name: ratio
    when: purchase.amount > 0
    points: member.lifetime_spend / purchase.amount + member.clv * 0.01
  - name: counts
    points: len(purchase.items) * member.purchase_count % 7 + member.days_enrolled / 365
  - name: time
    when: purchase.hour >= 6 && purchase.weekday in ["Mon", "Sat"] && purchase.day < 29 && purchase.month != 2
    points: purchase.hour * purchase.day
  - name: member
    when: member.churn_risk || member.birthday_month == purchase.month || member.segment == "champions" || member.rfm startsWith "5"
    points: len(member.attributes) + len(member.id) + len(member.lifecycle) + len(purchase.store_id + purchase.terminal_id)
  - name: attributes
    when: member.attributes["store"] == purchase.store_id && member.tier == "vip"
    points: 5
    max_per_member: 3
    max_per_day: 1
`,
	`currency: JPY
points:
  rounding: ceil
earn:
  - name: all
    for_each: item
    points: item.amount * item.quantity * item.quantity
  - name: huge
    points: purchase.amount * purchase.amount * 1000000000
`,
}

// FuzzEarn feeds arbitrary purchases and members to compiled programs: an
// evaluation ends quickly with an error or a breakdown that adds up, and
// never panics.
func FuzzEarn(f *testing.F) {
	progs := make([]*Program, len(fuzzPrograms))
	for i, src := range fuzzPrograms {
		p, err := Parse("fuzz.yaml", []byte(src))
		if err != nil {
			f.Fatalf("program %d: %v", i, err)
		}
		progs[i] = p
	}
	f.Add(uint8(0), int64(2340), "USD", "store7", int64(1795442700), "LATTE-L", "coffee", int64(2), int64(980), "green", int64(1700000000), int64(3), int64(50000), 4, "store", "store7", false, int64(0), "champions", uint16(1))
	f.Add(uint8(1), int64(0), "", "", int64(-62135596800), "", "beans", int64(0), int64(-1), "vip", int64(253402300799), int64(-1), int64(-9223372036854775808), 13, "", "", true, int64(9223372036854775807), "", uint16(0))
	f.Add(uint8(2), int64(9223372036854775807), "JPY", "s", int64(0), "x", "", int64(1000000), int64(9223372036854775807), "", int64(0), int64(0), int64(0), 0, "k", "v", false, int64(-5), "", uint16(200))
	f.Fuzz(func(t *testing.T, prog uint8, amount int64, currency, store string, at int64, sku, category string, qty, itemAmount int64,
		tier string, enrolled, count, lifetime int64, bmonth int, key, value string, churn bool, clv int64, segment string, items uint16) {
		p := progs[int(prog)%len(progs)]
		in := EarnInput{
			Purchase: Purchase{Amount: amount, Currency: currency, StoreID: store, TerminalID: store, OccurredAt: time.Unix(at, 0)},
			Member: Member{ID: segment, Tier: tier, EnrolledAt: time.Unix(enrolled, 0), PurchaseCount: count, LifetimeSpend: lifetime,
				BirthdayMonth: bmonth, Attributes: map[string]string{key: value}, Segment: segment, Lifecycle: value,
				ChurnRisk: churn, CLV: clv, RFM: value},
			Uses: func(string) RuleUses {
				return RuleUses{Total: count, Day: count % 3, Month: count % 5, Year: count % 7}
			},
		}
		// Many lines at once too: the engine accepts up to 200.
		for i := range int(items % 257) {
			in.Purchase.Items = append(in.Purchase.Items, Item{SKU: sku, Category: category, Quantity: qty + int64(i), Amount: itemAmount - int64(i)})
		}
		start := time.Now()
		b, err := p.Earn(in)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("Earn took %s", took)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		var sum int64
		for _, r := range b.Rules {
			if r.Points <= 0 {
				t.Fatalf("rule %s listed with %d points", r.Rule, r.Points)
			}
			if r.ItemPoints != nil {
				var items int64
				for _, n := range r.ItemPoints {
					if n < 0 {
						t.Fatalf("rule %s gives an item %d points", r.Rule, n)
					}
					items += n
				}
				if items != r.Points || len(r.ItemPoints) != len(in.Purchase.Items) {
					t.Fatalf("rule %s: items add up to %d of %d points", r.Rule, items, r.Points)
				}
			}
			sum += r.Points
		}
		if sum != b.Total || b.Total < 0 {
			t.Fatalf("total %d, rules add up to %d", b.Total, sum)
		}
	})
}
