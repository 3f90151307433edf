package provider

import (
	"io"
	"testing"
)

// pausing hands out one event per Read and, before the second, records whether the reader
// still held a buffer while it waited.
type pausing struct {
	events []string
	er     *EventReader
	held   []bool
}

func (p *pausing) Read(b []byte) (int, error) {
	p.held = append(p.held, p.er.buf != nil)
	if len(p.events) == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.events[0])
	p.events = p.events[1:]
	return n, nil
}

// TestEventReaderHoldsNoBufferWhileWaiting: between events of a slow stream the reader gives
// its buffer back (issue 5: memory per open stream), so a thousand idle streams hold only
// their small read arrays.
func TestEventReaderHoldsNoBufferWhileWaiting(t *testing.T) {
	p := &pausing{events: []string{"event: a\ndata: 1\n\n", "event: b\ndata: 2\n\n", "event: c\ndata: 3\n\n"}}
	er := NewEventReader(p)
	defer er.Release()
	p.er = er
	for i := range 3 {
		if _, err := er.Next(); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	if _, err := er.Next(); err != io.EOF {
		t.Fatalf("end: %v, want io.EOF", err)
	}
	for i, held := range p.held {
		if held {
			t.Errorf("read %d waited with a buffer held", i)
		}
	}
	if len(p.held) != 4 {
		t.Fatalf("%d reads, want 4", len(p.held))
	}
}
