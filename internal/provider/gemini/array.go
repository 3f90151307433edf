package gemini

import (
	"bytes"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// variantArray is the Request.Variant of a streamGenerateContent request without alt=sse:
// its answer is one JSON array whose elements (partial GenerateContentResponses) are sent
// as they are made.
const variantArray = "array"

var _ provider.ArrayStreams = (*Provider)(nil)

// NewArrayEnd implements provider.ArrayStreams.
func (*Provider) NewArrayEnd(req provider.Request) provider.ArrayEnd {
	if req.Variant != variantArray {
		return nil
	}
	return &arrayEnd{}
}

// arrayPos is where an array stream stands between two reads.
type arrayPos uint8

const (
	posBefore arrayPos = iota // nothing but white space yet
	posOpen                   // after "[" or ",": an element may begin
	posAfter                  // an element has just closed
	posInside                 // inside an element (or a bare value at the top)
	posDone                   // the array closed, or the body is no array: nothing to add
)

// arrayEnd follows an array stream just enough to tell whether it ends between elements:
// the nesting depth (the array itself is depth 1) and whether a string is open. Inside a
// string it skips to the next quote or backslash, so the text of an answer costs little.
// It also reads the first key of each element: an element whose first key is "error" is
// the upstream's own report of a failure (the API writes {"error":{...}}).
type arrayEnd struct {
	pos      arrayPos
	depth    int
	inString bool
	escaped  bool
	// firstKey: an element object has just opened, its first key is next; key holds that
	// key while it is read (keyLen -1: it is not "error").
	firstKey, inKey bool
	key             [len("error")]byte
	keyLen          int
	failed          bool
	// errElem is the upstream's error element, from its first key on while it is read
	// (capturing) and whole once it closed; dropped past errorElementMax bytes.
	errElem   []byte
	capturing bool
}

// errorElementMax bounds the error element kept for classifying: Google's errors are a few
// hundred bytes, and a misbehaving upstream must not make the gateway buffer megabytes.
const errorElementMax = 64 << 10

// Add implements provider.ArrayEnd.
func (a *arrayEnd) Add(p []byte) {
	from := -1 // where in p the error element being captured resumes
	if a.capturing {
		from = 0
	}
	for i := 0; i < len(p) && a.pos != posDone; i++ {
		b := p[i]
		if a.inString {
			switch {
			case a.escaped:
				a.escaped = false
				a.keyLen = -1 // an escape: not the plain word "error"
			case b == '\\':
				a.escaped = true
			case b == '"':
				a.inString = false
				if a.inKey {
					a.inKey = false
					if !a.failed && string(a.key[:max(a.keyLen, 0)]) == "error" {
						a.failed, a.capturing = true, true
						a.errElem, from = append(a.errElem[:0], `{"error"`...), i+1
					}
				}
			default:
				j := bytes.IndexAny(p[i:], `"\`)
				if j < 0 {
					j = len(p) - i
				}
				if a.inKey {
					a.keep(p[i : i+j])
				}
				i += j - 1
			}
			continue
		}
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			a.inKey = a.firstKey && b == '"'
			a.keyLen = 0
			a.firstKey = a.depth == 1 && b == '{'
		}
		switch b {
		case ' ', '\t', '\r', '\n':
		case '[', '{':
			if a.pos == posBefore && b == '[' {
				a.pos, a.depth = posOpen, 1
				continue
			}
			a.value()
			a.depth++
		case ']', '}':
			a.depth--
			switch {
			case a.depth == 1:
				a.pos = posAfter
				if a.capturing {
					a.capture(p[from : i+1])
					a.capturing = false
				}
			case a.depth < 1:
				a.pos = posDone
			}
		case ',':
			if a.depth == 1 {
				a.pos = posOpen
			}
		case '"':
			a.value()
			a.inString = true
		default: // a number, true, false or null
			a.value()
		}
	}
	if a.capturing {
		a.capture(p[from:])
	}
}

// capture adds part of the error element to errElem, or drops it past errorElementMax.
func (a *arrayEnd) capture(part []byte) {
	if a.errElem == nil {
		return
	}
	if len(a.errElem)+len(part) > errorElementMax {
		a.errElem = nil
		return
	}
	a.errElem = append(a.errElem, part...)
}

// ErrorElement implements provider.ArrayEnd.
func (a *arrayEnd) ErrorElement() []byte {
	if a.capturing {
		return nil
	}
	return a.errElem
}

// keep adds part of an element's first key to key.
func (a *arrayEnd) keep(part []byte) {
	if a.keyLen < 0 || a.keyLen+len(part) > len(a.key) {
		a.keyLen = -1
		return
	}
	a.keyLen += copy(a.key[a.keyLen:], part)
}

// Failed implements provider.ArrayEnd.
func (a *arrayEnd) Failed() bool { return a.failed }

// value notes the start of a value: at the top of the array it begins an element.
func (a *arrayEnd) value() {
	switch {
	case a.pos == posBefore:
		a.pos = posDone // not an array
	case a.depth == 1:
		a.pos = posInside
	}
}

// ErrorEnd implements provider.ArrayEnd: the error element is what the API sends when an
// array stream fails after it began, {"error":{"code","message","status"}}, and the array's
// closing bracket.
func (a *arrayEnd) ErrorEnd(kind provider.ErrorKind, message, requestID string) []byte {
	var sep string
	switch {
	case a.failed && a.pos == posAfter:
		return []byte{']'} // the upstream's own error element ends it: never a second one
	case a.failed:
		return nil
	case a.pos == posOpen:
	case a.pos == posAfter:
		sep = ",\r\n"
	default:
		return nil
	}
	body := errorJSON(kind, statusOf(kind), message, requestID)
	out := make([]byte, 0, len(sep)+len(body)+1)
	out = append(out, sep...)
	out = append(out, body...)
	return append(out, ']')
}
