package provider

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

// Event is one server-sent event as it arrived. Raw is every byte of it, including the
// blank line that ends it, so relaying Raw reproduces the upstream stream exactly. Name and
// Data are the parsed "event" field and the joined "data" lines. All three stay valid only
// until the next call to Next.
type Event struct {
	Raw  []byte
	Name []byte
	Data []byte
}

// EventReader splits a text/event-stream into events. It is a small line scanner of our own
// because relaying needs the exact bytes of each event (bufio.Scanner would drop line
// endings) and no line length limit (a long tool input must not end the stream, unlike the
// older implementation's 1 MiB scanner limit).
type EventReader struct {
	br    *bufio.Reader
	raw   []byte
	data  []byte
	lines [][2]int // offsets of data values in raw
}

var readerPool = sync.Pool{New: func() any {
	return &EventReader{br: bufio.NewReaderSize(nil, 32<<10), raw: make([]byte, 0, 4<<10)}
}}

// NewEventReader returns a pooled reader over r. Call Release when done with it.
func NewEventReader(r io.Reader) *EventReader {
	er := readerPool.Get().(*EventReader)
	er.br.Reset(r)
	return er
}

// Release returns the reader to the pool; it must not be used afterwards.
func (er *EventReader) Release() {
	er.br.Reset(nil)
	if cap(er.raw) > 1<<20 { // do not keep a huge buffer from one long event
		er.raw = make([]byte, 0, 4<<10)
		er.data = nil
	}
	readerPool.Put(er)
}

// ErrTruncated means the stream ended in the middle of a line: the partial event is dropped.
var ErrTruncated = errors.New("event stream ended mid-line")

// Next reads the next event. It returns io.EOF at a clean end of the stream, ErrTruncated
// when the stream ends inside a line, or the underlying read error. An event whose lines
// are complete but which lacks the final blank line at the end of the stream is returned
// normally (lenient), with Raw exactly as received.
func (er *EventReader) Next() (Event, error) {
	er.raw = er.raw[:0]
	er.lines = er.lines[:0]
	nameStart, nameEnd := -1, -1
	for {
		lineStart := len(er.raw)
		// Read one full line, however long, appending to raw.
		var err error
		for {
			var chunk []byte
			chunk, err = er.br.ReadSlice('\n')
			er.raw = append(er.raw, chunk...)
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil {
			if err == io.EOF && len(er.raw) == lineStart && lineStart > 0 {
				// Complete lines but no terminating blank line: hand out what we have.
				return er.event(nameStart, nameEnd), nil
			}
			if len(er.raw) == 0 && err == io.EOF {
				return Event{}, io.EOF
			}
			if err == io.EOF {
				return Event{}, ErrTruncated
			}
			return Event{}, err
		}
		line := er.raw[lineStart : len(er.raw)-1] // without '\n'
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			return er.event(nameStart, nameEnd), nil
		}
		field, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(field) == 0 {
			continue // a field name alone carries nothing we need; a comment starts with ':'
		}
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		start := lineStart + (len(line) - len(value))
		switch string(field) {
		case "event":
			nameStart, nameEnd = start, start+len(value)
		case "data":
			er.lines = append(er.lines, [2]int{start, start + len(value)})
		}
	}
}

func (er *EventReader) event(nameStart, nameEnd int) Event {
	ev := Event{Raw: er.raw}
	if nameStart >= 0 {
		ev.Name = er.raw[nameStart:nameEnd]
	}
	switch len(er.lines) {
	case 0:
	case 1:
		ev.Data = er.raw[er.lines[0][0]:er.lines[0][1]]
	default:
		er.data = er.data[:0]
		for i, l := range er.lines {
			if i > 0 {
				er.data = append(er.data, '\n')
			}
			er.data = append(er.data, er.raw[l[0]:l[1]]...)
		}
		ev.Data = er.data
	}
	return ev
}
