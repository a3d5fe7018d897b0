package main

import (
	"io"
	"sync"
	"time"
)

// accessLogDelay is the longest an access line waits in memory before it
// is written.
const accessLogDelay = 100 * time.Millisecond

// accessLogHold is how many bytes of access lines are held before they
// are written without waiting for the timer: a few hundred lines.
const accessLogHold = 64 << 10

// logBuffer writes the access log in batches. One write(2) per request was
// 5.5% of a balance read's CPU (docs/PERFORMANCE.md); a batch costs one
// for hundreds. Every other line goes straight through, after whatever
// access lines are held, so the log keeps its order and a line about a
// failure never waits in memory for a process that may be about to die.
// What a crash can lose is the last accessLogDelay of access lines.
type logBuffer struct {
	mu     sync.Mutex
	out    io.Writer
	held   []byte
	closed bool // after Close every line goes straight through

	stop chan struct{}
	done chan struct{}
}

func newLogBuffer(out io.Writer) *logBuffer {
	b := &logBuffer{out: out, stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushEvery(accessLogDelay)
	return b
}

func (b *logBuffer) flushEvery(d time.Duration) {
	defer close(b.done)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.mu.Lock()
			b.flushLocked()
			b.mu.Unlock()
		}
	}
}

// flushLocked writes the held lines. slog ignores a failed write, and so
// does this: a log that cannot be written must not stop the server, and
// the next batch tries again.
func (b *logBuffer) flushLocked() {
	if len(b.held) > 0 {
		_, _ = b.out.Write(b.held)
		b.held = b.held[:0]
	}
}

// Held is the writer for access lines.
func (b *logBuffer) Held() io.Writer { return heldWriter{b} }

// Direct is the writer for every other line.
func (b *logBuffer) Direct() io.Writer { return directWriter{b} }

// Close writes what is held and stops the timer; lines written after it
// go straight through.
func (b *logBuffer) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	close(b.stop)
	b.flushLocked()
	b.mu.Unlock()
	<-b.done
}

type heldWriter struct{ b *logBuffer }

func (w heldWriter) Write(p []byte) (int, error) {
	b := w.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = append(b.held, p...)
	if b.closed || len(b.held) >= accessLogHold {
		b.flushLocked()
	}
	return len(p), nil
}

type directWriter struct{ b *logBuffer }

func (w directWriter) Write(p []byte) (int, error) {
	b := w.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	return b.out.Write(p)
}
