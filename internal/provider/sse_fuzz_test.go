package provider_test

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// chunkReader hands out data in pieces whose sizes come from cuts (cycled): a cut of 0 is an
// empty read, an odd cut that reaches the end returns the last bytes together with io.EOF.
type chunkReader struct {
	data  []byte
	cuts  []byte
	i     int
	empty bool // the previous read was empty: the next one is not (no endless empty reads)
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	size := len(r.data)
	if len(r.cuts) > 0 {
		c := r.cuts[r.i%len(r.cuts)]
		r.i++
		size = int(c)
		if c >= 200 {
			size = int(c-200) * 512 // now and then a large read, past the reader's buffers
		}
		if size == 0 && r.empty {
			size = 1
		}
	}
	r.empty = size == 0
	n := copy(p, r.data[:min(size, len(r.data))])
	r.data = r.data[n:]
	if len(r.data) == 0 && len(r.cuts) > 0 && r.cuts[(r.i-1)%len(r.cuts)]%2 == 1 {
		return n, io.EOF
	}
	return n, nil
}

// readChecked reads every event, asking Ready before each Next as the relay does.
func readChecked(r io.Reader) ([]gotEvent, error) {
	er := provider.NewEventReader(r)
	defer er.Release()
	var out []gotEvent
	for {
		er.Ready()
		ev, err := er.Next()
		if err != nil {
			return out, err
		}
		out = append(out, gotEvent{string(ev.Raw), string(ev.Name), string(ev.Data)})
	}
}

// FuzzEventReader: the events of a stream do not depend on how the stream is cut into
// reads, relaying every Raw reproduces the stream (exactly at a clean end, a prefix when
// it ends mid-line), and nothing panics.
func FuzzEventReader(f *testing.F) {
	f.Add([]byte("event: message_start\ndata: {\"a\":1}\n\n: c\r\nevent:ping\r\ndata:{}\r\n\r\ndata: l1\ndata: l2\n\n"), []byte{1, 3, 0, 7})
	f.Add([]byte("data: "+strings.Repeat("x", 9000)+"\n\nevent: e\ndata"), []byte{205, 2, 17})
	f.Add([]byte("event: a\n\n\n\ndata:\ndata:\n\nid: 1\nretry: 2\n\n:x"), []byte{1})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		whole, wholeErr := readChecked(bytes.NewReader(stream))
		split, splitErr := readChecked(&chunkReader{data: stream, cuts: cuts})
		if !errors.Is(wholeErr, io.EOF) && !errors.Is(wholeErr, provider.ErrTruncated) {
			t.Fatalf("unexpected end: %v", wholeErr)
		}
		if !errors.Is(splitErr, wholeErr) || !slices.Equal(whole, split) {
			t.Fatalf("cut into reads %v the stream reads differently:\nwhole %q (%v)\nsplit %q (%v)", cuts, whole, wholeErr, split, splitErr)
		}
		var raw strings.Builder
		for _, ev := range whole {
			raw.WriteString(ev.raw)
		}
		if errors.Is(wholeErr, io.EOF) && raw.String() != string(stream) ||
			!strings.HasPrefix(string(stream), raw.String()) {
			t.Fatalf("relayed %q of %q", raw.String(), stream)
		}
	})
}
