package provider_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/fluxcode/fluxcode/internal/provider"
)

type gotEvent struct{ raw, name, data string }

func readAll(t *testing.T, r io.Reader) ([]gotEvent, error) {
	t.Helper()
	er := provider.NewEventReader(r)
	defer er.Release()
	var out []gotEvent
	for {
		ev, err := er.Next()
		if err != nil {
			return out, err
		}
		out = append(out, gotEvent{string(ev.Raw), string(ev.Name), string(ev.Data)})
	}
}

func TestEventReader(t *testing.T) {
	stream := "event: message_start\ndata: {\"a\":1}\n\n" +
		": a comment\r\nevent:ping\r\ndata:{\"type\":\"ping\"}\r\n\r\n" +
		"data: line1\ndata: line2\n\n"
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(stream),
		"one byte": iotest.OneByteReader(strings.NewReader(stream)),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := readAll(t, r)
			if err != io.EOF {
				t.Fatalf("err = %v, want io.EOF", err)
			}
			want := []gotEvent{
				{"event: message_start\ndata: {\"a\":1}\n\n", "message_start", `{"a":1}`},
				{": a comment\r\nevent:ping\r\ndata:{\"type\":\"ping\"}\r\n\r\n", "ping", `{"type":"ping"}`},
				{"data: line1\ndata: line2\n\n", "", "line1\nline2"},
			}
			if len(got) != len(want) {
				t.Fatalf("got %d events %q, want %d", len(got), got, len(want))
			}
			var joined strings.Builder
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("event %d = %q, want %q", i, got[i], want[i])
				}
				joined.WriteString(got[i].raw)
			}
			if joined.String() != stream {
				t.Errorf("raw bytes do not rebuild the stream:\n%q\n%q", joined.String(), stream)
			}
		})
	}
}

func TestEventReaderLongLine(t *testing.T) {
	big := strings.Repeat("x", 3<<20) // far beyond the reader's buffer and any line limit
	stream := "event: content_block_delta\ndata: " + big + "\n\n"
	got, err := readAll(t, strings.NewReader(stream))
	if err != io.EOF {
		t.Fatalf("err = %v", err)
	}
	if len(got) != 1 || got[0].data != big || got[0].raw != stream {
		t.Fatalf("long event not read whole (got %d events)", len(got))
	}
}

func TestEventReaderEnds(t *testing.T) {
	t.Run("MissingFinalBlankLineIsLenient", func(t *testing.T) {
		got, err := readAll(t, strings.NewReader("event: a\ndata: 1\n\nevent: message_stop\ndata: {}\n"))
		if err != io.EOF || len(got) != 2 || got[1].name != "message_stop" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
	t.Run("CutMidLineIsTruncated", func(t *testing.T) {
		got, err := readAll(t, strings.NewReader("event: a\ndata: 1\n\nevent: b\ndata: {\"par"))
		if !errors.Is(err, provider.ErrTruncated) || len(got) != 1 {
			t.Fatalf("got %q, %v; want one event and ErrTruncated", got, err)
		}
	})
	t.Run("ReadErrorIsReturned", func(t *testing.T) {
		boom := errors.New("connection reset")
		r := io.MultiReader(strings.NewReader("event: a\ndata: 1\n\n"), iotest.ErrReader(boom))
		got, err := readAll(t, r)
		if !errors.Is(err, boom) || len(got) != 1 {
			t.Fatalf("got %q, %v; want one event and the read error", got, err)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		got, err := readAll(t, bytes.NewReader(nil))
		if err != io.EOF || len(got) != 0 {
			t.Fatalf("got %q, %v", got, err)
		}
	})
}

// chunked hands out a stream in pieces of the given sizes, in turn, so that events and lines
// straddle reads in every way.
type chunked struct {
	s     string
	sizes []int
	i     int
}

func (c *chunked) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	n := min(c.sizes[c.i%len(c.sizes)], len(p), len(c.s))
	c.i++
	copy(p, c.s[:n])
	c.s = c.s[n:]
	return n, nil
}

// TestEventReaderAnyChunking: events small and large (beyond the small read array, the
// pooled buffer and the largest pooled size) come out whole whatever the read sizes, and
// their raw bytes rebuild the stream.
func TestEventReaderAnyChunking(t *testing.T) {
	var stream strings.Builder
	var want []gotEvent
	for i, size := range []int{3, 700, 10, 5000, 1, 90000, 40, 511, 512, 513, 4096, 8} {
		data := strings.Repeat(string(rune('a'+i)), size)
		ev := "event: e" + string(rune('a'+i)) + "\ndata: " + data + "\n\n"
		stream.WriteString(ev)
		want = append(want, gotEvent{ev, "e" + string(rune('a'+i)), data})
	}
	readers := map[string]func() io.Reader{
		"whole":      func() io.Reader { return strings.NewReader(stream.String()) },
		"one byte":   func() io.Reader { return iotest.OneByteReader(strings.NewReader(stream.String())) },
		"half":       func() io.Reader { return iotest.HalfReader(strings.NewReader(stream.String())) },
		"data+EOF":   func() io.Reader { return iotest.DataErrReader(strings.NewReader(stream.String())) },
		"odd chunks": func() io.Reader { return &chunked{s: stream.String(), sizes: []int{7, 1000, 1, 333, 4097, 2}} },
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			got, err := readAll(t, r())
			if err != io.EOF {
				t.Fatalf("err = %v, want io.EOF", err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d events, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("event %d differs: got %d raw bytes, want %d", i, len(got[i].raw), len(want[i].raw))
				}
			}
		})
	}
}

// Ready says whether the next event is here already: after a read that brought two events it
// is true once and false after the second, and true at the end of the stream.
func TestEventReaderReady(t *testing.T) {
	pr, pw := io.Pipe()
	er := provider.NewEventReader(pr)
	defer er.Release()
	go func() {
		_, _ = pw.Write([]byte("event: a\ndata: 1\n\nevent: b\ndata: 2\n\n"))
		_, _ = pw.Write([]byte("event: c\ndata: 3\r\n\r\n"))
		pw.Close()
	}()
	want := []struct {
		name  string
		ready bool
	}{{"a", true}, {"b", false}, {"c", true}}
	for _, w := range want {
		ev, err := er.Next()
		if err != nil {
			t.Fatal(err)
		}
		if string(ev.Name) != w.name {
			t.Fatalf("event %q, want %q", ev.Name, w.name)
		}
		if w.name == "c" {
			// The pipe's close may not have been read yet; Ready must turn true without a
			// read only once it has: read to the end, then ask.
			if _, err := er.Next(); err != io.EOF {
				t.Fatalf("after the last event: %v, want EOF", err)
			}
		}
		if got := er.Ready(); got != w.ready {
			t.Fatalf("Ready after %q = %v, want %v", w.name, got, w.ready)
		}
	}
}
