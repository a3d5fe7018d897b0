package engine_test

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
)

func (h *harness) cardLink(member string, ttl time.Duration) *engine.CardLink {
	h.t.Helper()
	l, err := h.e.IssueCardLink(h.ctx, member, ttl)
	if err != nil {
		h.t.Fatalf("card link: %v", err)
	}
	return l
}

func wantNoCard(t *testing.T, e *engine.Engine, token, why string) {
	t.Helper()
	id, err := e.CardMember(context.Background(), token)
	if engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Errorf("%s: CardMember = %q, %v; want not_found", why, id, err)
		return
	}
	if msg := err.Error(); strings.Contains(msg, "expired") || strings.Contains(msg, "member") {
		t.Errorf("%s: the refusal says why (%q); it should say nothing", why, msg)
	}
}

// TestCardLinkOpensItsMemberOnly: a token names its member; any change to
// its payload or its signature, or a payload moved under another member's
// signature, is refused with one answer that says nothing.
func TestCardLinkOpensItsMemberOnly(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	ana := h.enrol(engine.MemberInput{Name: "Ana"}).ID
	bob := h.enrol(engine.MemberInput{Name: "Bob"}).ID
	la, lb := h.cardLink(ana, time.Hour), h.cardLink(bob, time.Hour)
	if got, err := h.e.CardMember(h.ctx, la.Token); err != nil || got != ana {
		t.Fatalf("Ana's token opens %q, %v", got, err)
	}
	if got, err := h.e.CardMember(h.ctx, lb.Token); err != nil || got != bob {
		t.Fatalf("Bob's token opens %q, %v", got, err)
	}
	if want := start.Add(time.Hour); !la.ExpiresAt.Equal(want) {
		t.Errorf("expires at %s, want %s", la.ExpiresAt, want)
	}

	pa, sa, _ := strings.Cut(la.Token, ".")
	pb, sb, _ := strings.Cut(lb.Token, ".")
	enc := base64.RawURLEncoding
	raw, _ := enc.DecodeString(pa)
	longer := append([]byte{}, raw...)
	longer[1]++ // a later expiry
	flipped := []byte(sa)
	flipped[3] ^= 1
	for why, token := range map[string]string{
		"Ana's payload under Bob's signature": pa + "." + sb,
		"Bob's payload under Ana's signature": pb + "." + sa,
		"a later expiry":                      enc.EncodeToString(longer) + "." + sa,
		"another member id":                   enc.EncodeToString(append(raw[:9:9], bob...)) + "." + sa,
		"a signature with a bit flipped":      pa + "." + string(flipped),
		"a truncated signature":               pa + "." + sa[:10],
		"the signature's spare bits set":      pa + "." + spareBit(sa),
		"no signature":                        pa,
		"not base64":                          "**." + sa,
		"empty":                               "",
	} {
		wantNoCard(t, h.e, token, why)
	}
}

// spareBit sets the lowest bit of the last character of a 32-byte value in
// unpadded base64: a bit that carries no data (43 characters hold 258
// bits), which a lax decoder ignores.
func spareBit(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[i^1])
}

// TestCardLinkExpires: a token works until its expiry on the engine's
// clock, and not from then on.
func TestCardLinkExpires(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	m := h.enrol(engine.MemberInput{}).ID
	l := h.cardLink(m, 48*time.Hour)
	h.advance(48*time.Hour - time.Second)
	if _, err := h.e.CardMember(h.ctx, l.Token); err != nil {
		t.Fatalf("a second before its expiry: %v", err)
	}
	h.advance(time.Second)
	wantNoCard(t, h.e, l.Token, "at its expiry")
}

// TestCardLinkTTL: the lifetime is bounded, and read as Go or the rules
// file writes a duration.
func TestCardLinkTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 720 * time.Hour, "720h": 720 * time.Hour, "30d": 720 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := engine.CardLinkTTL(in); err != nil || got != want {
			t.Errorf("CardLinkTTL(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"30s", "400d", "2y", "1mo", "soon", "-1h"} {
		if _, err := engine.CardLinkTTL(in); engine.ErrorCode(err) != engine.EINVALID {
			t.Errorf("CardLinkTTL(%q): %v, want invalid", in, err)
		}
	}
	h := newHarness(t, rewardTestRules)
	if _, err := h.e.IssueCardLink(h.ctx, "nobody", time.Hour); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Errorf("a link for nobody: %v", err)
	}
	m := h.enrol(engine.MemberInput{}).ID
	if _, err := h.e.IssueCardLink(h.ctx, m, 400*24*time.Hour); engine.ErrorCode(err) != engine.EINVALID {
		t.Errorf("a link for 400 days: %v", err)
	}
}

// TestCardLinkSecretSurvivesRestart: the secret is kept in the database,
// so an engine started again on it (another server, a restart) accepts the
// links issued before, and one on another database accepts none.
func TestCardLinkSecretSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loyalty.db")
	prog, err := rules.Parse("rules.yaml", []byte(rewardTestRules))
	if err != nil {
		t.Fatal(err)
	}
	clock := engine.NewTestClock(&fixedClock{t: start})
	open := func(path string) (*store.DB, *engine.Engine) {
		db, err := store.Open(path, store.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		e := engine.New(db, engine.Options{Clock: clock})
		if _, err := e.LoadRules(context.Background(), prog, "test"); err != nil {
			t.Fatal(err)
		}
		return db, e
	}
	ctx := context.Background()
	db, e := open(path)
	m, err := e.CreateMember(ctx, engine.MemberInput{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.IssueCardLink(ctx, m.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, e = open(path)
	defer db.Close()
	if got, err := e.CardMember(ctx, first.Token); err != nil || got != m.ID {
		t.Fatalf("after a restart the link opens %q, %v", got, err)
	}
	clock.Advance(time.Second)
	second, err := e.IssueCardLink(ctx, m.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, sig1, _ := strings.Cut(first.Token, ".")
	if _, err := e.CardMember(ctx, second.Token); err != nil {
		t.Fatalf("a link issued after the restart: %v", err)
	}
	if strings.HasSuffix(second.Token, sig1) {
		t.Fatal("two links of different expiries have one signature")
	}

	other, oe := open(filepath.Join(t.TempDir(), "other.db"))
	defer other.Close()
	wantNoCard(t, oe, first.Token, "on a database without a secret")
	om, err := oe.CreateMember(ctx, engine.MemberInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oe.IssueCardLink(ctx, om.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	wantNoCard(t, oe, first.Token, "on a database with another secret")
}

// TestCardPage: the page of a token holds its member's balance, the
// rewards they can take, and their coupons still to use.
func TestCardPage(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	m := h.enrol(engine.MemberInput{Name: "Ana"}).ID
	h.buy("p1", m, "70.00")
	code := h.mustTake(m, "t1", "coffee")
	link := h.cardLink(m, time.Hour)
	page, err := h.e.Card(h.ctx, link.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !page.ExpiresAt.Equal(link.ExpiresAt) {
		t.Errorf("the page says the link expires at %s, it was issued until %s", page.ExpiresAt, link.ExpiresAt)
	}
	if page.Member.Name != "Ana" || page.Balance.Available != 40 || page.Currency != "USD" {
		t.Errorf("page: member %+v, balance %+v, currency %s", page.Member, page.Balance, page.Currency)
	}
	if len(page.Coupons) != 1 || page.Coupons[0].Code != code {
		t.Errorf("coupons: %+v, want %s", page.Coupons, code)
	}
	avail := map[string]bool{}
	for _, r := range page.Rewards {
		avail[r.Name] = r.Available
	}
	if !avail["coffee"] || avail["sold-out"] {
		t.Errorf("rewards available: %v", avail)
	}
}

// TestCardSecretMadeOnce: servers sharing a database that issue their
// first links at the same time agree on one secret, so every link works on
// every server.
func TestCardSecretMadeOnce(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	m := h.enrol(engine.MemberInput{}).ID
	prog, err := rules.Parse("rules.yaml", []byte(rewardTestRules))
	if err != nil {
		t.Fatal(err)
	}
	servers := []*engine.Engine{h.e}
	for range 3 {
		e := engine.New(h.db, engine.Options{Clock: h.clock})
		if _, err := e.LoadRules(h.ctx, prog, "test"); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, e)
	}
	tokens := make([]string, 8)
	errs := make(chan error, len(tokens))
	for i := range tokens {
		go func() {
			l, err := servers[i%len(servers)].IssueCardLink(h.ctx, m, time.Hour)
			if err == nil {
				tokens[i] = l.Token
			}
			errs <- err
		}()
	}
	for range tokens {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, token := range tokens {
		for j, e := range servers {
			if got, err := e.CardMember(h.ctx, token); err != nil || got != m {
				t.Errorf("server %d's link on server %d: %q, %v", i%len(servers), j, got, err)
			}
		}
	}
}

// TestCardOfAGoneMember: the links of an erased or merged member show no
// card, the same not_found as a bad token.
func TestCardOfAGoneMember(t *testing.T) {
	h := newHarness(t, rewardTestRules)
	ana := h.enrol(engine.MemberInput{Name: "Ana"}).ID
	bob := h.enrol(engine.MemberInput{Name: "Bob"}).ID
	la, lb := h.cardLink(ana, time.Hour), h.cardLink(bob, time.Hour)
	if _, err := h.e.Card(h.ctx, la.Token); err != nil {
		t.Fatalf("Ana's card before: %v", err)
	}
	if _, err := h.e.Merge(h.ctx, ana, engine.MergeRequest{From: bob}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Card(h.ctx, lb.Token); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Errorf("the merged member's card: %v", err)
	}
	if _, err := h.e.Erase(h.ctx, ana); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Card(h.ctx, la.Token); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Errorf("the erased member's card: %v", err)
	}
}
