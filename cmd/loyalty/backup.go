package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/loyaltyhq/loyalty/store"
)

// runBackup copies a database, from a running server (--url, without
// stopping it) or from a file no server has open (--db). The copy is
// written next to its destination, checked like verify does, and only then
// renamed into place, so FILE is either the old file or a good copy.
// Restoring is starting serve on the copy.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	url := fs.String("url", "", "address of a running server, like http://127.0.0.1:8080")
	key := fs.String("key", "", "admin API key for --url")
	dbPath := fs.String("db", "", "database file no server has open")
	to := fs.String("to", "", "file to write the copy to")
	if err := envFlags(fs, "key"); err != nil {
		return err
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *to == "" || (*url == "") == (*dbPath == "") {
		fmt.Fprintln(stderr, "usage: loyalty backup (--url URL [--key KEY] | --db FILE) --to FILE")
		return errUsage
	}
	var n int64
	var err error
	if *url != "" {
		n, err = writeVerified(ctx, *to, stdout, func(w io.Writer) (int64, error) { return backupFromServer(ctx, *url, *key, w) })
	} else {
		n, err = writeVerified(ctx, *to, stdout, func(w io.Writer) (int64, error) { return backupFromFile(*dbPath, w) })
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %d bytes to %s; the copy verifies\n", n, *to)
	return nil
}

// writeVerified writes a database copy with write into a temp file next to
// to, makes it durable, checks it like verify does (the problems go to
// report) and only then renames it into place, so that to is either what
// it was or a good copy.
func writeVerified(ctx context.Context, to string, report io.Writer, write func(io.Writer) (int64, error)) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(to), filepath.Base(to)+".*.tmp")
	if err != nil {
		return 0, err
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := write(tmp)
	if err != nil {
		return n, err
	}
	if err := tmp.Sync(); err != nil {
		return n, err
	}
	if err := tmp.Close(); err != nil {
		return n, err
	}
	if err := verifyCopy(ctx, tmp.Name(), report); err != nil {
		return n, err
	}
	if err := os.Rename(tmp.Name(), to); err != nil {
		return n, err
	}
	keep = true
	syncDir(filepath.Dir(to))
	return n, nil
}

func backupFromServer(ctx context.Context, url, key string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL(url)+"/v1/admin/backup", nil)
	if err != nil {
		return 0, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var body struct {
			Error struct{ Code, Message string }
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
			return 0, fmt.Errorf("backup: server answered %s: %s: %s", res.Status, body.Error.Code, body.Error.Message)
		}
		return 0, fmt.Errorf("backup: server answered %s", res.Status)
	}
	n, err := io.Copy(w, res.Body)
	if err != nil {
		return n, fmt.Errorf("backup: the copy was cut after %d bytes: %w", n, err)
	}
	return n, nil
}

func backupFromFile(path string, w io.Writer) (int64, error) {
	opts := store.DefaultOptions()
	opts.ReadOnly = true
	db, err := store.Open(path, opts)
	if err != nil {
		return 0, explainLocked(err, true)
	}
	defer db.Close()
	return db.WriteTo(w)
}

// verifyCopy opens the copy read-only and runs every check verify runs.
func verifyCopy(ctx context.Context, path string, stdout io.Writer) error {
	opts := store.DefaultOptions()
	opts.ReadOnly = true
	db, err := store.Open(path, opts)
	if err != nil {
		return fmt.Errorf("backup: the copy does not open: %w", err)
	}
	defer db.Close()
	n, err := verifyDB(ctx, db, stdout)
	if err != nil {
		return fmt.Errorf("backup: verify the copy: %w", err)
	}
	if n > 0 {
		return errors.New("backup: the copy has problems; it was not kept")
	}
	return nil
}

// syncDir makes the rename durable; a failure only weakens that, so it is
// not reported.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// httpURL takes a server's address as people type it: without a scheme
// (localhost:8080) it is http, as the server logs it.
func httpURL(addr string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimSuffix(addr, "/")
}

// backupLayout is how the backup job names a copy: by the engine time it
// was taken, in UTC, so that names sort in time order.
const backupLayout = "loyalty-20060102T150405Z.db"

var backupNamePattern = regexp.MustCompile(`^loyalty-\d{8}T\d{6}Z\.db$`)

// backupJob is the backup job on a bbolt database: a copy of the live
// file, taken in one read transaction while the tills go on, written into
// dir under its time, verified, and then the copies beyond the newest keep
// are removed. Files in dir that are not named like its copies are left
// alone.
func backupJob(db *store.DB, dir string, keep int) func(ctx context.Context, at time.Time) (int64, error) {
	return func(ctx context.Context, at time.Time) (int64, error) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, fmt.Errorf("--backup-dir: %w", err)
		}
		to := filepath.Join(dir, at.UTC().Format(backupLayout))
		var problems bytes.Buffer
		n, err := writeVerified(ctx, to, &problems, func(w io.Writer) (int64, error) { return db.WriteTo(w) })
		if err != nil {
			if problems.Len() > 0 {
				err = fmt.Errorf("%w:\n%s", err, strings.TrimSpace(problems.String()))
			}
			return n, err
		}
		return n, pruneBackups(dir, keep)
	}
}

// pruneBackups removes the backup job's copies in dir but the newest keep.
func pruneBackups(dir string, keep int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var copies []string
	for _, e := range entries {
		if e.Type().IsRegular() && backupNamePattern.MatchString(e.Name()) {
			copies = append(copies, e.Name())
		}
	}
	sort.Strings(copies)
	var errs []error
	for len(copies) > keep {
		if err := os.Remove(filepath.Join(dir, copies[0])); err != nil {
			errs = append(errs, err)
		}
		copies = copies[1:]
	}
	return errors.Join(errs...)
}
