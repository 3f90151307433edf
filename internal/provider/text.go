package provider

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// redacted replaces anything that looks like a credential in stored or logged text.
const redacted = "[redacted]"

// secretPrefixes start the credentials the upstreams and FluxCode issue: Anthropic and
// OpenAI keys (sk-…), FluxCode keys (fk-…), Google API keys (AIza…), Google OAuth tokens
// (ya29.…) and JWTs (eyJ…).
var secretPrefixes = []string{"sk-", "fk-", "AIza", "ya29.", "eyJ"}

// minSecretLen: a token this long made of letters and digits together is treated as a
// credential even without a known prefix. Error texts name request ids (req_ + 24) and
// model names, which stay below it.
const minSecretLen = 40

// CleanText makes upstream text fit to store on an account and to log: invalid UTF-8 and
// control characters become spaces (runs of them one space), every token that looks like a
// credential and every string in secrets becomes "[redacted]", and the result is cut to at
// most n bytes on a character boundary. An upstream's error text may quote a request back
// (headers included, through a misbehaving proxy), so it is never trusted to be clean.
func CleanText(s string, n int, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 8 { // shorter values would redact ordinary words
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	var b strings.Builder
	b.Grow(min(len(s), n+len(redacted)))
	space := false
	for i := 0; i < len(s) && b.Len() < n; {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 || unicode.IsControl(r) || unicode.IsSpace(r) {
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
			i += size
			continue
		}
		space = false
		if tokenByte(s[i]) {
			j := i
			for j < len(s) && tokenByte(s[j]) {
				j++
			}
			tok := s[i:j]
			if looksSecret(tok) {
				tok = redacted
			}
			b.WriteString(tok)
			i = j
			continue
		}
		b.WriteString(s[i : i+size])
		i += size
	}
	return clipUTF8(strings.TrimRight(b.String(), " "), n)
}

// tokenByte is a byte that can be part of a credential.
func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '+' || c == '/' || c == '='
}

func looksSecret(tok string) bool {
	for _, p := range secretPrefixes {
		if strings.HasPrefix(tok, p) && len(tok) >= len(p)+16 {
			return true
		}
	}
	if len(tok) < minSecretLen {
		return false
	}
	letters, digits := false, false
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c >= '0' && c <= '9':
			digits = true
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letters = true
		}
	}
	return letters && digits
}

// clipUTF8 cuts s to at most n bytes without splitting a character.
func clipUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
