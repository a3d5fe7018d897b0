package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/loyaltyhq/loyalty/rules"
)

// The console's tests drive Debian's chromium, headless, against a real
// server on :0 with a temp database. Without the browser they skip, unless
// LOYALTY_REQUIRE_CHROMIUM=1 (CI), when they fail. Each page's screenshot
// is written to $LOYALTY_SCREENSHOTS when it is set, else to the test's
// temp directory (the log says where).

// chromiumPath finds the browser, or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("LOYALTY_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("LOYALTY_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium is not installed and LOYALTY_REQUIRE_CHROMIUM=1: install Debian's chromium package")
	}
	t.Skip("chromium is not installed, so the console's browser tests do not run (apt-get install chromium)")
	return ""
}

// consoleServer runs serve's wiring with an admin key, and fills it: a
// member with card card-0001 and a purchase, a dozen others with purchases
// of different sizes, and an analytics run.
type consoleServer struct {
	t    *testing.T
	base string
}

func startConsoleServer(t *testing.T) *consoleServer {
	t.Helper()
	dir := t.TempDir()
	rulesPath, keysPath := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "keys.yaml")
	os.WriteFile(rulesPath, rules.Example, 0o644)
	os.WriteFile(keysPath, []byte("- {name: ops, key: "+adminKey+", role: admin}\n- {name: desk, key: "+readerConsoleKey+", role: reader}\n"), 0o600)
	// One quick retry, so a delivery to a broken endpoint fails at once.
	m := &Main{Config: Config{Addr: "127.0.0.1:0", DBPath: filepath.Join(dir, "loyalty.db"), RulesPath: rulesPath, KeysPath: keysPath, WebhookRetries: "1ms"}}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	s := &consoleServer{t: t, base: "http://" + m.Addr()}
	ana := s.call("POST", "/v1/members", `{"external_id": "card-0001", "name": "Ana Console", "email": "ana@example.com"}`)["id"].(string)
	s.call("POST", "/v1/purchases", fmt.Sprintf(`{"id": "till1-0001", "member_id": %q, "currency": "USD", "amount": "23.40",
		"items": [{"sku": "LATTE-L", "category": "coffee", "quantity": 2, "amount": "9.80"}, {"sku": "BEANS", "category": "beans", "quantity": 1, "amount": "13.60"}]}`, ana))
	for i := 1; i <= 12; i++ {
		id := s.call("POST", "/v1/members", fmt.Sprintf(`{"external_id": "card-1%03d", "name": "Member %d"}`, i, i))["id"].(string)
		s.call("POST", "/v1/purchases", fmt.Sprintf(`{"id": "till1-1%03d", "member_id": %q, "currency": "USD", "amount": "%d.00"}`, i, id, i*i*5))
	}
	s.call("POST", "/v1/jobs/analytics/run", ``)
	return s
}

const readerConsoleKey = "reader-key-0123456789"

// call is a request with the admin key; anything but 2xx fails the test.
func (s *consoleServer) call(method, path, body string) map[string]any {
	s.t.Helper()
	res, raw := s.request(method, path, "application/json", body)
	if res.StatusCode/100 != 2 {
		s.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		s.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
	}
	return v
}

func (s *consoleServer) request(method, path, contentType, body string) (*http.Response, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", contentType)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return res, raw
}

// failedDeliveries waits until the endpoint has n failed deliveries (the
// worker sends them on its own) and returns them.
func (s *consoleServer) failedDeliveries(hook string, n int) []any {
	s.t.Helper()
	// Bounds a worker that never sends, not its speed.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got := s.call("GET", "/v1/webhooks/"+hook+"/deliveries?status=failed", "")["deliveries"].([]any)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("webhook %s has %d failed deliveries, want %d", hook, len(got), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// browser is one headless chromium for the test, and one tab in it.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string

	mu      sync.Mutex
	console []string // what the page logged, shown when a step fails
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.DisableGPU,
		chromedp.Flag("lang", "en-US"), chromedp.WindowSize(1280, 900))
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root, as CI containers do.
		opts = append(opts, chromedp.NoSandbox)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	// Generous: the machine is shared; this bounds a hung browser, not speed.
	ctx, cancelTime := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	// Publishing asks "are you sure?": the person says yes.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	b := &browser{t: t, ctx: ctx}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, string(m.Type)+": "+m.Text)
			b.mu.Unlock()
		}
	}()
	shots := os.Getenv("LOYALTY_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	b.shots = shots
	return b
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	// A step that waits for what never comes fails on its own, leaving
	// time for the screenshot of the page as it was.
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

// fail stops the test with the page as it was, to see what went wrong.
func (b *browser) fail(what string, err error) {
	b.t.Helper()
	b.screenshot("failed-" + regexp.MustCompile(`\W+`).ReplaceAllString(what, "-"))
	body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.mu.Lock()
	logged := strings.Join(b.console, "\n")
	b.mu.Unlock()
	b.t.Fatalf("%s: %v\npage text:\n%s\nconsole:\n%s", what, err, body, logged)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.fail("text of "+sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browser) attr(sel, name string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		b.fail("attribute "+name+" of "+sel, err)
	}
	return v.Value
}

func (b *browser) eval(what, js string) {
	b.t.Helper()
	b.do(what, chromedp.Evaluate[chromedp.Void](js))
}

// route moves the console to another page; it is one document, so this
// is a change of its hash, not a load.
func (b *browser) route(hash string) {
	b.t.Helper()
	b.eval("go to "+hash, "location.hash = "+jsString(hash))
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// setEditor puts text in the rules editor as typing would end: the field
// holds it and has had an input event.
func (b *browser) setEditor(text string) {
	b.t.Helper()
	b.eval("edit the rules", `(() => { const t = document.getElementById("rules-text"); t.focus(); t.value = `+jsString(text)+`; t.dispatchEvent(new Event("input")); })()`)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var digits = regexp.MustCompile(`[^\d-]`)

// number reads a figure as the console writes it ("1,047", "+53").
func number(s string) string { return digits.ReplaceAllString(s, "") }

// TestConsole walks the console as a person would, in one browser: sign
// in, find a member by card, refund a purchase, break the rules and fix
// them, diff, publish, compare versions, read the dashboard's charts, and
// open a card link and a tampered one.
func TestConsole(t *testing.T) {
	s := startConsoleServer(t)
	b := startBrowser(t)

	// A webhook endpoint that answers every delivery with 500: its test
	// event fails after its one retry, and the dashboard lists it.
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(receiver.Close)
	hook := s.call("POST", "/v1/webhooks", fmt.Sprintf(`{"url": %q, "events": ["tier.changed"], "description": "broken CRM"}`, receiver.URL+"/hooks"))["id"].(string)
	s.call("POST", "/v1/webhooks/"+hook+"/test", "")
	// And a disabled one, which has nothing failed to show.
	quiet := s.call("POST", "/v1/webhooks", `{"url": "https://crm.example/quiet", "events": ["*"], "status": "disabled"}`)["id"].(string)

	// Sign in with a key.
	b.do("open the console", chromedp.Navigate(s.base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#key")))
	b.screenshot("signin")
	// With the keyboard only: the field has the focus, Enter submits.
	b.do("sign in", chromedp.KeyEvent(adminKey+"\r"), chromedp.WaitVisible(chromedp.CSS("#q")))
	if who := b.text("#who"); !strings.Contains(who, "ops") || !strings.Contains(who, "admin") {
		t.Errorf("signed in as %q", who)
	}

	// Find members by name: Member 1, 10, 11 and 12.
	b.do("search by name", chromedp.SendKeys(chromedp.CSS("#q"), "member 1"), chromedp.Click(chromedp.CSS(`form[role=search] button`)),
		chromedp.WaitVisible(chromedp.CSS(`main table a[href^="#/members/"]`)))
	if n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('main table a[href^="#/members/"]').length`)); err != nil || n != 4 {
		t.Errorf("a search for \"member 1\" lists %d members (%v), want 4", n, err)
	}
	b.screenshot("search-by-name")

	// Find a member by card; the balance is the API's.
	b.do("search by card", chromedp.Evaluate[chromedp.Void](`document.getElementById("q").value = ""`), chromedp.SendKeys(chromedp.CSS("#q"), "card-0001"), chromedp.Click(chromedp.CSS(`form[role=search] button`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=balance]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=purchases] form button`)))
	ana := s.call("GET", "/v1/members?external_id=card-0001", "")["members"].([]any)[0].(map[string]any)["id"].(string)
	balance := s.call("GET", "/v1/members/"+ana+"/balance", "")["available"].(float64)
	if got := number(b.text(`[data-testid=balance]`)); got != fmt.Sprint(balance) || balance == 0 {
		t.Errorf("the member page shows %s points, the API says %v", got, balance)
	}
	b.screenshot("member")

	// Refund the purchase; the ledger shows the entry the API has.
	b.do("refund", chromedp.Click(chromedp.CSS(`[data-testid=purchases] form button`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=ledger] tr[data-type=refund]`)))
	ledger := s.call("GET", "/v1/members/"+ana+"/ledger", "")["entries"].([]any)
	newest := ledger[0].(map[string]any)
	if newest["type"] != "refund" || newest["ref"] == "" {
		t.Fatalf("the API's newest ledger entry after the refund: %v", newest)
	}
	row := b.text(`[data-testid=ledger] tr[data-type=refund]`)
	if !strings.Contains(row, fmt.Sprint(newest["points"])) || !strings.Contains(row, newest["ref"].(string)) {
		t.Errorf("the refund's row %q does not show the API's entry %v", row, newest)
	}
	after := s.call("GET", "/v1/members/"+ana+"/balance", "")["available"].(float64)
	if got := number(b.text(`[data-testid=balance]`)); got != fmt.Sprint(after) || after >= balance {
		t.Errorf("after the refund the page shows %s points, the API %v (before %v)", got, after, balance)
	}
	b.screenshot("member-refunded")

	// Money in the program's currency, times in its time zone
	// (America/New_York in the example), whatever the browser's.
	zone, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at, _ := time.Parse(time.RFC3339Nano, newest["at"].(string))
	if local := at.In(zone).Format("3:04 PM"); !strings.Contains(row, local) {
		t.Errorf("the refund's row %q does not show its time in New York, %s", row, local)
	}
	if p := b.text(`table[data-testid=purchases] tbody tr`); !strings.Contains(p, "$23.40") {
		t.Errorf("the purchase's row %q does not show $23.40", p)
	}

	// Redeem points, then cancel the redemption from its ledger entry.
	b.do("redeem", chromedp.SendKeys(chromedp.CSS(`form:has(input[name=reward]) input[name=points]`), "20"),
		chromedp.Click(chromedp.CSS(`form:has(input[name=reward]) button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=ledger] tr[data-type=redeem] button`)))
	if got := number(b.text(`[data-testid=balance]`)); got != fmt.Sprint(after-20) {
		t.Errorf("after redeeming 20 the page shows %s points, want %v", got, after-20)
	}
	b.do("cancel the redemption", chromedp.Click(chromedp.CSS(`[data-testid=ledger] tr[data-type=redeem] button`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=ledger] tr[data-type=redeem_cancel]`)))
	if got := number(b.text(`[data-testid=balance]`)); got != fmt.Sprint(after) {
		t.Errorf("after the cancel the page shows %s points, want %v", got, after)
	}
	if kinds := s.call("GET", "/v1/members/"+ana+"/ledger?limit=2", "")["entries"].([]any); kinds[0].(map[string]any)["type"] != "redeem_cancel" || kinds[1].(map[string]any)["type"] != "redeem" {
		t.Errorf("the API's ledger after redeem and cancel: %v", kinds)
	}

	// Break the rules in the editor: the error is underlined on the line
	// the validate endpoint names, which is the line broken.
	b.route("#/rules")
	b.do("open the rules", chromedp.WaitVisible(chromedp.CSS("#rules-text")), chromedp.WaitVisible(chromedp.CSS(`#rules-status`), chromedp.NodeReady))
	src := s.call("GET", "/v1/rules", "")["source"].(string)
	const rate = "points: purchase.amount * tier.multiplier"
	line := 1 + strings.Count(src[:strings.Index(src, rate)], "\n")
	broken := strings.Replace(src, rate, "points: purchase.amount * * tier.multiplier", 1)
	res, raw := s.request("POST", "/v1/rules/validate", "text/plain", broken)
	var refused struct {
		Error struct {
			Details []struct{ Line, Column int }
		}
	}
	json.Unmarshal(raw, &refused)
	if res.StatusCode != 422 || len(refused.Error.Details) == 0 || refused.Error.Details[0].Line != line {
		t.Fatalf("the API on the broken rules: %d %s (the broken line is %d)", res.StatusCode, raw, line)
	}
	b.setEditor(broken)
	b.do("see the error", chromedp.WaitVisible(chromedp.CSS("mark.hl-err")))
	if got := b.attr("mark.hl-err", "data-line"); got != fmt.Sprint(line) {
		t.Errorf("the editor underlines line %s, the broken line is %d", got, line)
	}
	if got, want := b.attr("mark.hl-err", "data-column"), fmt.Sprint(refused.Error.Details[0].Column); got != want {
		t.Errorf("the editor underlines column %s, the API says %s", got, want)
	}
	if list := b.text(`[data-testid=rules-errors]`); !strings.Contains(list, fmt.Sprintf("Line %d", line)) {
		t.Errorf("the problems listed: %q", list)
	}
	// The problem listed takes the caret to it.
	b.do("go to the problem", chromedp.Click(chromedp.CSS(`[data-testid=rules-errors] button`)))
	caretLine, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`(() => { const t = document.getElementById("rules-text"); return t.value.slice(0, t.selectionStart).split("\n").length; })()`))
	if err != nil || caretLine != line {
		t.Errorf("the caret went to line %d (%v), the problem is on line %d", caretLine, err, line)
	}
	b.screenshot("rules-error")

	// Double the earn rate and diff it against the last 30 days.
	doubled := strings.Replace(src, rate, rate+" * 2", 1)
	b.setEditor(doubled)
	b.do("valid again", chromedp.Poll[chromedp.Void](`document.getElementById("rules-status").textContent === "The rules are valid."`),
		chromedp.Click(chromedp.CSS(`#diff-last ~ button.secondary`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=diff-chart] canvas`)))
	diffBody, _ := json.Marshal(map[string]string{"new": doubled, "last": "30d"})
	diff := s.call("POST", "/v1/rules/diff", string(diffBody))
	if got, want := number(b.text(`[data-testid=points-change]`)), fmt.Sprint(diff["points_change"]); got != want || want == "0" {
		t.Errorf("the diff shows a change of %s points, the API %s", got, want)
	}
	b.screenshot("rules-diff")

	// Simulate a purchase of a gold member with the doubled rate.
	b.do("simulate", chromedp.SendKeys(chromedp.CSS(`input[name=tier]`), "gold"), chromedp.SetValue(chromedp.CSS(`input[name=amount]`), "10.00"),
		chromedp.Click(chromedp.CSS(`form:has(input[name=category]) button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=simulation]`)))
	simBody, _ := json.Marshal(map[string]any{"rules": doubled, "member": map[string]string{"tier": "gold"}, "purchase": map[string]string{"id": "x", "currency": "USD", "amount": "10.00"}})
	sim := s.call("POST", "/v1/rules/simulate", string(simBody))
	if got, want := number(b.text(`[data-testid=simulation]`)), fmt.Sprint(sim["points"]); got != want || want == "0" {
		t.Errorf("the simulation shows %s points, the API %s", got, want)
	}

	// Publish; the page and the API say version 2, with the new rate.
	b.do("publish", chromedp.Click(chromedp.CSS(`#diff-last ~ button:not(.secondary)`)),
		chromedp.WaitVisible(chromedp.CSS(`p[data-version="2"]`)))
	live := s.call("GET", "/v1/rules", "")
	if live["version"] != 2.0 || !strings.Contains(live["source"].(string), rate+" * 2") || live["by"] != "ops" {
		t.Errorf("after publishing, the API's rules: version %v by %v", live["version"], live["by"])
	}
	b.do("compare versions", chromedp.WaitVisible(chromedp.CSS(`select[aria-label="Older version"]`)),
		chromedp.Click(chromedp.CSS(`select[aria-label="Newer version"] ~ button`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=version-diff] .add`)))
	if add := b.text(`[data-testid=version-diff] .add`); !strings.Contains(add, "* 2") {
		t.Errorf("the versions' diff adds %q", add)
	}
	b.screenshot("rules-published")

	// The dashboard's charts are drawn, from data.
	b.route("#/dashboard")
	b.do("dashboard", chromedp.WaitVisible(chromedp.CSS(`[data-testid=points-chart] canvas`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=pareto-chart] canvas`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=expiring]`)))
	for _, chart := range []string{"points-chart", "pareto-chart"} {
		painted, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`(() => {
			const c = document.querySelector('[data-testid=`+chart+`] canvas');
			const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
			let n = 0;
			for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
			return n;
		})()`))
		if err != nil {
			b.fail("read "+chart, err)
		}
		if painted < 1000 {
			t.Errorf("%s: %d pixels painted", chart, painted)
		}
	}
	if n := b.attr(`[data-testid=points-chart]`, "data-points"); n != "30" {
		t.Errorf("the points chart has %s days", n)
	}
	if note := b.text(`[data-testid=pareto-chart] + p`); !strings.Contains(note, "13 members") {
		t.Errorf("the Pareto chart's note: %q", note)
	}
	b.screenshot("dashboard")

	// The webhook endpoint and its failed delivery, as the API has them.
	failed := s.failedDeliveries(hook, 1)[0].(map[string]any)
	b.route("#/members")
	b.route("#/dashboard")
	card := `[data-testid=webhooks] [data-id="` + hook + `"]`
	b.do("the webhooks", chromedp.WaitVisible(chromedp.CSS(card+` tr[data-event]`)))
	if head := b.text(card + " h3"); !strings.Contains(head, receiver.URL+"/hooks") || !strings.Contains(head, "enabled") {
		t.Errorf("the endpoint's heading: %q", head)
	}
	if facts := b.text(card + " dl"); !strings.Contains(facts, "tier.changed") {
		t.Errorf("the endpoint's events: %q", facts)
	}
	row = b.text(card + ` tr[data-event="` + failed["event_id"].(string) + `"]`)
	at, _ = time.Parse(time.RFC3339Nano, failed["last_attempt_at"].(string))
	for _, want := range []string{"webhook.test", fmt.Sprint(failed["attempts"]), failed["last_error"].(string), "500", at.In(zone).Format("3:04 PM")} {
		if !strings.Contains(row, want) {
			t.Errorf("the failed delivery's row %q does not show %q (the API: %v)", row, want, failed)
		}
	}
	if failed["attempts"] != 2.0 {
		t.Errorf("the failed delivery had %v attempts, want 2 (one retry)", failed["attempts"])
	}
	quietCard := `[data-testid=webhooks] [data-id="` + quiet + `"]`
	if head, none := b.text(quietCard+" h3"), b.text(quietCard+" tbody"); !strings.Contains(head, "disabled") || !strings.Contains(none, "None") {
		t.Errorf("the disabled endpoint's heading %q, failed deliveries %q", head, none)
	}
	if more, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`!!document.querySelector('[data-testid=webhooks] p.muted')`)); err != nil || more {
		t.Errorf("one failed delivery is said to be the first of more (%v)", err)
	}
	b.screenshot("dashboard-webhooks")
	// Send another test event from the keyboard: it fails too, and the
	// dashboard, opened again, lists both.
	b.do("send a test event", chromedp.Focus(chromedp.CSS(card+` button.secondary`)), chromedp.KeyEvent("\r"))
	s.failedDeliveries(hook, 2)
	b.route("#/members")
	b.route("#/dashboard")
	b.do("two failed deliveries", chromedp.Poll[chromedp.Void](`document.querySelectorAll('[data-testid=webhooks] [data-id="`+hook+`"] tr[data-event]').length === 2`))

	// Issue a card link from the member's page and open it on a phone.
	b.route("#/members/" + ana)
	b.do("issue a card link", chromedp.WaitVisible(chromedp.CSS(`[data-testid=card-link]`), chromedp.NodeReady),
		chromedp.Click(chromedp.CSS(`form:has([data-testid=card-link]) button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=card-link] a`)))
	link := b.attr(`[data-testid=card-link] a`, "href")
	if !strings.HasPrefix(link, s.base+"/m/") {
		t.Fatalf("card link %q", link)
	}
	b.do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	wide, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > 391`))
	if err != nil || wide {
		t.Errorf("on a phone the member page is wider than the screen (%v)", err)
	}
	b.screenshot("member-phone")
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(link))
	if err != nil || resp.Status != 200 {
		b.fail("open the card link", fmt.Errorf("%v, status %v", err, resp))
	}
	if got := number(b.text(`[data-testid=balance]`)); got != fmt.Sprint(after) {
		t.Errorf("the card page shows %s points, the API %v", got, after)
	}
	b.screenshot("card")
	tampered := link[:len(link)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(link, "A")]
	resp, err = chromedp.Run(b.ctx, chromedp.NavigateResponse(tampered))
	if err != nil || resp.Status != 404 {
		b.fail("open a tampered card link", fmt.Errorf("%v, status %v", err, resp))
	}
	if body := b.text("body"); !strings.Contains(body, "not valid") || strings.Contains(body, "Ana") {
		t.Errorf("the tampered link's page: %q", body)
	}
	b.screenshot("card-tampered")

	// A reader's key is offered no refund, no rules editing, no analytics.
	b.do("desktop", chromedp.EmulateViewport(1280, 900))
	b.do("sign in as a reader", chromedp.Navigate(s.base+"/console/"), chromedp.Evaluate[chromedp.Void](`sessionStorage.clear()`),
		chromedp.Navigate(s.base+"/console/#/members/"+ana), chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), readerConsoleKey), chromedp.Click(chromedp.CSS(`form button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#q")))
	b.route("#/members/" + ana)
	b.do("a reader's member page", chromedp.WaitVisible(chromedp.CSS(`table[data-testid=purchases] td`)))
	offered, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("main form button, [data-testid=card-link]").length`))
	if err != nil || offered != 0 {
		t.Errorf("a reader is offered %d actions (%v)", offered, err)
	}
	b.route("#/rules")
	b.do("a reader's rules", chromedp.WaitVisible(chromedp.CSS("#rules-text")))
	readOnly, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.getElementById("rules-text").readOnly &&
		![...document.querySelectorAll("main button")].some((b) => /Publish|Diff/.test(b.textContent))`))
	if err != nil || !readOnly {
		t.Errorf("a reader may edit or publish the rules (read-only %v, %v)", readOnly, err)
	}
	b.screenshot("reader-rules")
	// Nor the webhooks, which are the admin's: the dashboard shows the
	// jobs and no webhook panel.
	b.route("#/dashboard")
	b.do("a reader's dashboard", chromedp.WaitVisible(chromedp.CSS(`main .card table`)))
	if n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("[data-testid=webhooks]").length`)); err != nil || n != 0 {
		t.Errorf("a reader's dashboard has %d webhook panels (%v)", n, err)
	}
	b.screenshot("reader-dashboard")

	// A server without keys (the README's first run) needs no sign-in.
	open, _ := startMain(t)
	b.do("an open server's console", chromedp.Navigate("http://"+open.Addr()+"/console/"), chromedp.WaitVisible(chromedp.CSS("#q")))
	if who := b.text("#who"); !strings.Contains(who, "open · admin") {
		t.Errorf("on an open server the console says %q", who)
	}
}
