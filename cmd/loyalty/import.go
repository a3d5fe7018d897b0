package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/loyaltyhq/loyalty/engine"
)

// importChunkBytes is about how much of the file one request carries: far
// below the server's import limit, so a cut connection costs little, and
// large enough that requests do not dominate.
const importChunkBytes = 4 << 20

// importProgress is what the resume file keeps after each chunk the
// server answered: where the next chunk starts and the report so far.
type importProgress struct {
	Offset int64               `json:"offset"`
	Line   int                 `json:"line"`
	Report engine.ImportReport `json:"report"`
}

// runImport sends a file of members to a running server's import, a chunk
// of whole lines at a time. After each chunk it records in FILE.progress
// how far it got, so that a run that was interrupted resumes there;
// sending a chunk again would be safe too, since lines are keyed by
// external_id and an identical line is reported unchanged.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "address of the running server")
	key := fs.String("key", "", "admin API key")
	if err := envFlags(fs, "key"); err != nil {
		return err
	}
	// FILE comes first in the usage line; flags stop at the first
	// argument that is not one, so it moves to the end.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(args[1:len(args):len(args)], args[0])
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: loyalty import FILE [--url URL] [--key KEY]   (FILE: .csv with a header row, or NDJSON)")
		return errUsage
	}
	path := fs.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	contentType := "application/x-ndjson"
	csv := strings.HasSuffix(strings.ToLower(path), ".csv")
	if csv {
		contentType = "text/csv"
	}
	br := bufio.NewReaderSize(f, 1<<20)
	var header []byte
	if csv {
		if header, err = br.ReadBytes('\n'); err != nil && len(header) == 0 {
			return fmt.Errorf("import: %s has no header row", path)
		}
	}
	progressPath := path + ".progress"
	prog := importProgress{Offset: int64(len(header)), Line: 1, Report: engine.ImportReport{Errors: []engine.ImportError{}}}
	if csv {
		prog.Line = 2
	}
	if b, err := os.ReadFile(progressPath); err == nil {
		if err := json.Unmarshal(b, &prog); err != nil {
			return fmt.Errorf("import: %s is not a progress file this program wrote (delete it to start over): %w", progressPath, err)
		}
		fmt.Fprintf(stderr, "resuming %s at line %d (byte %d), as %s says\n", path, prog.Line, prog.Offset, progressPath)
		if _, err := f.Seek(prog.Offset, io.SeekStart); err != nil {
			return err
		}
		br.Reset(f)
	}
	bar := newProgressBar(stderr, st.Size(), prog.Offset, prog.Line)
	for {
		chunk, lines, err := readChunk(br)
		if err != nil {
			return err
		}
		if len(chunk) == 0 {
			break
		}
		body := chunk
		if csv {
			body = append(append([]byte(nil), header...), chunk...)
		}
		rep, err := postImport(ctx, *url, *key, contentType, body)
		if err != nil {
			return fmt.Errorf("import: lines from %d: %w (run the same command again to resume)", prog.Line, err)
		}
		// The server numbers the lines of each request from its first;
		// the report gives them as lines of the file.
		first := 1
		if csv {
			first = 2
		}
		for i := range rep.Errors {
			rep.Errors[i].Line += prog.Line - first
		}
		prog.Report.Add(rep)
		prog.Offset += int64(len(chunk))
		prog.Line += lines
		if err := writeProgress(progressPath, &prog); err != nil {
			return err
		}
		bar.update(prog.Offset, prog.Line-1)
	}
	bar.done()
	r := prog.Report
	fmt.Fprintf(stdout, "created %d, unchanged %d, failed %d\n", r.Created, r.Unchanged, r.Failed)
	for _, e := range r.Errors {
		if e.Field != "" {
			fmt.Fprintf(stdout, "line %d: %s: %s\n", e.Line, e.Field, e.Message)
		} else {
			fmt.Fprintf(stdout, "line %d: %s\n", e.Line, e.Message)
		}
	}
	if err := os.Remove(progressPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if r.Failed > 0 {
		return exitError(1)
	}
	return nil
}

// readChunk reads whole lines up to about importChunkBytes and counts
// them. A CSV field with a line break inside quotes would be cut at a
// chunk's end: the server then reports that line malformed.
func readChunk(br *bufio.Reader) ([]byte, int, error) {
	var buf bytes.Buffer
	lines := 0
	for buf.Len() < importChunkBytes {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			buf.Write(line)
			lines++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
	}
	return buf.Bytes(), lines, nil
}

func writeProgress(path string, p *importProgress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func postImport(ctx context.Context, url, key, contentType string, body []byte) (*engine.ImportReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, httpURL(url)+"/v1/members/import", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			return nil, fmt.Errorf("server answered %s: %s: %s", res.Status, e.Error.Code, e.Error.Message)
		}
		return nil, fmt.Errorf("server answered %s", res.Status)
	}
	var rep engine.ImportReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("the server's answer is not a report: %w", err)
	}
	return &rep, nil
}

// progressBar shows how far an import got: a bar with the rate and the
// time left on a terminal, a plain line per chunk otherwise.
type progressBar struct {
	w         io.Writer
	tty       bool
	size      int64
	start     time.Time
	fromBytes int64
	fromLine  int
}

func newProgressBar(w io.Writer, size, from int64, line int) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressBar{w: w, tty: tty, size: size, start: time.Now(), fromBytes: from, fromLine: line}
}

func (p *progressBar) update(offset int64, lines int) {
	elapsed := time.Since(p.start)
	rate := float64(offset-p.fromBytes) / max(elapsed.Seconds(), 1e-3)
	var eta time.Duration
	if rate > 0 {
		eta = time.Duration(float64(p.size-offset) / rate * float64(time.Second)).Round(time.Second)
	}
	pct := 100.0
	if p.size > 0 {
		pct = 100 * float64(offset) / float64(p.size)
	}
	linesPerSec := float64(lines+1-p.fromLine) / max(elapsed.Seconds(), 1e-3)
	if !p.tty {
		fmt.Fprintf(p.w, "imported %d lines (%.1f%%), %.0f lines/s\n", lines, pct, linesPerSec)
		return
	}
	const width = 30
	filled := int(pct / 100 * width)
	fmt.Fprintf(p.w, "\r[%s%s] %5.1f%%  %d lines  %.0f lines/s  ETA %s ", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), pct, lines, linesPerSec, eta)
}

func (p *progressBar) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
