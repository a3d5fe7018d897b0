// Command gen makes a database file the way an older loyalty made it: it
// builds cmd/loyalty as of a commit, lets that server run a small café
// through its HTTP API under a test clock (members, a referral, purchases,
// refunds, redemptions, a cancellation, adjustments, a profile change, every
// job, a year going by), stops it, and keeps the file with the server's
// answers about it. TestLegacyFiles (store) and TestUpgradeKeepsAnswers
// (cmd/loyalty) open the files with the current code.
//
// It lives in testdata so that the build ignores it. From the repository
// root:
//
//	go run ./store/testdata/legacy/gen 07b89bd store/testdata/legacy/schema1
//	go run ./store/testdata/legacy/gen 3d5d1f1 store/testdata/legacy/schema2
//	go run ./store/testdata/legacy/gen bb3988a store/testdata/legacy/schema3
//
// writes NAME.db.gz (the file, gzipped), NAME.rules.yaml (the rules the old
// server ran) and NAME.answers.json (what it answered at the end, by
// request path, and the clock's time then).
// 07b89bd is the last commit of schema 1 (JSON records), 3d5d1f1 the last
// of schema 2 (binary records, the whole member in members), bb3988a a
// late one of schema 3 (the account in member_data, a section per kind of
// record), before lot ids told their time.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gen COMMIT OUT (writes OUT.db.gz, OUT.rules.yaml, OUT.answers.json)")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(commit, out string) error {
	tmp, err := os.MkdirTemp("", "loyalty-legacy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src, work := filepath.Join(tmp, "src"), filepath.Join(tmp, "work")
	for _, d := range []string{src, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	archive := exec.Command("sh", "-c", fmt.Sprintf("git archive %s | tar -x -C %s", commit, src))
	archive.Stderr = os.Stderr
	if err := archive.Run(); err != nil {
		return fmt.Errorf("git archive %s: %w", commit, err)
	}
	bin := filepath.Join(tmp, "loyalty")
	build := exec.Command("go", "build", "-o", bin, "./cmd/loyalty")
	build.Dir, build.Stdout, build.Stderr = src, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build %s: %w", commit, err)
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	serve := exec.Command(bin, "serve", "--addr", addr, "--db", "loyalty.db", "--test-clock")
	serve.Dir = work
	var logs bytes.Buffer
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		return err
	}
	c := &client{base: "http://" + addr}
	answers, err := c.cafe()
	if answers != nil {
		answers["commit"] = commit
	}
	_ = serve.Process.Signal(syscall.SIGTERM)
	if werr := serve.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("server: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("%w\nserver log:\n%s", err, logs.Bytes())
	}
	if err := compactCopy(filepath.Join(work, "loyalty.db"), out+".db.gz"); err != nil {
		return err
	}
	rules, err := os.ReadFile(filepath.Join(work, "rules.yaml"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(out+".rules.yaml", rules, 0o644); err != nil {
		return err
	}
	data, err := json.MarshalIndent(answers, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out+".answers.json", append(data, '\n'), 0o644)
}

// compactCopy copies the bbolt file at from to to, gzipped, as a backup
// does: the pages in use, without the room bbolt allocates ahead (16 MB).
func compactCopy(from, to string) error {
	db, err := bolt.Open(from, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	f, err := os.Create(to)
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		return err
	}
	if err := db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(zw)
		return err
	}); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type client struct {
	base string
}

// call sends body (JSON) and decodes a 2xx answer into out, if given.
func (c *client) call(method, path string, body any, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s %s", method, path, res.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (c *client) waitReady() error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.call("GET", "/healthz", nil, nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type item struct {
	SKU      string `json:"sku"`
	Category string `json:"category,omitempty"`
	Quantity int64  `json:"quantity"`
	Amount   string `json:"amount"`
}

// cafe runs the scenario and returns the answers to read requests about
// everything it made, by path, with the clock's time at the end.
func (c *client) cafe() (map[string]any, error) {
	if err := c.waitReady(); err != nil {
		return nil, err
	}
	var errs []error
	do := func(method, path string, body, out any) {
		if err := c.call(method, path, body, out); err != nil {
			errs = append(errs, err)
		}
	}
	clock := func(now string) { do("POST", "/v1/clock", map[string]string{"now": now}, nil) }
	var ids []string
	enrol := func(body map[string]any) string {
		var m struct{ ID string }
		do("POST", "/v1/members", body, &m)
		ids = append(ids, m.ID)
		return m.ID
	}
	var purchases []string
	purchase := func(id, member, amount string, items ...item) {
		do("POST", "/v1/purchases", map[string]any{
			"id": id, "member_id": member, "store_id": "store7", "terminal_id": "till2",
			"currency": "USD", "amount": amount, "items": items,
		}, nil)
		purchases = append(purchases, id)
	}
	latte := item{SKU: "LATTE-L", Category: "coffee", Quantity: 2, Amount: "9.80"}
	beans := item{SKU: "BEANS-1KG", Category: "beans", Quantity: 1, Amount: "13.60"}

	// The test clock only moves forward from the wall clock: the café lives
	// in the future.
	clock("2031-03-03T15:00:00Z") // a Monday
	ana := enrol(map[string]any{
		"external_id": "card-000123", "email": "ana@example.com", "phone": "+15550100", "name": "Ana",
		"birthday": "1990-04-14", "attributes": map[string]string{"store": "downtown"},
	})
	ben := enrol(map[string]any{"external_id": "card-000124", "email": "ben@example.com", "name": "Ben", "referrer_id": ana})
	cy := enrol(map[string]any{"external_id": "card-000125", "name": "Cy"})
	purchase("store7-till2-000981", ana, "23.40", latte, beans)
	purchase("store7-till2-000982", ben, "4.90", item{SKU: "LATTE-L", Category: "coffee", Quantity: 1, Amount: "4.90"})

	clock("2031-03-08T16:30:00Z") // a Saturday: weekend beans
	purchase("store7-till2-001204", ana, "612.00", item{SKU: "BEANS-5KG", Category: "beans", Quantity: 10, Amount: "612.00"})
	purchase("store7-till1-000017", cy, "9.80", latte)

	clock("2031-03-10T09:00:00Z")
	do("POST", "/v1/purchases/store7-till2-000981/refunds", map[string]any{
		"id": "refund-1", "items": []item{{SKU: "LATTE-L", Quantity: 1, Amount: "4.90"}},
	}, nil)
	do("POST", "/v1/purchases/store7-till2-001204/refunds", map[string]any{"id": "refund-2", "amount": "100.00"}, nil)
	do("POST", "/v1/members/"+ana+"/redemptions", map[string]any{"id": "redeem-1", "points": 100, "reward": "free-drink"}, nil)
	do("POST", "/v1/members/"+ben+"/redemptions", map[string]any{"id": "redeem-2", "points": 50, "reward": "cookie"}, nil)
	do("POST", "/v1/redemptions/redeem-2/cancel", nil, nil)
	do("POST", "/v1/members/"+cy+"/adjustments", map[string]any{"id": "adj-1", "points": 30, "reason": "welcome gift"}, nil)
	do("POST", "/v1/members/"+ana+"/adjustments", map[string]any{"id": "adj-2", "points": -5, "reason": "duplicate receipt"}, nil)
	do("PATCH", "/v1/members/"+ana, map[string]any{"name": "Ana María", "attributes": map[string]string{"store": "uptown", "milk": "oat"}}, nil)

	runJobs := func() {
		var jobs []struct{ Name string }
		do("GET", "/v1/jobs", nil, &jobs)
		for _, j := range jobs {
			// The rules name jobs some versions do not have (analytics).
			if err := c.call("POST", "/v1/jobs/"+j.Name+"/run", nil, nil); err != nil && !strings.Contains(err.Error(), "404") {
				errs = append(errs, err)
			}
		}
	}
	clock("2031-04-14T12:00:00Z") // Ana's birthday
	runJobs()
	clock("2032-03-20T12:00:00Z") // a year on: most lots expire, tiers fall
	runJobs()
	purchase("store7-till1-002210", cy, "13.60", beans)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// The test clock runs on from where it was set: the answers below are
	// as of this time and the few milliseconds after it.
	var now struct{ Now string }
	do("GET", "/v1/clock", nil, &now)
	answers := map[string]any{}
	read := func(path string) {
		var v any
		do("GET", path, nil, &v)
		answers[path] = v
	}
	for _, id := range ids {
		read("/v1/members/" + id)
		read("/v1/members/" + id + "/balance")
		read("/v1/members/" + id + "/ledger?limit=100")
	}
	sort.Strings(purchases)
	for _, id := range purchases {
		read("/v1/purchases/" + id)
	}
	read("/v1/rules/versions")
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return map[string]any{"now": now.Now, "members": ids, "answers": answers}, nil
}
