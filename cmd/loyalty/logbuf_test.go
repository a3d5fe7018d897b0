package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogBufferKeepsOrderAcrossWriters(t *testing.T) {
	var out syncBuffer
	b := newLogBuffer(&out)
	defer b.Close()
	b.Held().Write([]byte("access 1\n"))
	b.Held().Write([]byte("access 2\n"))
	b.Direct().Write([]byte("error\n"))
	if got, want := out.String(), "access 1\naccess 2\nerror\n"; got != want {
		t.Fatalf("log = %q, want %q: a direct line must follow the access lines held before it", got, want)
	}
}

func TestLogBufferWritesHeldLinesWithoutAnotherWrite(t *testing.T) {
	var out syncBuffer
	b := newLogBuffer(&out)
	defer b.Close()
	b.Held().Write([]byte("access\n"))
	eventually(t, "the held line to be written by the timer", func() bool { return out.String() == "access\n" })
}

func TestLogBufferWritesAFullBufferAtOnce(t *testing.T) {
	var out syncBuffer
	b := newLogBuffer(&out)
	defer b.Close()
	line := strings.Repeat("x", 1023) + "\n"
	for range accessLogHold / len(line) {
		b.Held().Write([]byte(line))
	}
	if got := len(out.String()); got != accessLogHold {
		t.Fatalf("%d bytes written after %d held, want all of them", got, accessLogHold)
	}
}

func TestLogBufferCloseWritesWhatIsHeld(t *testing.T) {
	var out syncBuffer
	b := newLogBuffer(&out)
	b.Held().Write([]byte("last access\n"))
	b.Close()
	if got := out.String(); got != "last access\n" {
		t.Fatalf("after Close the log = %q, want the held line", got)
	}
	b.Held().Write([]byte("after close\n"))
	if got := out.String(); !strings.HasSuffix(got, "after close\n") {
		t.Fatalf("a line after Close was held: log = %q", got)
	}
	b.Close()
}

// BenchmarkAccessLog writes the server's access line to a file, as the
// service does, straight through and held.
func BenchmarkAccessLog(b *testing.B) {
	attrs := []slog.Attr{slog.String("method", "GET"), slog.String("route", "/v1/members/:id/balance"),
		slog.Int("status", 200), slog.Duration("duration", 180*time.Microsecond),
		slog.String("request_id", "3f1c2b9e-51d4-4a57-8c2e-0d7e9b6a4f10")}
	for _, mode := range []string{"direct", "held"} {
		b.Run(mode, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			logs := newLogBuffer(f)
			defer logs.Close()
			w := logs.Direct()
			if mode == "held" {
				w = logs.Held()
			}
			log := slog.New(slog.NewJSONHandler(w, nil))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					log.LogAttrs(b.Context(), slog.LevelInfo, "request", attrs...)
				}
			})
		})
	}
}

// failOnce refuses its first write, as a full pipe or a restarting journal
// might.
type failOnce struct {
	syncBuffer
	failed bool
}

func (f *failOnce) Write(p []byte) (int, error) {
	if !f.failed {
		f.failed = true
		return 0, errors.New("write refused")
	}
	return f.syncBuffer.Write(p)
}

func TestLogBufferGoesOnAfterAFailedWrite(t *testing.T) {
	out := &failOnce{}
	b := newLogBuffer(out)
	b.Held().Write([]byte("lost\n"))
	b.Direct().Write([]byte("error\n"))
	b.Held().Write([]byte("access after\n"))
	b.Close()
	if got, want := out.String(), "error\naccess after\n"; got != want {
		t.Fatalf("log = %q, want %q: one failed write must not silence the lines after it", got, want)
	}
}
