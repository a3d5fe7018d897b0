package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	"github.com/loyaltyhq/loyalty/rules"
	"github.com/loyaltyhq/loyalty/store"
)

// startBackupTestServer runs a Main on a temp database and :0.
func startBackupTestServer(t *testing.T, dbPath string) *Main {
	t.Helper()
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesPath, rules.Example, 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Main{Config: Config{Addr: "127.0.0.1:0", DBPath: dbPath, RulesPath: rulesPath}}
	if err := m.Open(); err != nil {
		m.Close()
		t.Fatal(err)
	}
	return m
}

// openCopy opens a backup read-only and fails the test unless it passes
// every check loyalty verify makes.
func openCopy(t *testing.T, path string) *store.DB {
	t.Helper()
	opts := store.DefaultOptions()
	opts.ReadOnly = true
	db, err := store.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var out bytes.Buffer
	if n, err := verifyDB(context.Background(), db, &out); n > 0 || err != nil {
		t.Fatalf("the copy: %d problems, %v\n%s", n, err, out.String())
	}
	return db
}

// TestBackupUnderLoad backs a server up over HTTP while tills post
// purchases: the copy verifies, holds every purchase acknowledged before
// the backup began, and serves when started on.
func TestBackupUnderLoad(t *testing.T) {
	dir := t.TempDir()
	m := startBackupTestServer(t, filepath.Join(dir, "loyalty.db"))
	url := "http://" + m.Addr()
	res, err := http.Post(url+"/v1/members", "application/json", strings.NewReader(`{"external_id": "card-1"}`))
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("enrol: %v %v", res, err)
	}
	var memberID string
	if err := m.DB.View(t.Context(), func(tx engine.Tx) error {
		mem, err := tx.MemberByKey(engine.KeyExternalID, "card-1")
		if mem != nil {
			memberID = mem.ID
		}
		return err
	}); err != nil || memberID == "" {
		t.Fatalf("member: %v", err)
	}

	var (
		mu     sync.Mutex
		acked  []string
		stop   atomic.Bool
		wg     sync.WaitGroup
		failed atomic.Value
	)
	for till := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("t%d-%d", till, i)
				body := fmt.Sprintf(`{"id": %q, "member_id": %q, "currency": "USD", "amount": "3.50"}`, id, memberID)
				res, err := http.Post(url+"/v1/purchases", "application/json", strings.NewReader(body))
				if err != nil {
					failed.Store(err.Error())
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusCreated {
					failed.Store(res.Status)
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()

	to := filepath.Join(dir, "backup.db")
	var stdout, stderr bytes.Buffer
	began := time.Now()
	code := run(context.Background(), []string{"backup", "--url", url, "--to", to}, &stdout, &stderr)
	took := time.Since(began)
	mu.Lock()
	during := len(acked) - len(before)
	mu.Unlock()
	stop.Store(true)
	wg.Wait()
	if code != 0 || !strings.Contains(stdout.String(), "the copy verifies") {
		t.Fatalf("backup exited %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if f := failed.Load(); f != nil {
		t.Fatalf("a till failed during the backup: %v", f)
	}
	t.Logf("%d purchases acknowledged before the backup, %d in the %s it took", len(before), during, took)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	cp := openCopy(t, to)
	if err := cp.View(t.Context(), func(tx engine.Tx) error {
		for _, id := range before {
			if p, err := tx.Purchase(id); err != nil || p == nil {
				return fmt.Errorf("purchase %s acknowledged before the backup is missing (%v)", id, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := cp.Close(); err != nil {
		t.Fatal(err)
	}

	// Restoring is starting serve on the copy.
	restored := startBackupTestServer(t, to)
	defer restored.Close()
	res, err = http.Get("http://" + restored.Addr() + "/v1/purchases/" + before[len(before)-1])
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("restored server: %v %v", res, err)
	}
	res.Body.Close()
}

func TestBackupFromFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "loyalty.db")
	m := startBackupTestServer(t, db)
	to := filepath.Join(dir, "copy.db")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"backup", "--db", db, "--to", to}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "--url") {
		t.Fatalf("backup of an open database exited %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(to); !os.IsNotExist(err) {
		t.Fatalf("a failed backup left %s: %v", to, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"backup", "--db", db, "--to", to}, &stdout, &stderr); code != 0 {
		t.Fatalf("backup exited %d: %s%s", code, stdout.String(), stderr.String())
	}
	openCopy(t, to)
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	if len(leftovers) > 0 {
		t.Fatalf("temp files left: %v", leftovers)
	}
	for _, args := range [][]string{
		{"backup", "--to", to},
		{"backup", "--db", db},
		{"backup", "--db", db, "--url", "http://127.0.0.1:1", "--to", to},
	} {
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%v exited %d, want 2", args, code)
		}
	}
}
