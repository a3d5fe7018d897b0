package http_test

import (
	"context"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
	lhttp "github.com/loyaltyhq/loyalty/http"
	"github.com/loyaltyhq/loyalty/internal/storetesting"
	"github.com/loyaltyhq/loyalty/rules"
)

// TestDatabaseWithItsOwnBackups: a server whose database is backed up by
// its own tools answers the backup route with 422 and that advice, and
// /healthz follows the database's health check, down and up again.
func TestDatabaseWithItsOwnBackups(t *testing.T) {
	db := storetesting.Open(t, storeKind)
	e := engine.New(db, engine.Options{})
	prog, err := rules.Parse("rules.yaml", []byte(simpleRules))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.LoadRules(t.Context(), prog, "file"); err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	srv := lhttp.NewServer(lhttp.Config{
		Engine: e, NoBackup: "use pg_dump",
		Health: func(context.Context) error {
			if down.Load() {
				return errors.New("connection refused")
			}
			return nil
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(5 * time.Second)
	get := func(path string) (int, string) {
		t.Helper()
		res, err := nethttp.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	if status, body := get("/v1/admin/backup"); status != 422 || !strings.Contains(body, "use pg_dump") || !strings.Contains(body, `"unprocessable"`) {
		t.Errorf("backup: %d %s", status, body)
	}
	if status, body := get("/healthz"); status != 200 {
		t.Errorf("healthz: %d %s", status, body)
	}
	down.Store(true)
	if status, body := get("/healthz"); status != 503 || !strings.Contains(body, "database") || strings.Contains(body, "refused") {
		t.Errorf("healthz with the database down: %d %s (want 503 without the error's details)", status, body)
	}
	down.Store(false)
	if status, body := get("/healthz"); status != 200 {
		t.Errorf("healthz after the database came back: %d %s", status, body)
	}
}
