package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
)

// slowDiffRules pay by the item with an expression that takes a few tens
// of microseconds, so that replaying a few thousand purchases of 200 items
// takes far longer than the shutdown bound. Such rules need a budget above
// the default.
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

const plainRules = `currency: USD
points:
  rounding: floor
earn:
  - name: base
    points: purchase.amount
`

// seedDB writes n purchases of engine.MaxItems items each into a new
// database at path, without fsync.
func seedDB(t *testing.T, path string, n int) {
	t.Helper()
	opts := store.DefaultOptions()
	opts.NoSync = true
	db, err := store.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := engine.New(db, engine.Options{Logger: discardLogger()})
	prog, err := rules.Parse("rules.yaml", []byte(plainRules))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.LoadRules(t.Context(), prog, "file"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := e.CreateMember(ctx, engine.MemberInput{})
	if err != nil {
		t.Fatal(err)
	}
	items := make([]engine.ItemRequest, engine.MaxItems)
	for i := range items {
		items[i] = engine.ItemRequest{SKU: fmt.Sprint("sku-", i), Quantity: 1, Amount: "0.10"}
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

// syncBuffer is a log sink the server goroutines may write to.
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

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// TestShutdownDuringALongDiff sends the server what main sends on SIGTERM
// (the end of run's context) while a rules diff that would take far longer
// than the shutdown bound runs, and a backup streams to a client that
// reads nothing (its write blocks until the 30 s stall timeout). serve
// must return, having closed the database, within the bound, and the
// diff's client must hear why.
func TestShutdownDuringALongDiff(t *testing.T) {
	dir := t.TempDir()
	dbPath, rulesPath := filepath.Join(dir, "loyalty.db"), filepath.Join(dir, "rules.yaml")
	seedDB(t, dbPath, 2000)
	if err := os.WriteFile(rulesPath, []byte(plainRules), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, term := context.WithCancel(context.Background())
	defer term()
	var logs syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"serve", "--addr", addr, "--db", dbPath, "--rules", rulesPath}, io.Discard, &logs)
	}()
	eventually(t, "the server to listen", func() bool { return strings.Contains(logs.String(), "msg=listening") })

	body, _ := json.Marshal(map[string]string{"old": slowDiffRules, "new": slowDiffRules, "last": "1d"})
	type answer struct {
		status int
		body   string
		err    error
	}
	diffed := make(chan answer, 1)
	go func() {
		res, err := http.Post("http://"+addr+"/v1/rules/diff", "application/json", bytes.NewReader(body))
		if err != nil {
			diffed <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		diffed <- answer{status: res.StatusCode, body: string(b)}
	}()
	select {
	case a := <-diffed:
		t.Fatalf("the diff finished before the shutdown (%d %s %v); seed a longer history", a.status, a.body, a.err)
	case <-time.After(time.Second):
	}

	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "GET /v1/admin/backup HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	eventually(t, "the backup to start", func() bool { return strings.Contains(logs.String(), "route=/v1/admin/backup") })

	term()
	termAt := time.Now()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("serve exited %d:\n%s", code, logs.String())
		}
		t.Logf("serve returned %v after the signal", time.Since(termAt))
	case <-time.After(shutdownBound + 2*time.Second):
		t.Fatalf("serve was still running %v after the signal:\n%s", shutdownBound+2*time.Second, logs.String())
	}
	a := <-diffed
	if a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, `"unavailable"`) || !strings.Contains(a.body, "shutting down") {
		t.Fatalf("the diff's client got %d %s %v", a.status, a.body, a.err)
	}
	if !strings.Contains(logs.String(), `msg="shutting down"`) {
		t.Fatalf("no shutdown line in the log:\n%s", logs.String())
	}
	if code, out := runCLI(t, "verify", "--db", dbPath); code != 0 {
		t.Fatalf("verify after the shutdown: %d %s", code, out)
	}
}
