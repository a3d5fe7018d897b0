package http

import (
	"bufio"
	"context"
	"io"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/loyaltyhq/loyalty/engine"
)

// backupStallTimeout is how long a backup stream may make no progress
// before the connection is dropped. The server's WriteTimeout bounds a whole
// answer, which would cut a large backup short, so the stream keeps pushing
// its own deadline forward as long as bytes flow.
const backupStallTimeout = 30 * time.Second

// backup streams a consistent copy of the database: one read transaction,
// which never blocks the tills' writes. The body is written after the
// handler returns, so the access log line marks the start of the stream and
// a "backup sent" line its end.
func (s *Server) backup(c *fiber.Ctx) error {
	if s.cfg.NoBackup != "" {
		return engine.Errorf(engine.EUNPROCESSABLE, "%s", s.cfg.NoBackup)
	}
	if s.cfg.Backup == nil {
		return engine.Errorf(engine.ENOTFOUND, "this server has no database to back up")
	}
	name := "loyalty-" + s.cfg.Engine.Now().Format("20060102T150405Z") + ".db"
	c.Set(fiber.HeaderContentType, "application/octet-stream")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	conn := c.Context().Conn()
	id := c.Locals("request_id")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		ctx, done := s.streamContext(conn)
		defer done()
		start := time.Now()
		n, err := s.cfg.Backup(&progressWriter{ctx: ctx, w: w, conn: conn})
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			s.log.Error("backup failed", "request_id", id, "bytes", n, "err", err)
			// Without a length up front the answer is chunked, and ending
			// the stream would look like a complete file: dropping the
			// connection makes the client see the copy is cut.
			conn.Close()
			return
		}
		s.log.Info("backup sent", "request_id", id, "bytes", n, "took", time.Since(start))
	})
	return nil
}

// progressWriter moves the connection's write deadline forward on every
// write, so only a stalled client times out, and ends the copy, and with it
// the read transaction that bbolt's Close waits for, once ctx ends.
type progressWriter struct {
	ctx  context.Context
	w    io.Writer
	conn net.Conn
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if err := p.conn.SetWriteDeadline(time.Now().Add(backupStallTimeout)); err != nil {
		return 0, err
	}
	// Looked at after moving the deadline, which would otherwise undo the
	// cut streamContext makes when ctx ends.
	if p.ctx.Err() != nil {
		return 0, context.Cause(p.ctx)
	}
	return p.w.Write(b)
}
