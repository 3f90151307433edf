package provider

import (
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
// endings) and no line length limit (a long tool input, well over 1 MiB on one data line, must not end the stream).
//
// Memory is what bounds how many streams a node holds open (issue 5: at most 64 KiB per open
// stream), and a stream spends nearly all its life waiting for the next event. So the reader
// holds a buffer only while it has bytes to work on: a read that finds nothing buffered
// waits in the reader's own small array, and the pooled buffer goes back to the pool. The
// upstream connection is buffered already (http.Transport), so reading it in small pieces
// costs no extra system calls.
type EventReader struct {
	r io.Reader
	// buf[start:end] are the bytes read and not yet handed out; nil while nothing is.
	buf        []byte
	start, end int
	bufp       *[]byte // the pool's handle of buf, reused so that giving it back allocates nothing
	// err is a read error that came with data, reported once that data is used up.
	err   error
	wait  [512]byte
	data  []byte
	lines [][2]int // offsets of data values from start
}

// eventBufSize is the pooled buffer of a reader at work: a few Anthropic events.
const eventBufSize = 4 << 10

// maxPooledBuf keeps a buffer grown for one huge event out of the pool.
const maxPooledBuf = 64 << 10

var (
	readerPool = sync.Pool{New: func() any { return new(EventReader) }}
	bufPool    = sync.Pool{New: func() any { b := make([]byte, eventBufSize); return &b }}
)

// NewEventReader returns a pooled reader over r. Call Release when done with it.
func NewEventReader(r io.Reader) *EventReader {
	er := readerPool.Get().(*EventReader)
	er.r = r
	return er
}

// Release returns the reader to the pool; it must not be used afterwards.
func (er *EventReader) Release() {
	er.dropBuf()
	er.r, er.err = nil, nil
	if cap(er.data) > maxPooledBuf {
		er.data = nil
	}
	readerPool.Put(er)
}

func (er *EventReader) dropBuf() {
	er.putBuf()
	er.buf, er.start, er.end = nil, 0, 0
}

// putBuf gives buf to the pool, unless it grew too large for it.
func (er *EventReader) putBuf() {
	if er.buf != nil && cap(er.buf) <= maxPooledBuf {
		if er.bufp == nil {
			er.bufp = new([]byte)
		}
		*er.bufp = er.buf[:cap(er.buf)]
		bufPool.Put(er.bufp)
	}
	er.bufp = nil
}

// Ready reports whether Next can return without reading: a whole event is buffered
// already, or the stream has ended. A relay writes events that arrived together and flushes
// them once, and never leaves one unflushed while it waits for the upstream.
func (er *EventReader) Ready() bool {
	if er.err != nil {
		return true
	}
	b := er.buf[er.start:er.end]
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\n\r\n"))
}

// ErrTruncated means the stream ended in the middle of a line: the partial event is dropped.
var ErrTruncated = errors.New("event stream ended mid-line")

// Next reads the next event. It returns io.EOF at a clean end of the stream, ErrTruncated
// when the stream ends inside a line, or the underlying read error. An event whose lines
// are complete but which lacks the final blank line at the end of the stream is returned
// normally (lenient), with Raw exactly as received.
func (er *EventReader) Next() (Event, error) {
	er.lines = er.lines[:0]
	nameStart, nameEnd := -1, -1
	scan := 0 // offset from start of the first byte not yet split into lines
	// searched: the bytes after scan already known to hold no line end, so that a long line
	// arriving in many small reads is searched once, not once per read (quadratic).
	searched := 0
	for {
		i := bytes.IndexByte(er.buf[er.start+scan+searched:er.end], '\n')
		if i < 0 {
			searched = er.end - er.start - scan
			err := er.fill()
			if err == nil {
				continue
			}
			pending := er.end - er.start
			switch {
			case err == io.EOF && pending > 0 && scan == pending:
				// Complete lines but no terminating blank line: hand out what we have.
				return er.event(pending, nameStart, nameEnd), nil
			case err == io.EOF && pending == 0:
				return Event{}, io.EOF
			case err == io.EOF:
				return Event{}, ErrTruncated
			}
			return Event{}, err
		}
		i += searched
		searched = 0
		lineStart, lineEnd := scan, scan+i // without '\n'
		scan += i + 1
		line := bytes.TrimSuffix(er.buf[er.start+lineStart:er.start+lineEnd], []byte{'\r'})
		if len(line) == 0 {
			return er.event(scan, nameStart, nameEnd), nil
		}
		field, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(field) == 0 {
			continue // a field name alone carries nothing we need; a comment starts with ':'
		}
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		vStart := lineStart + (len(line) - len(value))
		switch string(field) {
		case "event":
			nameStart, nameEnd = vStart, vStart+len(value)
		case "data":
			er.lines = append(er.lines, [2]int{vStart, vStart + len(value)})
		}
	}
}

// fill reads more bytes after end. With nothing buffered it waits in the small array and
// gives the pooled buffer back meanwhile; otherwise it reads into the buffer, moving the
// current event to its front or growing it when it is full.
func (er *EventReader) fill() error {
	if er.err != nil {
		return er.err // the stream has ended; what came with the error is in buf already
	}
	if er.start == er.end {
		er.dropBuf()
		n, err := er.r.Read(er.wait[:])
		er.err = err
		if n > 0 {
			er.bufp = bufPool.Get().(*[]byte)
			er.buf = *er.bufp
			er.end = copy(er.buf, er.wait[:n])
			return nil
		}
		return err // nil for an empty read: the caller tries again
	}
	if er.end == len(er.buf) {
		pending := er.end - er.start
		if er.start > 0 && pending <= len(er.buf)/2 {
			copy(er.buf, er.buf[er.start:er.end])
		} else {
			grown := make([]byte, 2*len(er.buf))
			copy(grown, er.buf[er.start:er.end])
			er.putBuf()
			er.buf = grown
		}
		er.start, er.end = 0, pending
	}
	n, err := er.r.Read(er.buf[er.end:])
	er.end += n
	er.err = err
	if n > 0 {
		return nil // the error, if any, is reported once these bytes are used up
	}
	return err
}

// event hands out the first size bytes after start as one event and moves past them.
func (er *EventReader) event(size, nameStart, nameEnd int) Event {
	raw := er.buf[er.start : er.start+size]
	er.start += size
	ev := Event{Raw: raw}
	if nameStart >= 0 {
		ev.Name = raw[nameStart:nameEnd]
	}
	switch len(er.lines) {
	case 0:
	case 1:
		ev.Data = raw[er.lines[0][0]:er.lines[0][1]]
	default:
		er.data = er.data[:0]
		for i, l := range er.lines {
			if i > 0 {
				er.data = append(er.data, '\n')
			}
			er.data = append(er.data, raw[l[0]:l[1]]...)
		}
		ev.Data = er.data
	}
	return ev
}
