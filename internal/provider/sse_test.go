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
