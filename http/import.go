package http

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/loyaltyhq/loyalty/engine"
)

// ImportLimit is the largest import body accepted. The body is read as it
// arrives and written a chunk at a time, never held whole.
const ImportLimit = 64 << 20

// importPath is the import's route, the one route whose body may exceed
// BodyLimit.
const importPath = "/v1/members/import"

// importChunk is how many lines one transaction writes. A till's purchase
// waits for the chunk being written (bbolt has one writer): with 500 lines
// a chunk (some 90 ms) 16 tills beside an import saw p50 73 ms, p99 168
// ms; with 100, p50 31 ms, p99 120 ms, for an import some 25% slower
// (docs/PERFORMANCE.md).
const importChunk = 100

// maxImportErrors bounds the errors an answer lists; Failed counts them
// all.
const maxImportErrors = 1000

// maxImportLine bounds one line of an import.
const maxImportLine = 64 << 10

// limitBody refuses, for every route but the import, a body larger than
// BodyLimit, and reads the rest whole, as fasthttp did before the server
// streamed request bodies (for the import): a handler never meets a
// stream, and no unread body is left on the connection, where it would
// be read as the next request. The import's connection is closed after
// an answer given before its body was read to the end.
func (s *Server) limitBody(c *fiber.Ctx) error {
	if c.Path() == importPath {
		err := c.Next()
		if c.Locals(bodyDrained) != true {
			c.Context().SetConnectionClose()
		}
		return err
	}
	n := c.Request().Header.ContentLength()
	if n > BodyLimit {
		c.Context().SetConnectionClose()
		return engine.Errorf(engine.EINVALID, "body is larger than %d bytes", BodyLimit)
	}
	if stream := c.Context().RequestBodyStream(); stream != nil {
		if n >= 0 {
			// Known to fit: fasthttp reads the rest of it here.
			c.Request().Body()
		} else {
			b, err := io.ReadAll(io.LimitReader(stream, BodyLimit+1))
			if err != nil {
				c.Context().SetConnectionClose()
				return engine.Errorf(engine.EINVALID, "reading the body: %v", err)
			}
			if len(b) > BodyLimit {
				// Closing with the body's end unread makes the kernel send a
				// reset, which can reach the client before it reads the
				// answer; a body a little over the limit is read out first.
				_, _ = io.Copy(io.Discard, io.LimitReader(stream, overLimitDrain))
				c.Context().SetConnectionClose()
				return engine.Errorf(engine.EINVALID, "body is larger than %d bytes", BodyLimit)
			}
			c.Request().SetBody(b)
		}
	}
	return c.Next()
}

// overLimitDrain is how much of a body past BodyLimit is read and dropped
// before the connection is closed.
const overLimitDrain = 64 << 10

// bodyDrained is the local an import sets once it read its body to the
// end, so that its connection may serve another request.
const bodyDrained = "body_drained"

// importMembers reads an NDJSON or CSV body line by line, checks each,
// and hands the engine a chunk at a time; the answer adds up the chunks.
func (s *Server) importMembers(c *fiber.Ctx) error {
	ct, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	var body io.Reader = bytes.NewReader(c.Body())
	if stream := c.Context().RequestBodyStream(); stream != nil {
		body = stream
	}
	lim := &countingReader{r: io.LimitReader(body, ImportLimit+1)}
	var next func() (engine.NumberedLine, bool, error)
	var err error
	switch ct {
	case "application/x-ndjson", "application/jsonl":
		next = ndjsonLines(lim)
	case "text/csv":
		if next, err = csvLines(lim); err != nil {
			return err
		}
	default:
		return engine.Errorf(engine.EINVALID, "an import is application/x-ndjson (one JSON object a line) or text/csv with a header row, not %q", ct)
	}
	ctx := c.UserContext()
	report := &engine.ImportReport{Errors: []engine.ImportError{}}
	firstLine := map[string]int{}
	var chunk []engine.NumberedLine
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		r, err := s.cfg.Engine.Import(ctx, chunk)
		if err != nil {
			return err
		}
		chunk = chunk[:0]
		report.Add(r)
		return nil
	}
	for {
		nl, ok, lineErr := next()
		if lim.n > ImportLimit {
			return engine.Errorf(engine.EINVALID, "an import body is at most %d bytes: split the file", ImportLimit)
		}
		if !ok {
			break
		}
		if lineErr != nil {
			report.Fail(nl.N, lineErr)
			continue
		}
		if id := nl.Line.ExternalID; id != "" {
			if first, dup := firstLine[id]; dup {
				report.Fail(nl.N, engine.FieldErrorf(engine.EINVALID, "external_id", "%q is on line %d already", id, first))
				continue
			}
			firstLine[id] = nl.N
		}
		chunk = append(chunk, nl)
		if len(chunk) == importChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if declared := c.Request().Header.ContentLength(); lim.broken == nil && declared > 0 && lim.n < int64(declared) {
		// The stream ends quietly when the client goes away mid-body.
		lim.broken = fmt.Errorf("%d bytes were declared", declared)
	}
	if lim.broken != nil {
		// No report of a file that did not arrive whole; its last chunk,
		// which may end in a cut line, is not written.
		return engine.Errorf(engine.EINVALID, "the body broke off after %d bytes (%v): lines before it may be imported, and sending the file again is safe (they come back unchanged)", lim.n, lim.broken)
	}
	if err := flush(); err != nil {
		return err
	}
	c.Locals(bodyDrained, true)
	if len(report.Errors) > maxImportErrors {
		report.Errors = report.Errors[:maxImportErrors]
	}
	return c.JSON(report)
}

type countingReader struct {
	r io.Reader
	n int64
	// broken is the error that cut the body short, if one did: the
	// line readers see it as the end of the body.
	broken error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.broken = err
	}
	return n, err
}

// ndjsonLines reads one JSON object a line; blank lines are skipped.
func ndjsonLines(r io.Reader) func() (engine.NumberedLine, bool, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	return func() (engine.NumberedLine, bool, error) {
		for {
			line, err := br.ReadSlice('\n')
			long := errors.Is(err, bufio.ErrBufferFull)
			if long {
				// Skip the rest of an over-long line.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
			}
			if len(line) == 0 && err != nil {
				return engine.NumberedLine{}, false, nil
			}
			n++
			nl := engine.NumberedLine{N: n}
			if long {
				return nl, true, engine.Errorf(engine.EINVALID, "the line is longer than %d bytes", maxImportLine)
			}
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				if err != nil {
					return engine.NumberedLine{}, false, nil
				}
				continue
			}
			return nl, true, DecodeJSON(line, &nl.Line)
		}
	}
}

// csvColumns are the CSV columns besides attributes.NAME.
var csvColumns = map[string]func(l *engine.ImportLine, v string) error{
	"external_id": func(l *engine.ImportLine, v string) error { l.ExternalID = v; return nil },
	"email":       func(l *engine.ImportLine, v string) error { l.Email = v; return nil },
	"phone":       func(l *engine.ImportLine, v string) error { l.Phone = v; return nil },
	"name":        func(l *engine.ImportLine, v string) error { l.Name = v; return nil },
	"birthday":    func(l *engine.ImportLine, v string) error { l.Birthday = v; return nil },
	"enrolled_at": func(l *engine.ImportLine, v string) error { l.EnrolledAt = v; return nil },
	"tier":        func(l *engine.ImportLine, v string) error { l.Tier = v; return nil },
	"points_expire_at": func(l *engine.ImportLine, v string) error {
		l.PointsExpireAt = v
		return nil
	},
	"points": func(l *engine.ImportLine, v string) error {
		if v == "" {
			return nil
		}
		p, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return engine.FieldErrorf(engine.EINVALID, "points", "must be a whole number of points without separators, not %q", v)
		}
		l.Points = p
		return nil
	},
}

// csvLines reads a CSV file whose first row names the columns.
func csvLines(r io.Reader) (func() (engine.NumberedLine, bool, error), error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 64<<10))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, engine.Errorf(engine.EINVALID, "a CSV import starts with a header row naming the columns: %v", err)
	}
	header = append([]string(nil), header...)
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		header[i] = h
		if _, ok := csvColumns[h]; !ok && !strings.HasPrefix(h, "attributes.") {
			return nil, engine.Errorf(engine.EINVALID, "CSV column %q is not one the import knows (external_id, email, phone, name, birthday, enrolled_at, tier, points, points_expire_at, attributes.NAME)", h)
		}
	}
	return func() (engine.NumberedLine, bool, error) {
		rec, err := cr.Read()
		if err == io.EOF {
			return engine.NumberedLine{}, false, nil
		}
		var nl engine.NumberedLine
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				nl.N = pe.Line
				if errors.Is(pe.Err, csv.ErrFieldCount) {
					return nl, true, engine.Errorf(engine.EINVALID, "the row has %d fields, the header %d", len(rec), len(header))
				}
				return nl, true, engine.Errorf(engine.EINVALID, "malformed CSV: %v", pe.Err)
			}
			return engine.NumberedLine{}, false, nil
		}
		// FieldPos only knows a record that was read whole.
		nl.N, _ = cr.FieldPos(0)
		for i, v := range rec {
			h := header[i]
			if name, ok := strings.CutPrefix(h, "attributes."); ok {
				if v != "" {
					if nl.Line.Attributes == nil {
						nl.Line.Attributes = map[string]string{}
					}
					nl.Line.Attributes[name] = v
				}
				continue
			}
			if err := csvColumns[h](&nl.Line, v); err != nil {
				return nl, true, err
			}
		}
		return nl, true, nil
	}, nil
}
