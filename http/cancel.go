package http

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/loyaltyhq/loyalty/engine"
)

// Long reads (a rules diff, a simulation, an analytics page or export, a
// backup) can keep a core and a read transaction busy for minutes, and
// bbolt's Close waits for every read transaction. They stop when the
// client goes, when RequestTimeout passes, and as soon as the server shuts
// down; the engine checks the context between records.
//
// Every request runs under the server's context, which Shutdown cancels
// only once its grace period is over: writes in flight finish first.

// statusClientClosed is logged and counted for a request whose client went
// away before its answer (nginx's 499); nobody receives it.
const statusClientClosed = 499

var (
	errClientGone   = errors.New("the client closed the connection")
	errShuttingDown = engine.Errorf(engine.EUNAVAILABLE, "the server is shutting down; send the request again once it is back")
)

// clientPoll is how often a long read looks whether its client is still
// connected.
const clientPoll = 200 * time.Millisecond

// serverContext gives every request the server's context.
func (s *Server) serverContext(c *fiber.Ctx) error {
	c.SetUserContext(s.forced)
	return c.Next()
}

// longRead marks a route whose work stops when its client goes, after
// RequestTimeout, or when the server starts shutting down.
func (s *Server) longRead(c *fiber.Ctx) error {
	ctx, cancel := context.WithCancelCause(s.stopping)
	defer cancel(nil)
	stopWatch := watchClient(c.Context().Conn(), cancel)
	defer stopWatch()
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, s.cfg.RequestTimeout, engine.Errorf(engine.EUNAVAILABLE,
		"the request ran longer than %s and was stopped; ask for less (a shorter last, a narrower filter)", s.cfg.RequestTimeout))
	defer cancelTimeout()
	return s.interruptible(c, ctx)
}

// stopsAtShutdown marks a route whose work (a job run: chunks, each a
// transaction of its own) stops between two transactions when the server
// starts shutting down, however long it would run.
func (s *Server) stopsAtShutdown(c *fiber.Ctx) error { return s.interruptible(c, s.stopping) }

// interruptible runs the rest of the chain under ctx. An error from work
// whose context ended is the context's doing, so the answer says why it
// ended rather than passing on a bare "context canceled".
func (s *Server) interruptible(c *fiber.Ctx, ctx context.Context) error {
	c.SetUserContext(ctx)
	err := c.Next()
	if err != nil && ctx.Err() != nil {
		cause := context.Cause(ctx)
		s.log.Info("request stopped", "request_id", c.Locals("request_id"), "why", cause, "err", err)
		return cause
	}
	return err
}

// streamContext is the context of a body streamed after its handler
// returned (an export, a backup): it ends when the client goes or the
// server starts shutting down, and then cuts a write that is blocked on a
// client that reads nothing, which would otherwise hold the stream, and
// the read transaction behind it, until the write deadline. There is no
// deadline of its own: a stalled client is dropped by the write timeout,
// and a large backup may take long. done must be called before the stream
// returns, so the cut never falls on the answer's last bytes.
func (s *Server) streamContext(conn net.Conn) (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancelCause(s.stopping)
	stopWatch := watchClient(conn, cancel)
	stopCut := context.AfterFunc(ctx, func() { conn.SetWriteDeadline(time.Now()) })
	return ctx, func() {
		stopCut()
		stopWatch()
		cancel(nil)
	}
}

// watchClient cancels with errClientGone once the peer of conn has closed
// it. fasthttp reads nothing from a connection while its handler runs, so
// nothing else would notice: every clientPoll the socket is peeked without
// blocking, as net/http's background read does. A client that only shuts
// down its sending side counts as gone, as it does for net/http. stop ends
// the watch and returns once it no longer touches conn.
func watchClient(conn net.Conn, cancel context.CancelCauseFunc) (stop func()) {
	if tc, ok := conn.(*tls.Conn); ok {
		// Peeking at the socket under TLS sees the same end of stream.
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return func() {}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(clientPoll)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if peerClosed(rc) {
					cancel(errClientGone)
					return
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
