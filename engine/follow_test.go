package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/internal/storetesting"
	"github.com/loyaltyhq/loyalty/rules"
)

// TestFollowRules: two engines on one store, as two servers on one
// database. Rules published on one become live on the other when it
// follows, which tells its OnRulesChange functions and its file; a
// version that does not compile there changes nothing.
func TestFollowRules(t *testing.T) {
	ctx := context.Background()
	db := storetesting.Open(t, storeKind)
	a := engine.New(db, engine.Options{})
	b := engine.New(db, engine.Options{})
	prog, err := rules.Parse("rules.yaml", rules.Example)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*engine.Engine{a, b} {
		if _, err := e.LoadRules(ctx, prog, "file"); err != nil {
			t.Fatal(err)
		}
	}
	var changes []int
	b.OnRulesChange(func(p *rules.Program) { changes = append(changes, len(p.Tiers.Levels)) })
	if changed, err := b.FollowRules(ctx, nil); changed || err != nil {
		t.Fatalf("following the live rules: changed %v, %v", changed, err)
	}
	src := strings.Replace(string(rules.Example), `threshold: "500.00"`, `threshold: "400.00"`, 1)
	v, err := a.PublishRules(ctx, "rules.yaml", []byte(src), "marketer", nil)
	if err != nil {
		t.Fatal(err)
	}
	var saved string
	changed, err := b.FollowRules(ctx, func(text []byte) error { saved = string(text); return nil })
	if err != nil || !changed {
		t.Fatalf("FollowRules after a publish: changed %v, %v", changed, err)
	}
	p, live := b.Program()
	if live.Version != v.Version || live.By != "marketer" || string(p.Source) != src || saved != src || len(changes) != 1 {
		t.Errorf("b runs version %d by %q (want %d by marketer), saved %d bytes, told %d times", live.Version, live.By, v.Version, len(saved), len(changes))
	}
	if changed, err := b.FollowRules(ctx, nil); changed || err != nil {
		t.Errorf("following again: changed %v, %v", changed, err)
	}
	if err := db.Update(ctx, func(tx engine.Tx) error {
		return tx.PutRules(&engine.RulesVersion{Version: v.Version + 1, Hash: "future", Source: "currency: USD\nfuture_section: {}\n", LoadedAt: a.Now(), By: "newer"})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.FollowRules(ctx, nil); err == nil {
		t.Error("a version that does not compile was followed")
	}
	if _, live := b.Program(); live.Version != v.Version {
		t.Errorf("after a version that does not compile, b runs version %d, want %d", live.Version, v.Version)
	}
	// The test leaves a version that does not compile: the next
	// publication replaces it.
	if _, err := a.PublishRules(ctx, "rules.yaml", rules.Example, "marketer", nil); err != nil {
		t.Fatal(err)
	}
}
